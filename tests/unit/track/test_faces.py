"""The face tracker at low analysis rates: one track per face, no swapped ids, carry, misses, cuts."""

import numpy as np
import pytest

from metrosight.config.tracking import TrackingConfig
from metrosight.core.types import Box, Detection, Detections
from metrosight.track.cuts import SceneCutDetector
from metrosight.track.faces import make_face_tracker
from metrosight.track.iou import IouTracker
from metrosight.track.kalman import KalmanTracker


def dets(i: int, boxes: list[Box], fps: float) -> Detections:
    return Detections(i, i / fps, "c", tuple(Detection(b, 1.0) for b in boxes))


def face(cx: float, cy: float, h: float = 60.0) -> Box:
    return Box(cx - 0.4 * h, cy - h / 2, cx + 0.4 * h, cy + h / 2)


def ids_per_face(tracker, frames: list[list[Box]], fps: float) -> list[list[int]]:
    """For each frame, the track id of each given face (in the order given)."""
    out = []
    for i, boxes in enumerate(frames):
        frame = dets(i, boxes, fps)
        by_det = {id(t.detection): t.track_id for t in tracker.update(frame).active if t.detection is not None}
        out.append([by_det[id(d)] for d in frame.items])
    return out


def test_a_fast_face_at_6_fps_keeps_one_track_where_overlap_alone_fragments():
    # 300 px/s (5 face heights a second): boxes 1/6 s apart overlap by IoU 0.09
    frames = [[face(100 + 300 * i / 6, 200)] for i in range(12)]
    new = ids_per_face(make_face_tracker(TrackingConfig()), frames, fps=6)
    assert {x for f in new for x in f} == {1}
    old = ids_per_face(IouTracker(), frames, fps=6)
    assert len({x for f in old for x in f}) > 1  # what today's tracker did


def test_two_faces_crossing_at_6_fps_keep_their_ids():
    # one walks right, the other left, at 4 face heights a second, half a height apart vertically; they cross in
    # the middle. Boxes 1/6 s apart hardly overlap: the centre pass with the predicted motion must keep them apart
    frames = [[face(100 + 240 * i / 6, 200), face(780 - 240 * i / 6, 230)] for i in range(18)]
    ids = ids_per_face(make_face_tracker(TrackingConfig()), frames, fps=6)
    assert all(f == [1, 2] for f in ids), ids
    assert ids_per_face(IouTracker(), frames, fps=6)[-1] != [1, 2]  # overlap alone lost them


def test_a_missed_detection_at_a_low_rate_does_not_end_the_track():
    t = make_face_tracker(TrackingConfig())  # 0.5 s and more than 2 missed detections
    seen = [True, True, False, False, True]  # 2 fps: unseen 1 s, two detections missed
    out = [t.update(dets(i, [face(100 + 10 * i, 200)] if s else [], fps=2)) for i, s in enumerate(seen)]
    assert all(o.ended == () for o in out) and [x.track_id for x in out[-1].active] == [1]
    assert [t.update(dets(i, [], fps=2)).ended for i in range(5, 8)] == [(), (), (1,)]  # the third miss ends it


def test_at_the_full_rate_a_track_ends_after_max_missed_seconds():
    t = make_face_tracker(TrackingConfig(max_missed_seconds=0.5))
    t.update(dets(0, [face(100, 200)], fps=25))
    ends = [i for i in range(1, 40) if t.update(dets(i, [], fps=25)).ended]
    assert ends[0] == 13  # first miss past 0.5 s: 13/25 s


def test_a_face_of_another_size_near_the_prediction_starts_its_own_track():
    t = make_face_tracker(TrackingConfig())
    t.update(dets(0, [face(300, 300, h=120)], fps=6))
    t.update(dets(1, [], fps=6))
    # a smaller face 0.9 heights from the large one's prediction: close enough, but half its size
    out = t.update(dets(2, [face(300, 190, h=60)], fps=6))
    assert sorted(x.track_id for x in out.active) == [1, 2]


def test_carry_keeps_tracks_at_their_prediction_and_nothing_ages():
    t = KalmanTracker(min_hits=1, max_missed_seconds=0.3, max_missed_detections=0)
    for i in range(4):
        t.update(dets(i, [face(100 + 20 * i, 200)], fps=10))  # 200 px/s
    before = t.update(dets(4, [], fps=10)).active[0].box.center[0]
    carried = [t.carry(i, i / 10, "c") for i in range(5, 25)]  # 2 s with no detection run
    assert all(c.ended == () and [x.track_id for x in c.active] == [1] for c in carried)
    assert all(x.detection is None for c in carried for x in c.active)
    assert carried[-1].active[0].box.center[0] > before + 100  # moved on with its velocity
    assert carried[-1].active[0].last_ts == pytest.approx(0.3)  # a carry is not a sighting
    # detection runs again and misses: only that time counts (0.1 s missed before the carry, then 0.3 s)
    assert t.update(dets(25, [], fps=10)).ended == () and t.update(dets(27, [], fps=10)).ended == (1,)


def test_carry_with_min_hits_reports_only_confirmed_tracks():
    t = KalmanTracker(min_hits=2)
    t.update(dets(0, [face(100, 200)], fps=10))
    assert t.carry(1, 0.1, "c").active == ()
    assert make_face_tracker(TrackingConfig()).carry(0, 0.0, "c").active == ()


def test_the_iou_setting_builds_the_earlier_tracker():
    assert isinstance(make_face_tracker(TrackingConfig(face_tracker="iou")), IouTracker)
    assert isinstance(make_face_tracker(TrackingConfig()), KalmanTracker)


def test_cut_threshold_is_lowered_with_the_time_between_frames():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, size=(72, 128, 3), dtype=np.uint8)
    b = a.copy()
    b[:36, :64] = np.clip(b[:36, :64].astype(int) + 70, 0, 255).astype(np.uint8)  # one quadrant brighter
    sim = float(np.minimum(SceneCutDetector.signature(a), SceneCutDetector.signature(b)).sum(axis=1).mean())
    d = SceneCutDetector(threshold=sim + 0.02, per_second=0.15)
    assert d.is_cut(a, 0.0) is False and d.is_cut(b, 0.04) is True  # 1/25 s apart: a cut
    d = SceneCutDetector(threshold=sim + 0.02, per_second=0.15)
    assert d.is_cut(a, 0.0) is False and d.is_cut(b, 0.2) is False  # 0.2 s apart: within the allowance
