"""Red team: the scene-cut allowance for frames compared far apart must not switch cut detection off. With the
threshold lowered per second without end, frames 6 s apart (a stalled stream that resumes, a very low analysis
rate) could never be a cut — not even a black picture followed by a white one — and tracks would carry an identity
into another scene."""

from __future__ import annotations

import numpy as np
import pytest

from metrosight.config.tracking import TrackingConfig
from metrosight.track.faces import make_cut_detector


def _flat(level: int) -> np.ndarray:
    return np.full((360, 640, 3), level, np.uint8)


@pytest.mark.parametrize("gap", [0.2, 1.0, 6.0, 60.0])
def test_an_entirely_different_picture_is_a_cut_however_far_apart(gap: float) -> None:
    cuts = make_cut_detector(TrackingConfig())
    assert not cuts.is_cut(_flat(30), 0.0)
    assert cuts.is_cut(_flat(220), gap)


def test_the_allowance_stops_growing_after_a_second() -> None:
    cuts = make_cut_detector(TrackingConfig())
    assert cuts.threshold_at(60.0) == cuts.threshold_at(1.0) == pytest.approx(0.8 - 0.15)
    assert cuts.threshold_at(1 / 6) == pytest.approx(0.8 - 0.15 / 6)


def test_frames_far_apart_are_never_one_shot() -> None:
    cuts = make_cut_detector(TrackingConfig())
    assert not cuts.is_cut(_flat(30), 0.0)
    assert not cuts.is_cut(_flat(30), 2.5)  # the same picture at a very low analysis rate: one shot
    assert cuts.is_cut(_flat(30), 6.0)  # 3.5 s later: a gap in the video, a new shot
