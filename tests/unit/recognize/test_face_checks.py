"""Faces cut by the edge of the photo or covered over the mouth: refused before pose, by the one quality function."""

from __future__ import annotations

import numpy as np
import pytest

from metrosight.core.types import Box
from metrosight.recognize.quality import COVERED_THRESHOLD, assess, covered_score, cut_by_edge, score_bound


def landmarks(cx: float, cy: float, eye: float = 40.0) -> np.ndarray:
    """dlib-order 5 points of an upright face with eye centres ``eye`` pixels apart around ``(cx, cy)``."""
    return np.array(
        [
            [cx - 0.75 * eye, cy],
            [cx - 0.25 * eye, cy],
            [cx + 0.75 * eye, cy],
            [cx + 0.25 * eye, cy],
            [cx, cy + 0.6 * eye],
        ],
        np.float32,
    )


def skin_chip(rng: np.random.Generator, lower: tuple[int, int, int] | None = None) -> np.ndarray:
    """A textured skin-coloured 150×150 chip, its mouth-and-chin region painted ``lower`` when given."""
    chip = np.clip(np.array([196, 150, 124]) + rng.normal(0, 6, (150, 150, 3)), 0, 255).astype(np.uint8)
    chip[104:110, 55:95] = (170, 90, 90)  # lips
    chip[106:108, 60:90] = (60, 30, 30)  # the dark line between them
    if lower is not None:
        chip[88:150, 20:130] = np.clip(np.array(lower) + rng.normal(0, 6, (62, 110, 3)), 0, 255).astype(np.uint8)
    return chip


W, H = 400, 300
WHOLE = Box(150, 80, 250, 210)  # 100 wide, 130 tall: a whole face well inside


def test_a_whole_face_is_not_cut():
    assert cut_by_edge(WHOLE, landmarks(200, 130), (W, H)) is None


@pytest.mark.parametrize(
    ("box", "lm", "side"),
    [
        (Box(150, 0, 250, 70), landmarks(200, 20), "top"),  # cut through the forehead: box as tall as 0.7× its width
        (Box(150, 0, 250, 120), landmarks(200, 2), "top"),  # eyes at the very edge
        (Box(0, 80, 60, 210), landmarks(40, 130), "left"),  # 2.2× taller than wide at the left edge: half a face
        (Box(340, 80, 400, 210), landmarks(370, 130), "right"),
        (Box(150, 200, 250, 300), landmarks(200, 230), "bottom"),  # cut through the mouth
        (WHOLE, landmarks(200, 130) - np.array([170, 0], np.float32), "left"),  # landmarks past the edge
    ],
)
def test_cut_faces_are_named_by_their_edge(box, lm, side):  # type: ignore[no-untyped-def]
    assert cut_by_edge(box, lm, (W, H)) == side
    assert score_bound(box, lm, 36, image_size=(W, H)) == 0.0


def test_a_tight_crop_whole_face_touching_the_bottom_is_not_cut():
    """AT&T-style photos: the chin at the bottom edge, the box still taller than wide."""
    assert cut_by_edge(Box(10, 20, 82, 112), landmarks(46, 60, 30), (92, 112)) is None


def test_cut_is_judged_before_pose_and_size():
    rng = np.random.default_rng(0)
    left_cut = Box(0, 80, 60, 210)
    q = assess(left_cut, skin_chip(rng), landmarks(40, 130), 36, 1.0, detector_yaw=0.9, image_size=(W, H))
    assert q.problem == "face cut by the left edge of the photo" and q.score == 0.0
    # a turned face that reaches the side edge with a face-like box is cut there, not turned
    edge = Box(0, 80, 100, 210)
    q = assess(edge, skin_chip(rng), landmarks(60, 130), 36, 1.0, detector_yaw=0.9, image_size=(W, H))
    assert q.problem == "face cut by the left edge of the photo"
    # the same face in the middle of the photo is turned
    q = assess(WHOLE, skin_chip(rng), landmarks(200, 130), 36, 1.0, detector_yaw=0.9, image_size=(W, H))
    assert q.problem is not None and q.problem.startswith("face turned")
    # without the image size (callers that do not know it) nothing is judged cut
    assert assess(left_cut, skin_chip(rng), landmarks(40, 130), 36, 1.0).problem is None


@pytest.mark.parametrize("colour", [(236, 238, 240), (140, 185, 215), (32, 32, 36), (90, 110, 150)])
def test_a_masked_lower_face_scores_covered(colour):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    assert covered_score(skin_chip(rng, colour)) > COVERED_THRESHOLD
    q = assess(WHOLE, skin_chip(rng, colour), landmarks(200, 130), 36, 1.0, image_size=(W, H))
    assert q.problem is not None and q.problem.startswith("face covered (mask, scarf or hand") and q.score == 0.0


def test_a_bare_face_is_not_covered_and_the_check_can_be_off():
    rng = np.random.default_rng(2)
    assert covered_score(skin_chip(rng)) < 0.3
    q = assess(WHOLE, skin_chip(rng, (236, 238, 240)), landmarks(200, 130), 36, 1.0, max_covered=None)
    assert q.problem is None and q.covered > COVERED_THRESHOLD
