"""A user-supplied ONNX embedder plugs in like the built-in one: configured by path, its descriptor size read from
the model, its model id from the file's SHA-256, its input prepared as configured; a bad file is refused at build
with the file named. The model is made here with onnx.helper (no weights in the repository)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper, save

from metrosight.config import load_settings
from metrosight.core.onnx_session import InferenceOptions
from metrosight.recognize.embedder import EmbedderError
from metrosight.recognize.embedder_user import UserOnnxEmbedder
from metrosight.recognize.registry import embedder_for

W = np.random.default_rng(3).normal(size=(3, 64)).astype(np.float32)


def tiny_model(path: Path, size: int = 150, dim: int | str = 64, elem: int = TensorProto.FLOAT) -> Path:
    """descriptor = per-channel mean of the input (N, 3, size, size) times a (3, dim) matrix."""
    nodes = [
        helper.make_node("Cast", ["img"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("GlobalAveragePool", ["x"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["desc"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("img", elem, ["N", 3, size, size])],
        [helper.make_tensor_value_info("desc", TensorProto.FLOAT, ["N", dim])],
        initializer=[numpy_helper.from_array(W[:, : dim if isinstance(dim, int) else 64], "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(path))
    return path


def chips(n: int) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 256, size=(n, 150, 150, 3), dtype=np.uint8)


def test_size_and_model_id_come_from_the_file(tmp_path: Path) -> None:
    path = tiny_model(tmp_path / "m.onnx")
    emb = UserOnnxEmbedder(path, input_size=150)
    assert emb.dim == 64
    assert emb.model_id == "onnx-user:" + hashlib.sha256(path.read_bytes()).hexdigest()[:32]
    other = UserOnnxEmbedder(tiny_model(tmp_path / "o.onnx", dim=32), input_size=150)
    assert other.dim == 32 and other.model_id != emb.model_id  # another file: another model, never mixed
    assert emb.embed(chips(0)).shape == (0, 64)


def test_descriptors_follow_the_configured_normalisation_and_channel_order(tmp_path: Path) -> None:
    path = tiny_model(tmp_path / "m.onnx")
    c = chips(5)
    mean, std = (120.0, 110.0, 100.0), (60.0, 50.0, 40.0)
    emb = UserOnnxEmbedder(path, input_size=150, mean=mean, std=std, inference=InferenceOptions(max_batch=2))
    means = c.reshape(5, -1, 3).astype(np.float64).mean(axis=1)
    expected = ((means - np.array(mean)) / np.array(std)) @ W
    assert np.allclose(emb.embed(c), expected, atol=1e-4)
    bgr = UserOnnxEmbedder(path, input_size=150, channels="bgr", mean=mean, std=std)
    expected_bgr = ((means[:, ::-1] - np.array(mean)) / np.array(std)) @ W
    assert np.allclose(bgr.embed(c), expected_bgr, atol=1e-4)


def test_crop_and_resize_feed_the_models_input_size(tmp_path: Path) -> None:
    emb = UserOnnxEmbedder(tiny_model(tmp_path / "m.onnx", size=112), input_size=112, crop=0.8)
    x = emb.prepare(chips(2))
    assert x.shape == (2, 3, 112, 112) and x.dtype == np.float32
    assert emb.embed(chips(2)).shape == (2, 64)
    nhwc = UserOnnxEmbedder(tiny_model(tmp_path / "u8.onnx", elem=TensorProto.UINT8), input_size=150)
    assert nhwc.prepare(chips(1)).dtype == np.uint8  # a uint8 model gets the pixels


def test_the_configuration_builds_it_through_the_registry(tmp_path: Path) -> None:
    path = tiny_model(tmp_path / "m.onnx", size=112)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"recognition:\n  embedder:\n    kind: onnx-user\n    model_path: {path}\n    input_size: 112\n")
    emb = embedder_for(load_settings(cfg, environ={}), tmp_path / "cache")
    assert emb.name == "onnx-user+flip" and emb.dim == 64 and emb.model_id.startswith("onnx-user:")
    d = emb.embed(chips(3))
    assert d.shape == (3, 64) and np.allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)


def test_a_file_that_does_not_fit_is_refused_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(EmbedderError, match="embedder model not found: .*nope.onnx"):
        UserOnnxEmbedder(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(EmbedderError, match="bad.onnx: not an ONNX model"):
        UserOnnxEmbedder(bad)
    path = tiny_model(tmp_path / "m.onnx", size=150)
    with pytest.raises(EmbedderError, match=r"input shape .* does not fit layout nchw at input_size 112"):
        UserOnnxEmbedder(path, input_size=112)
    with pytest.raises(EmbedderError, match="no output 'emb'"):
        UserOnnxEmbedder(path, input_size=150, output="emb")
    with pytest.raises(EmbedderError, match="fixed descriptor size"):
        UserOnnxEmbedder(tiny_model(tmp_path / "sym.onnx", dim="D"), input_size=150)
