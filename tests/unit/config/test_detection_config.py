"""Detection regions and motion gating in the configuration: what is refused, in one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
from typer.testing import CliRunner

from metrosight.cli import app
from metrosight.config.model import Settings


def check(tmp_path: Path, text: str) -> tuple[int, str]:
    f = tmp_path / "c.yaml"
    f.write_text(text, encoding="utf-8")
    r = CliRunner().invoke(app, ["config", "check", str(f)])
    return r.exit_code, r.stdout + r.stderr


def camera(detection: str) -> str:
    return f"cameras: [{{id: cam-1, source: a.mp4, detection: {detection}}}]\n"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("{regions: []}", "regions is empty"),
        ("{regions: [[0.1, 0.1, 1.2, 0.5]]}", "leaves the frame"),
        ("{regions: [[-0.1, 0.1, 0.5, 0.5]]}", "leaves the frame"),
        ("{regions: [[0.6, 0.1, 0.5, 0.5]]}", "x1 < x2"),
        ("{regions: [[0.1, 0.5, 0.5, 0.5]]}", "y1 < y2"),
        ("{regions: [[0.1, 0.1, .nan, 0.5]]}", "finite"),
        ("{regions: [[true, 0, 1, 1]]}", "true/false"),
        ("{regions: ['0,0,1,1']}", "valid tuple"),
        ("{regions: [[0.1, 0.1, 0.5]]}", "regions.0"),
        ("{regions: [[0, 0, 1, 1], [0.2, 0.2, 0.2, 0.4]]}", "regions[1]"),
        ("{gating: maybe}", "gating"),
        ("{region: [[0, 0, 1, 1]]}", "region"),
    ],
)
def test_config_check_refuses_a_bad_region_in_one_line(tmp_path: Path, body: str, says: str):
    code, out = check(tmp_path, camera(body))
    assert code != 0
    assert says in out and "cameras.0.detection" in out, out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    "body",
    [
        "detection: {gating: {full_every_seconds: 0}}",
        "detection: {gating: {threshold: 0}}",
        "detection: {gating: {max_share: 1.5}}",
        "detection: {gating: {enable: true}}",
    ],
)
def test_config_check_refuses_bad_gating_settings(tmp_path: Path, body: str):
    code, out = check(tmp_path, body + "\n")
    assert code != 0 and "detection.gating" in out and "Traceback" not in out, out


def test_good_regions_and_gating_pass(tmp_path: Path):
    code, out = check(
        tmp_path,
        "detection: {gating: {enabled: true, full_every_seconds: 1.5}}\n"
        + camera("{regions: [[0, 0.2, 0.5, 1], [0.5, 0, 1, 1]], gating: false}"),
    )
    assert code == 0, out
    s = Settings.model_validate(
        {"cameras": [{"id": "c", "source": "a.mp4", "detection": {"regions": [[0, 0.25, 1, 1]]}}]}
    )
    assert s.cameras[0].detection.regions == [(0.0, 0.25, 1.0, 1.0)]
    assert Settings().detection.gating.full_every_seconds == 2.0


def test_the_same_model_refuses_it_from_the_environment():
    with pytest.raises(pydantic.ValidationError, match="full_every_seconds"):
        Settings.model_validate({"detection": {"gating": {"full_every_seconds": -1}}})


@pytest.mark.parametrize(
    "command",
    [
        ["node"],
        ["serve"],
        ["worker", "--bus", "redis://127.0.0.1:1"],
        ["consume", "--bus", "redis://127.0.0.1:1"],
        ["run", "--source", "x.mp4"],
        ["config", "check"],
    ],
)
def test_every_host_refuses_a_bad_region_at_startup_in_one_line(tmp_path: Path, command: list[str]):
    f = tmp_path / "c.yaml"
    f.write_text(camera("{regions: [[0.6, 0.1, 0.5, 0.5]]}"), encoding="utf-8")
    args = ["--home", str(tmp_path / "home"), "--config", str(f), *command]
    if command == ["config", "check"]:
        args = [*command, str(f)]
    r = CliRunner().invoke(app, args)
    out = r.stdout + r.stderr
    assert r.exit_code != 0 and "Traceback" not in out, out
    lines = [line for line in out.splitlines() if "regions" in line]
    assert len(lines) == 1 and "x1 < x2" in lines[0], out
    assert not (tmp_path / "home" / "metrosight.db").exists()  # refused before anything was opened


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("{regions: [0, 0, 0.5, 1]}", "list of rectangles, e.g. [[0, 0, 0.5, 1]]"),
        ("{regions: [" + ", ".join(["[0, 0, 1, 1]"] * 33) + "]}", "33 regions; at most 32"),
    ],
)
def test_config_check_refuses_a_flat_rectangle_and_too_many_regions_in_one_line(
    tmp_path: Path, body: str, says: str
) -> None:
    """Red team: a rectangle written without its outer list gave four errors; 9,801 small regions were accepted
    and slowed a camera to a tenth of a frame a second."""
    code, out = check(tmp_path, camera(body))
    assert code != 0 and says in out and "Traceback" not in out, out
    assert len([line for line in out.splitlines() if "regions" in line]) == 1, out
