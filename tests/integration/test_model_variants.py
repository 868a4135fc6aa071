"""A real int8 embedder built with ONNX Runtime's quantisation tooling, measured by the parity gate on a slice of
LFW fold 1: the figures are real (the float model against itself gives cosine 1 and passes; the int8 model gives
its own, lower figure), the verdict is stored with the model's hash, and the configuration accepts the variant only
as the verdict says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metrosight.config.model import Settings
from metrosight.core.derived import ParityRecord, build_variant, file_sha256
from metrosight.detect.centerface_onnx import CenterFaceDetector
from metrosight.eval.parity import ONE_THREAD, embedder_calibration, lfw_faces, measure_embedder
from metrosight.recognize.embedder import EmbedderError
from metrosight.recognize.embedder_onnx import OnnxResNetEmbedder
from metrosight.recognize.operating import FLOOR_COSINE
from metrosight.recognize.registry import embedder_for
from tests.conftest import require_data

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_int8_embedder_through_the_parity_gate(tmp_path: Path) -> None:
    data = require_data("lfw", "pairs.txt").parent.parent
    require_data("dlib_johns")
    cache = tmp_path / "models"
    float_model = OnnxResNetEmbedder(cache).float_path()
    faces = lfw_faces(data, CenterFaceDetector(inference=ONE_THREAD), limit=12)  # 6 same, 6 different people
    assert len(faces.chips) >= 20 and len(faces.pairs) == 12

    itself = measure_embedder(float_model, float_model, faces, FLOOR_COSINE)
    assert itself.passed and itself.min_cosine == pytest.approx(1.0, abs=1e-6) and itself.decision_changes == 0
    assert itself.descriptors == 2 * len(faces.chips)  # every face and its mirror image

    model = build_variant(float_model, "int8", "chips", embedder_calibration(data))
    assert model.stat().st_size < float_model.stat().st_size / 2  # int8 weights: really quantised
    parity = measure_embedder(float_model, model, faces, FLOOR_COSINE)
    assert 0.98 < parity.min_cosine < 1.0 - 1e-5  # a different model, close to the float one
    assert parity.min_cosine <= parity.mean_cosine < 1.0

    settings = Settings.model_validate({"recognition": {"embedder": {"kind": "onnx", "precision": "int8"}}})
    with pytest.raises(EmbedderError, match="int8 has not passed the parity gate here"):
        embedder_for(settings, cache)  # built, never recorded
    ParityRecord("int8", file_sha256(model), file_sha256(float_model), parity.passed, parity.summary()).write(model)
    if parity.passed:
        emb = embedder_for(settings, cache, flip=False)
        chips = faces.chips[:4]
        ref = OnnxResNetEmbedder(cache).embed(chips)
        out = emb.embed(chips)
        cos = np.sum(out * ref, 1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
        assert np.all(cos >= parity.min_cosine - 1e-6)  # the int8 model is what runs
    else:
        with pytest.raises(EmbedderError, match=f"int8 failed parity: min cosine {parity.min_cosine:.4f}"):
            embedder_for(settings, cache)


def test_int8_centerface_is_really_quantised_and_still_finds_faces(tmp_path: Path) -> None:
    import onnx

    data = require_data("fddb", "FDDB-folds").parent.parent
    require_data("dlib_faces")
    from metrosight.detect.centerface_onnx import default_model_path, ensure_prepared_model
    from metrosight.eval.parity import detector_calibration, faces_found, fddb_fold1

    reference = CenterFaceDetector(inference=ONE_THREAD)
    float_model = ensure_prepared_model(default_model_path(), tmp_path)
    model = build_variant(float_model, "int8", "input.1", detector_calibration(data, reference, photos=8))
    graph = onnx.load(str(model)).graph
    ops = [n.op_type for n in graph.node]
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert ops.count("QuantizeLinear") > 50  # the old-opset, unnamed-node export really got quantised
    assert convs[0].input[0] == "input.1"  # its first convolution stays float: it takes the pixels themselves
    gts, images = fddb_fold1(data)
    gts, images = gts[:20], images[:20]
    candidate = CenterFaceDetector(model_path=model, model_prepared=True, inference=ONE_THREAD)
    faces = sum(len(g.boxes) for g in gts)
    ref, cand = faces_found(reference, gts, images), faces_found(candidate, gts, images)
    assert ref >= 0.8 * faces and cand >= ref - 2  # a real detector, close to the float one on these photos
