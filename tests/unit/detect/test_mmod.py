"""dlib's CNN (MMOD) detector on ONNX Runtime: the graph built from the packaged weights, the pyramid, refusals."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from metrosight.detect.base import DetectorError
from metrosight.detect.mmod_onnx import MmodOnnxDetector, build_mmod_onnx, default_model_path


def test_graph_from_the_packaged_weights_maps_cells_to_pixels() -> None:
    model, avg, window, stride, offset = build_mmod_onnx(default_model_path())
    assert window == 80 and stride == 8 and offset == 14  # three 5x5 stride-2 convolutions without padding
    assert len(model) > 100_000 and all(100 < a < 130 for a in avg)


def test_pyramid_levels_step_by_five_sixths_until_the_window_no_longer_fits() -> None:
    det = MmodOnnxDetector(landmarks=False)
    levels = det.levels(375, 500, 80)
    assert levels[0] == 1.0 and all(b / a == pytest.approx(5 / 6) for a, b in pairwise(levels))
    assert 375 * levels[-1] >= 80 > 375 * levels[-1] * 5 / 6
    assert MmodOnnxDetector(upsample=1, landmarks=False).levels(375, 500, 80)[0] == 2.0
    assert det.levels(60, 60, 80) == []  # smaller than one window: nothing to scan


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="upsample"):
        MmodOnnxDetector(upsample=5)
    with pytest.raises(DetectorError, match="not found"):
        MmodOnnxDetector(model_path=tmp_path / "none.dat")
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(DetectorError, match="cannot read dlib MMOD model"):
        build_mmod_onnx(junk)
    import face_recognition_models

    resnet = Path(face_recognition_models.face_recognition_model_location())
    with pytest.raises(DetectorError, match="not a dlib MMOD detector"):
        build_mmod_onnx(resnet)


def test_blank_frame_has_no_face() -> None:
    assert MmodOnnxDetector(landmarks=False).detect(np.full((200, 300, 3), 90, np.uint8)) == []
