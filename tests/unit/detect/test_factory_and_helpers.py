"""Detector factory, input checks and the MTCNN box arithmetic (no model is loaded)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from metrosight.detect.base import DetectorError, FaceDetector, check_image
from metrosight.detect.factory import DEFAULT_BACKEND, available, make_detector
from metrosight.detect.mtcnn_onnx import MtcnnOnnxDetector, _nms, _regress, _square


def test_unknown_name_lists_choices() -> None:
    with pytest.raises(DetectorError, match="unknown face detector 'nope'.*hog"):
        make_detector("nope")


def test_names() -> None:
    assert {"fast", "centerface", "hog", "yunet-onnx", "mtcnn"} <= set(available())
    fast = make_detector("fast")  # construction loads nothing
    assert fast.name == DEFAULT_BACKEND
    assert isinstance(fast, FaceDetector)
    assert isinstance(make_detector("hog", upsample=0), FaceDetector)


def test_bad_arguments() -> None:
    with pytest.raises(DetectorError, match="bad arguments"):
        make_detector("hog", colour="red")
    with pytest.raises(DetectorError, match="upsample"):
        make_detector("hog", upsample=-1)
    with pytest.raises(DetectorError, match="min_face"):
        make_detector("mtcnn", min_face=4)
    with pytest.raises(DetectorError, match="max_width"):
        make_detector("fast", max_width=8)
    with pytest.raises(DetectorError, match="engine"):
        make_detector("mtcnn", engine="tpu")


def test_yunet_needs_an_existing_model(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="model_path"):
        make_detector("yunet-onnx")
    with pytest.raises(DetectorError, match="not found"):
        make_detector("yunet-onnx", model_path=tmp_path / "missing.onnx")
    with pytest.raises(DetectorError, match="score_threshold"):
        bogus = tmp_path / "m.onnx"
        bogus.write_bytes(b"x")
        make_detector("yunet-onnx", model_path=bogus, score_threshold=2.0)


def test_yunet_rejects_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    bogus = tmp_path / "m.onnx"
    bogus.write_bytes(b"not an onnx model")
    det = make_detector("yunet-onnx", model_path=bogus, landmarks=False)
    with pytest.raises(DetectorError, match="not a YuNet ONNX model"):
        det.detect(np.zeros((32, 32, 3), np.uint8))


def test_mtcnn_model_dir_must_hold_the_nets(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="pnet.onnx"):
        MtcnnOnnxDetector(model_dir=tmp_path)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32), np.zeros((10, 10, 4), np.uint8), [1]],
)
def test_check_image_rejects(bad: object) -> None:
    with pytest.raises(DetectorError, match="image must be"):
        check_image(bad)  # type: ignore[arg-type]


def test_check_image_makes_contiguous() -> None:
    img = np.zeros((10, 20, 3), np.uint8)[:, ::2]
    out = check_image(img)
    assert out.flags.c_contiguous and out.shape == (10, 10, 3)


def test_nms_keeps_best_of_overlapping() -> None:
    boxes = np.array([[0, 0, 9, 9], [1, 1, 10, 10], [50, 50, 59, 59]], dtype=np.float64)
    scores = np.array([0.8, 0.9, 0.5])
    assert _nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert sorted(_nms(boxes, scores, 0.99).tolist()) == [0, 1, 2]
    inner = np.array([[0, 0, 19, 19], [5, 5, 9, 9]], dtype=np.float64)
    assert _nms(inner, np.array([0.9, 0.8]), 0.7, "min").tolist() == [0]
    assert _nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)


def test_square_and_regress() -> None:
    sq = _square(np.array([[0.0, 0.0, 10.0, 20.0]]))
    assert sq.tolist() == [[-5.0, 0.0, 15.0, 20.0]]
    out = _regress(np.array([[0.0, 0.0, 9.0, 9.0]]), np.array([[0.1, -0.1, 0.2, 0.0]]))
    assert out[0].tolist() == pytest.approx([1.0, -1.0, 11.0, 9.0])


def test_pyramid_scales_start_at_min_face() -> None:
    det = MtcnnOnnxDetector(min_face=40, scale_factor=0.5, min_face_fraction=0)
    scales = det._scales(720, 1280)
    assert scales[0] == pytest.approx(12 / 40)
    assert all(b == pytest.approx(a * 0.5) for a, b in itertools.pairwise(scales))
    assert 720 * scales[-1] >= 12 > 720 * scales[-1] * 0.5


def test_min_face_follows_small_frames() -> None:
    det = MtcnnOnnxDetector(min_face=48, min_face_fraction=1 / 15)
    assert det.effective_min_face(720, 1280) == pytest.approx(48)
    assert det.effective_min_face(1080, 1920) == pytest.approx(48)
    assert det.effective_min_face(375, 500) == pytest.approx(25)
    assert det.effective_min_face(100, 100) == pytest.approx(12)
    assert MtcnnOnnxDetector(min_face=48, min_face_fraction=0).effective_min_face(375, 500) == 48
    with pytest.raises(DetectorError, match="min_face_fraction"):
        MtcnnOnnxDetector(min_face_fraction=1.5)
