"""``inference.runtime: torch`` runs the same ONNX graph as ONNX Runtime and gives the same outputs (where PyTorch and
onnx2torch are installed: the optional ``gpu`` extra; skipped elsewhere). The embedder built from the configuration
then computes its descriptors on that runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metrosight.core.onnx_session import InferenceOptions, cpu_session, open_session
from tests.unit.recognize.test_embedder_user import tiny_model

try:  # the optional extra: absent, or a torchvision that does not fit the installed torch
    import onnx2torch  # noqa: F401
    import torch  # noqa: F401
except Exception as exc:  # noqa: BLE001
    pytest.skip(f"inference.runtime torch needs the gpu extra ({exc})", allow_module_level=True)


def test_torch_runs_the_onnx_graph_like_onnxruntime(tmp_path: Path) -> None:
    path = tiny_model(tmp_path / "m.onnx", size=32)
    x = np.random.default_rng(0).normal(size=(4, 3, 32, 32)).astype(np.float32)
    ref = cpu_session(path).run(["desc"], {"img": x})[0]
    sess = open_session(path, InferenceOptions(runtime="torch"))
    (got,) = sess.run(["desc"], {"img": x})
    assert got.shape == (4, 64) and np.allclose(got, ref, atol=1e-5)
    assert [p.name for p in sess.get_inputs()] == ["img"] and sess.get_outputs()[0].shape == ["N", 64]


def test_an_embedder_configured_on_the_torch_runtime(tmp_path: Path) -> None:
    from metrosight.config.model import Settings
    from metrosight.recognize.registry import embedder_for

    path = tiny_model(tmp_path / "m.onnx", size=112)
    cfg = {"kind": "onnx-user", "model_path": str(path), "input_size": 112}
    chips = np.random.default_rng(1).integers(0, 256, size=(3, 150, 150, 3), dtype=np.uint8)
    on_torch = embedder_for(
        Settings.model_validate({"recognition": {"embedder": cfg}, "inference": {"runtime": "torch"}}), tmp_path
    )
    on_ort = embedder_for(Settings.model_validate({"recognition": {"embedder": cfg}}), tmp_path)
    assert np.allclose(on_torch.embed(chips), on_ort.embed(chips), atol=1e-5)
