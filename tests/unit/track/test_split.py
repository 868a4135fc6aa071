"""Both face trackers say which tracks resumed on a face after missed detections (or by distance) and can split
such a track: the face goes on in a new track, the old one is gone."""

from __future__ import annotations

import pytest

from metrosight.core.types import Box, Detection, Detections
from metrosight.track.iou import FaceTracker, IouTracker
from metrosight.track.kalman import KalmanTracker

FACE = Box(100, 100, 190, 200)


def dets(i: int, boxes: list[Box], fps: float = 6.0) -> Detections:
    return Detections(i, i / fps, "c", tuple(Detection(b, 1.0) for b in boxes))


def make(kind: str) -> FaceTracker:
    if kind == "iou":
        return IouTracker(0.3, 0.5)
    return KalmanTracker(min_hits=1, max_centre_distance=0.5, centre_distance_per_second=4.0, max_missed_seconds=0.5)


@pytest.mark.parametrize("kind", ["iou", "kalman"])
def test_a_track_taking_a_face_after_a_miss_is_reported_and_can_be_split(kind: str) -> None:
    tracker = make(kind)
    for i in range(3):
        assert tracker.update(dets(i, [FACE])).resumed == ()
    tracker.update(dets(3, []))  # a missed detection run
    out = tracker.update(dets(4, [FACE]))
    assert out.resumed == (1,) and [t.track_id for t in out.active] == [1]
    new = tracker.split(1)
    assert new.track_id == 2 and new.detection is out.active[0].detection and new.first_ts == pytest.approx(4 / 6)
    nxt = tracker.update(dets(5, [FACE]))
    assert [t.track_id for t in nxt.active] == [2] and nxt.resumed == () and nxt.ended == ()
    assert tracker.finish(6, 1.0, "c").ended == (2,)  # the split track is not ended twice


@pytest.mark.parametrize("kind", ["iou", "kalman"])
def test_frames_skipped_by_gating_are_not_misses(kind: str) -> None:
    tracker = make(kind)
    tracker.update(dets(0, [FACE]))
    tracker.carry(1, 1 / 6, "c")
    assert tracker.update(dets(2, [FACE])).resumed == ()


def test_kalman_reports_a_face_taken_by_distance() -> None:
    tracker = KalmanTracker(min_hits=1, max_centre_distance=1.0)
    tracker.update(dets(0, [FACE]))
    out = tracker.update(dets(1, [Box(170, 100, 260, 200)]))  # 0.7 face heights on: no overlap, same track
    assert [t.track_id for t in out.active] == [1] and out.resumed == (1,)


@pytest.mark.parametrize("kind", ["iou", "kalman"])
def test_splitting_a_track_without_a_detection_is_refused(kind: str) -> None:
    tracker = make(kind)
    tracker.update(dets(0, [FACE]))
    tracker.update(dets(1, []))
    with pytest.raises(ValueError, match="no detection"):
        tracker.split(1)
    with pytest.raises(KeyError):
        tracker.split(99)


def test_kalman_reports_an_overlapping_face_of_another_size() -> None:
    """A nearer face passing in front overlaps the track's prediction: the tracker says it may be another person."""
    tracker = KalmanTracker(min_hits=1, max_height_ratio=1.3)
    tracker.update(dets(0, [FACE]))
    assert tracker.update(dets(1, [FACE])).resumed == ()
    out = tracker.update(dets(2, [Box(80, 80, 230, 260)]))  # 1.8x the height, overlapping it
    assert [t.track_id for t in out.active] == [1] and out.resumed == (1,)


@pytest.mark.parametrize("end", ["missed", "finish", "carry"])
def test_a_split_off_track_is_reported_until_it_ends_whatever_min_hits(end: str) -> None:
    """The new track of a split is reported at once (the caller registers it, may embed its face): with min_hits 2 it
    must stay reported, also on a carried frame, and be reported ended, or its descriptors would never be forgotten
    (red team 2)."""
    tracker = KalmanTracker(min_hits=2, max_centre_distance=0.5, max_missed_seconds=0.3)
    for i in range(3):
        tracker.update(dets(i, [FACE]))
    tracker.update(dets(3, []))
    assert tracker.update(dets(4, [FACE])).resumed == (1,)
    new = tracker.split(1)
    if end == "carry":
        assert [t.track_id for t in tracker.carry(5, 5 / 6, "c").active] == [new.track_id]
        return
    if end == "finish":
        assert tracker.finish(5, 5 / 6, "c").ended == (new.track_id,)
        return
    ended = [tid for i in range(5, 9) for tid in tracker.update(dets(i, [])).ended]
    assert ended == [new.track_id]
