"""Real face detectors on real photos: dlib's annotated faces and a slice of FDDB fold 1.

Needs the shared data (../shared/data or $METROSIGHT_DATA): skipped without it, failed in CI. The assertions are
recall floors and sanity checks on landmarks, never pixel-exact boxes.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from metrosight.core.types import Detection
from metrosight.detect.base import FaceDetector
from metrosight.detect.factory import make_detector
from metrosight.eval.detection import GroundTruthImage, evaluate, load_dlib_xml, load_fddb_fold, summarize
from tests.conftest import data_root, require_data

pytestmark = pytest.mark.integration

FDDB_SUBSET = 30  # the first images of fold 1 that exist, for CI speed


def _rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path))
    assert bgr is not None, f"unreadable image {path}"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def dlib_faces() -> list[tuple[np.ndarray, GroundTruthImage]]:
    d = require_data("dlib_faces")
    gts = load_dlib_xml(d / "training.xml") + load_dlib_xml(d / "testing.xml")
    return [(_rgb(g.path), g) for g in gts]


@pytest.fixture(scope="module")
def fddb_subset() -> list[tuple[np.ndarray, GroundTruthImage]]:
    d = require_data("fddb")
    gts = load_fddb_fold(d / "FDDB-folds" / "FDDB-fold-01-ellipseList.txt", d / "originalPics")[:FDDB_SUBSET]
    return [(_rgb(g.path), g) for g in gts]


@pytest.fixture(scope="module")
def default_detector() -> FaceDetector:
    return make_detector("fast")


def _run(det: FaceDetector, data: list[tuple[np.ndarray, GroundTruthImage]]) -> tuple[float, list[Detection]]:
    dets, flat = [], []
    for img, _ in data:
        out = det.detect(img)
        flat.extend(out)
        dets.append(([d.box for d in out], [d.score for d in out]))
    s = summarize(evaluate(dets, [g for _, g in data], iou_threshold=0.4))
    return s.recall, flat


def _check_landmarks(dets: list[Detection]) -> None:
    assert dets, "no detections"
    for d in dets:
        assert d.landmarks is not None and d.landmarks.shape == (5, 2) and d.landmarks.dtype == np.float32
        # all five points lie in or near the box
        b = d.box
        pad = 0.25 * b.width
        assert np.all(d.landmarks[:, 0] > b.x1 - pad) and np.all(d.landmarks[:, 0] < b.x2 + pad)
        assert np.all(d.landmarks[:, 1] > b.y1 - pad) and np.all(d.landmarks[:, 1] < b.y2 + pad)


def _check_eye_order(dets: list[Detection]) -> None:
    # dlib's 5-point order on an upright face: 0-1 are the outer and inner corners of the eye on the image's right
    # (the subject's left), 2-3 those of the eye on the image's left, 4 the nose base, below the eyes
    upright = [d for d in dets if d.landmarks is not None]
    ok = sum(
        float(d.landmarks[0:2, 0].mean()) > float(d.landmarks[2:4, 0].mean())
        and float(d.landmarks[4, 1]) > float(d.landmarks[0:4, 1].mean())
        for d in upright
    )
    assert ok >= 0.9 * len(upright)


def test_default_detector_recall_on_dlib_faces(
    default_detector: FaceDetector, dlib_faces: list[tuple[np.ndarray, GroundTruthImage]]
) -> None:
    recall, dets = _run(default_detector, dlib_faces)
    assert recall >= 0.95
    _check_landmarks(dets)
    _check_eye_order(dets)


def test_default_detector_landmarks_match_dlib_on_true_boxes(
    default_detector: FaceDetector, dlib_faces: list[tuple[np.ndarray, GroundTruthImage]]
) -> None:
    # the recogniser aligns on these points: from the detector's box they must land where dlib's predictor puts
    # them from the annotated box (mean error a few % of the eye distance)
    from metrosight.detect.landmarks import FivePointLandmarker

    ref_lm = FivePointLandmarker()
    errs = []
    for img, gt in dlib_faces:
        dets = default_detector.detect(img)
        for gb in gt.boxes:
            best = max(dets, key=lambda d: d.box.iou(gb), default=None)
            if best is None or best.box.iou(gb) < 0.4 or best.landmarks is None:
                continue
            ref = ref_lm(img, gb)
            eye_dist = float(np.linalg.norm(ref[0:2].mean(0) - ref[2:4].mean(0)))
            errs.append(float(np.linalg.norm(best.landmarks - ref, axis=1).mean()) / eye_dist)
    assert len(errs) >= 0.95 * sum(len(g.boxes) for _, g in dlib_faces)
    assert float(np.mean(errs)) < 0.08


def test_default_detector_recall_on_fddb_subset(
    default_detector: FaceDetector, fddb_subset: list[tuple[np.ndarray, GroundTruthImage]]
) -> None:
    recall, _ = _run(default_detector, fddb_subset)
    assert recall >= 0.9
    # landmarks of the faces found (a false positive, e.g. a box half out of the frame, has no meaningful points)
    found = [
        d for img, g in fddb_subset for d in default_detector.detect(img) if max(d.box.iou(b) for b in g.boxes) >= 0.4
    ]
    _check_landmarks(found)


def test_default_detector_on_blank_frame(default_detector: FaceDetector) -> None:
    assert default_detector.detect(np.full((720, 1280, 3), 127, np.uint8)) == []


def test_hog_detector_on_dlib_faces(dlib_faces: list[tuple[np.ndarray, GroundTruthImage]]) -> None:
    recall, dets = _run(make_detector("hog", upsample=1), dlib_faces)
    assert recall >= 0.95
    _check_landmarks(dets)


def test_user_yunet_onnx_path() -> None:
    model = Path(os.environ.get("METROSIGHT_MODELS", data_root().parent / "models"))
    model = model / "face_detection_yunet_2023mar.onnx"
    if not model.is_file():
        msg = f"user-supplied YuNet test model missing: {model}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    img = _rgb(require_data("dlib_faces") / "2008_002506.jpg")
    dets = make_detector("yunet-onnx", model_path=model).detect(img)
    assert len(dets) == 3
    _check_landmarks(dets)


def test_dlib_cnn_mmod_on_onnx_runtime_agrees_with_dlib() -> None:
    # the same weights as dlib's cnn_face_detection_model_v1, run as one ONNX graph: the same faces, scores within
    # 0.1, boxes at most a pyramid level apart (dlib tiles its pyramid and filters with pyramid_down<6>)
    import dlib

    from metrosight.core.types import Box
    from metrosight.detect.mmod_onnx import default_model_path

    img = _rgb(require_data("dlib_faces") / "2008_002506.jpg")
    ref = dlib.cnn_face_detection_model_v1(str(default_model_path()))(img, 0)
    ours = make_detector("mmod").detect(img)
    assert len(ref) == len(ours) == 3
    for r in ref:
        rb = Box(r.rect.left(), r.rect.top(), r.rect.right() + 1, r.rect.bottom() + 1)
        best = max(ours, key=lambda d: d.box.iou(rb))
        assert best.box.iou(rb) >= 0.6
        assert abs(best.score - r.confidence) < 0.1
    _check_landmarks(ours)
