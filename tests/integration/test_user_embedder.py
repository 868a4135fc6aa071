"""A user-supplied ONNX embedder works like the built-in one end to end (enrol, approve, identify through the CLI),
and a gallery enrolled under another descriptor model is refused clearly (CLI, API status, every host's model
loading) instead of being silently never matched.

The user model here is the project's own dlib ResNet graph written to a file and configured as a user model
(``layout: nhwc``, uint8 input of 150 pixels): real weights, nothing committed, and its descriptors must equal the
built-in backend's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from metrosight.config import load_settings
from metrosight.config.home import Home
from metrosight.recognize.embedder_onnx import OnnxResNetEmbedder
from metrosight.recognize.gallery import ModelMismatch
from metrosight.recognize.registry import embedder_for
from metrosight.services.suite import Services
from metrosight.store.models import Run
from tests.integration.helpers import AUTH, bootstrap, cli, json_lines, password_of

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "metrosight" / "sample"


@pytest.fixture(scope="module")
def user_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("models")
    built = OnnxResNetEmbedder(cache_dir=cache).onnx_path()
    return Path(shutil.copy(built, cache / "my_embedder.onnx"))


def user_config(tmp_path: Path, model: Path) -> Path:
    cfg = tmp_path / "user.yaml"
    cfg.write_text(
        "recognition:\n  embedder:\n    kind: onnx-user\n"
        f"    model_path: {model}\n    input_size: 150\n    layout: nhwc\n"
    )
    return cfg


def test_user_embedder_gives_the_builtin_descriptors_and_its_own_model_id(tmp_path: Path, user_model: Path) -> None:
    settings = load_settings(user_config(tmp_path, user_model), environ={})
    user = embedder_for(settings, tmp_path / "cache", flip=False)
    builtin = OnnxResNetEmbedder(cache_dir=tmp_path / "cache")
    chips = np.random.default_rng(0).integers(0, 256, size=(3, 150, 150, 3), dtype=np.uint8)
    assert user.dim == 128 and user.model_id.startswith("onnx-user:") and user.model_id != builtin.model_id
    assert np.allclose(user.embed(chips), builtin.embed(chips), atol=1e-5)


def test_enrol_and_identify_through_a_user_embedder(tmp_path: Path, user_model: Path) -> None:
    home, cfg = tmp_path / "home", user_config(tmp_path, user_model)
    bootstrap(home)
    assert cli(home, "--as", "ada", "watchlist", "create", "wl", "--category", "wanted")[0] == 0
    code, out, err = cli(
        home,
        "--config",
        str(cfg),
        "--as",
        "ada",
        "enroll",
        "-w",
        "wl",
        *AUTH,
        "-s",
        "Barack Obama",
        str(SAMPLE / "obama.jpg"),
    )
    assert code == 0, out + err
    assert cli(home, "--as", "bob", "watchlist", "approve", "wl", "--all-pending")[0] == 0
    code, out, err = cli(
        home,
        "--config",
        str(cfg),
        "--as",
        "bob",
        "identify",
        "--json",
        str(SAMPLE / "obama.jpg"),
        str(SAMPLE / "biden.jpg"),
    )
    assert code == 0, out + err
    found = {Path(r["photo"]).name: [f.get("subject") for f in r["faces"]] for r in json_lines(out)}
    assert found == {"obama.jpg": ["Barack Obama"], "biden.jpg": [None]}
    rt = Services.open(Home(home), load_settings(cfg, environ={}))
    model = rt.models.model_id
    assert set(rt.store.gallery.template_models()) == {model} and model.startswith("onnx-user:")

    # the same gallery under the default embedder: refused in one line, nothing changed
    with pytest.raises(ModelMismatch, match=r"1 enrolled with 'onnx-user:[0-9a-f]{32}'.*computes 'dlib_resnet_v1'"):
        cli(home, "--as", "bob", "identify", str(SAMPLE / "obama.jpg"))
    default = Services.open(Home(home), load_settings(None, environ={}))
    with pytest.raises(ModelMismatch, match="delete those entries and enrol them again"):
        default.models.load()  # what every host does before its cameras start
    assert rt.store.gallery.template_models() == {model: 1}


def metrosight(home: Path, *args: str, user: str = "bob") -> subprocess.CompletedProcess[str]:
    """The command as installed (``metrosight.cli:entrypoint``), in its own process."""
    env = {**os.environ, "METROSIGHT_PASSWORD": password_of(user)}
    cmd = [sys.executable, "-c", "from metrosight.cli import entrypoint; entrypoint()", "--home", str(home), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_every_host_refuses_a_gallery_of_another_model_in_one_line(tmp_path: Path, user_model: Path) -> None:
    home = tmp_path / "home"
    bootstrap(home)
    assert cli(home, "--as", "ada", "watchlist", "create", "wl", "--category", "wanted")[0] == 0
    code, out, err = cli(
        home, "--as", "ada", "enroll", "-w", "wl", *AUTH, "-s", "Barack Obama", str(SAMPLE / "obama.jpg")
    )
    assert code == 0, out + err  # enrolled under the default model
    clip = str(SAMPLE / "short_hamilton_clip.mp4")
    cfg = user_config(tmp_path, user_model)
    cfg.write_text(cfg.read_text() + f"cameras:\n  - {{id: cam1, source: {clip}}}\n")
    for args in (
        ["--config", str(cfg), "--as", "bob", "identify", str(SAMPLE / "obama.jpg")],
        ["run", "--config", str(cfg), "--source", clip, "--camera", "cam1"],
        ["node", "--config", str(cfg)],
        ["worker", "--config", str(cfg), "--bus", "redis://127.0.0.1:9/0"],  # refused before Redis is reached
    ):
        res = metrosight(home, *args)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        lines = [x for x in res.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
        assert "another descriptor model (1 enrolled with 'dlib_resnet_v1')" in lines[0]
    svc = Services.open(Home(home), load_settings(None, environ={}))
    assert svc.store.gallery.template_models() == {"dlib_resnet_v1": 1}  # nothing lost
    with svc.store.uow.read() as s:
        assert s.scalar(select(func.count()).select_from(Run)) == 0  # refused before a run row was written
