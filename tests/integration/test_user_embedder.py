"""A user-supplied ONNX embedder works like the built-in one end to end (enrol, approve, identify through the CLI),
and a gallery enrolled under another descriptor model is refused clearly (CLI, API status, every host's model
loading) instead of being silently never matched.

The user model here is the project's own dlib ResNet graph written to a file and configured as a user model
(``layout: nhwc``, uint8 input of 150 pixels): real weights, nothing committed, and its descriptors must equal the
built-in backend's."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from metrosight.config import load_settings
from metrosight.config.home import Home
from metrosight.recognize.embedder_onnx import OnnxResNetEmbedder
from metrosight.recognize.gallery import ModelMismatch
from metrosight.recognize.registry import embedder_for
from metrosight.services.suite import Services
from tests.integration.helpers import AUTH, bootstrap, cli, json_lines

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
    assert set(rt.store.template_models()) == {model} and model.startswith("onnx-user:")

    # the same gallery under the default embedder: refused in one line, nothing changed
    with pytest.raises(ModelMismatch, match=r"1 enrolled with 'onnx-user:[0-9a-f]{32}'.*computes 'dlib_resnet_v1'"):
        cli(home, "--as", "bob", "identify", str(SAMPLE / "obama.jpg"))
    default = Services.open(Home(home), load_settings(None, environ={}))
    with pytest.raises(ModelMismatch, match="delete those entries and enrol them again"):
        default.models.load()  # what every host does before its cameras start
    assert rt.store.template_models() == {model: 1}
