"""Face quality: the box-and-landmarks bound never undercuts the full score, so skipping faces by it loses none."""

from __future__ import annotations

import numpy as np
import pytest

from metrosight.core.types import Box
from metrosight.recognize.quality import assess, score_bound
from tests.unit.fakes import landmarks_for


@pytest.mark.parametrize("height", [30, 40, 60, 72, 150])
@pytest.mark.parametrize("blur", [0, 3, 20, 80])
@pytest.mark.parametrize("turn", [0.0, 0.1, 0.3, 0.6])
def test_score_bound_is_an_upper_bound(height: int, blur: int, turn: float) -> None:
    rng = np.random.default_rng(height + blur)
    chip = np.full((150, 150, 3), 128, np.uint8)
    if blur:
        chip = np.clip(128 + rng.normal(0, blur, size=chip.shape), 0, 255).astype(np.uint8)
    box = Box(10, 10, 10 + height, 10 + height)
    lm = landmarks_for(box)
    lm[4, 0] += turn * (lm[0, 0] - lm[2, 0])  # the nose moves off the eyes' midline: a turned head
    q = assess(box, chip, lm, min_face_px=36, min_blur_var=10.0, max_covered=None)  # a noise chip has no mouth
    bound = score_bound(box, lm, min_face_px=36)
    assert q.score <= bound + 1e-9
    if q.blur_var >= 40.0:  # sharpness saturates: the bound is the score
        assert bound == pytest.approx(q.score)


def test_turned_face_has_zero_bound() -> None:
    box = Box(0, 0, 100, 100)
    lm = landmarks_for(box)
    lm[4, 0] = lm[0, 0] + 20  # nose outside the eyes: profile
    assert score_bound(box, lm, 36) == 0.0


def test_detector_pose_estimate_refuses_a_face_dlib_points_call_frontal() -> None:
    # dlib's 5 points can look frontal on a turned face; the detector's own estimate (CenterFace) then decides
    rng = np.random.default_rng(0)
    chip = np.clip(128 + rng.normal(0, 60, size=(150, 150, 3)), 0, 255).astype(np.uint8)
    box = Box(0, 0, 120, 120)
    lm = landmarks_for(box)
    plain = assess(box, chip, lm, 36, 10.0)
    assert plain.problem is None, plain.problem
    assert assess(box, chip, lm, 36, 10.0, detector_yaw=0.0).yaw_ratio == pytest.approx(plain.yaw_ratio)
    q = assess(box, chip, lm, 36, 10.0, detector_yaw=0.84)
    assert q.problem is not None and "turned" in q.problem and q.yaw_ratio == pytest.approx(0.84)
    assert score_bound(box, lm, 36, detector_yaw=0.84) == 0.0
    assert score_bound(box, lm, 36, detector_yaw=0.0) == pytest.approx(score_bound(box, lm, 36))
