"""A hardware decoder the machine cannot open: `config check`, `run` and `node` stop with one line saying what is
missing and what to do, before anything is opened or stored; `doctor` fails its decoder check; with `auto` they
decode on the CPU. (No CUDA or VAAPI device where these were written: where one is present they are skipped.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from metrosight.ingest.hwaccel import device_problem
from metrosight.store.models import Run
from metrosight.store.repo import Store
from tests.conftest import require_data
from tests.integration.helpers import bootstrap, cli, json_lines

pytestmark = pytest.mark.integration


@pytest.fixture()
def configs(tmp_path: Path) -> dict[str, Path]:
    if device_problem("cuda") is None:
        pytest.skip("a CUDA device is present here")
    out = {}
    for kind in ("cuda", "auto"):
        out[kind] = tmp_path / f"{kind}.yaml"
        out[kind].write_text(f"ingest:\n  analysis_fps: 6\n  decode:\n    hwaccel: {kind}\n")
    return out


def one_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_config_check_refuses_a_missing_device_and_accepts_auto(configs, tmp_path) -> None:
    home = tmp_path / "home"
    code, _, err = cli(home, "config", "check", configs["cuda"])
    line = one_line(err)
    assert code == 2 and "ingest.decode.hwaccel is cuda but" in line and "NVIDIA driver" in line
    assert "set ingest.decode.hwaccel to auto or none" in line
    code, out, _ = cli(home, "config", "check", configs["auto"])
    assert code == 0 and "OK" in out


def test_run_and_node_stop_before_anything_is_stored(configs, tmp_path) -> None:
    home = tmp_path / "home"
    bootstrap(home)
    clip = require_data("face_recognition_examples", "examples", "short_hamilton_clip.mp4")
    code, _, err = cli(home, "run", "--source", clip, "--config", configs["cuda"])
    assert code == 2 and "ingest.decode.hwaccel is cuda but" in one_line(err)
    node_cfg = tmp_path / "node.yaml"
    node_cfg.write_text(configs["cuda"].read_text() + f"cameras:\n  - id: cam-1\n    source: {clip}\n")
    code, _, err = cli(home, "node", "--config", node_cfg, "--duration", "5")
    assert code == 2 and "ingest.decode.hwaccel is cuda but" in one_line(err)
    assert Store.for_home(home).count(Run) == 0


def test_doctor_names_the_decoder(configs, tmp_path) -> None:
    home = tmp_path / "home"
    bootstrap(home)
    code, out, _ = cli(home, "doctor", "--config", configs["cuda"], "--no-cameras", "--no-models")
    line = next(x for x in out.splitlines() if x.startswith("[fail] decoder:"))
    assert code == 1 and "ingest.decode.hwaccel is cuda but" in line
    _, out, _ = cli(home, "doctor", "--config", configs["auto"], "--no-cameras", "--no-models")
    line = next(x for x in out.splitlines() if "decoder:" in x)
    assert line.startswith("[ok] decoder: software (ingest.decode.hwaccel auto)") and "no hardware decoder" in line


def test_run_with_auto_decodes_on_the_cpu(configs, tmp_path) -> None:
    home = tmp_path / "home"
    bootstrap(home)
    clip = require_data("face_recognition_examples", "examples", "short_hamilton_clip.mp4")
    code, out, err = cli(home, "run", "--source", clip, "--config", configs["auto"], "--json")
    assert code == 0, err
    summary = next(x for x in json_lines(out) if x["type"] == "summary")
    assert summary["decode"]["decoder"] == "software" and summary["decode"]["cpu_seconds"] > 0
    assert summary["decode"]["frames_codec_skipped"] == 0  # Hamilton: every frame a reference
