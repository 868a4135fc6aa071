from metrosight.core.types import Box, Detection, Detections
from metrosight.track.kalman import KalmanTracker


def dets(i, boxes, fps=10.0):
    return Detections(i, i / fps, "c", tuple(Detection(b, 1.0, kind="person") for b in boxes))


def test_keeps_id_through_gaps_and_ids_are_per_instance():
    t = KalmanTracker(max_missed_seconds=1.0, min_hits=2)
    ids = set()
    for i in range(30):
        boxes = [] if 10 <= i < 15 else [Box(100 + 5 * i, 50, 160 + 5 * i, 250)]  # 0.5 s detector gap
        for tr in t.update(dets(i, boxes)).active:
            ids.add(tr.track_id)
    assert ids == {1}
    assert KalmanTracker().update(dets(0, [Box(0, 0, 10, 20)])).active == ()  # not confirmed after one hit


def test_single_frame_false_detection_never_becomes_a_track_and_stale_tracks_end():
    t = KalmanTracker(max_missed_seconds=0.3, min_hits=2)
    t.update(dets(0, [Box(0, 0, 50, 100)]))
    out = [t.update(dets(i, [])) for i in range(1, 6)]
    assert all(o.active == () and o.ended == () for o in out)
    t.update(dets(10, [Box(0, 0, 50, 100)]))
    t.update(dets(11, [Box(2, 0, 52, 100)]))
    ended = [tid for i in range(12, 20) for tid in t.update(dets(i, [])).ended]
    assert ended == [2]
