from metrosight.core.types import Box, Detection, Detections
from metrosight.track.iou import IouTracker, iou_matrix


def dets(i, boxes, fps=10.0):
    return Detections(i, i / fps, "c", tuple(Detection(b, 1.0) for b in boxes))


def test_iou_matrix_values():
    m = iou_matrix([Box(0, 0, 10, 10)], [Box(0, 0, 10, 10), Box(5, 0, 15, 10), Box(20, 20, 30, 30)])
    assert m.shape == (1, 3)
    assert abs(m[0, 0] - 1.0) < 1e-9 and abs(m[0, 1] - 1 / 3) < 1e-9 and m[0, 2] == 0.0


def test_keeps_id_while_moving_and_starts_new_ids():
    t = IouTracker(0.3, max_missed_seconds=0.25)
    ids = []
    for i in range(5):
        tr = t.update(dets(i, [Box(10 + 3 * i, 10, 60 + 3 * i, 60)]))
        ids.append(tr.active[0].track_id)
    assert len(set(ids)) == 1
    tr = t.update(dets(5, [Box(25, 10, 75, 60), Box(300, 300, 350, 350)]))
    assert sorted(x.track_id for x in tr.active) == [1, 2]


def test_track_ends_after_missing_and_ids_are_per_instance():
    t = IouTracker(0.3, max_missed_seconds=0.25)
    t.update(dets(0, [Box(0, 0, 50, 50)]))
    assert t.update(dets(1, [])).ended == ()  # missed 0.1 s: still alive
    assert t.update(dets(2, [])).ended == ()
    assert t.update(dets(4, [])).ended == (1,)
    other = IouTracker()
    assert other.update(dets(0, [Box(0, 0, 50, 50)])).active[0].track_id == 1


def test_finish_ends_everything():
    t = IouTracker()
    t.update(dets(0, [Box(0, 0, 50, 50), Box(100, 0, 150, 50)]))
    assert sorted(t.finish(1, 0.1, "c").ended) == [1, 2]


def test_scene_cut_detector():
    import numpy as np

    from metrosight.track.cuts import SceneCutDetector

    rng = np.random.default_rng(0)
    dark = rng.integers(0, 60, size=(90, 160, 3), dtype=np.uint8)
    moved = np.roll(dark, 5, axis=1)
    bright = rng.integers(150, 255, size=(90, 160, 3), dtype=np.uint8)
    d = SceneCutDetector()
    assert [d.is_cut(x) for x in (dark, moved, dark, bright, bright)] == [False, False, False, True, False]


def test_carry_keeps_every_track_at_its_prediction_without_ageing():
    t = IouTracker(0.3, max_missed_seconds=0.25)
    t.update(dets(0, [Box(0, 0, 50, 50)]))
    t.update(dets(1, [Box(10, 0, 60, 50)]))  # moving right at 100 px/s
    carried = [t.carry(i, i / 10, "c") for i in range(2, 12)]  # 1 s with no detection run: far past 0.25 s
    assert all(c.ended == () and [x.track_id for x in c.active] == [1] for c in carried)
    assert all(c.active[0].detection is None for c in carried)
    last = carried[-1].active[0]
    assert last.box.x1 > 60 and last.hits == 2 and last.last_ts == 0.1  # predicted onward; not a sighting
    # detection resumes: the face where the prediction put it continues the track
    assert [x.track_id for x in t.update(dets(12, [Box(115, 0, 165, 50)])).active] == [1]
    # misses on frames where detection ran still end it
    assert t.update(dets(14, [])).ended == () and t.update(dets(16, [])).ended == (1,)


def test_carry_on_an_empty_tracker_and_after_finish():
    t = IouTracker()
    assert t.carry(0, 0.0, "c").active == ()
    t.update(dets(1, [Box(0, 0, 50, 50)]))
    t.finish(2, 0.2, "c")
    assert t.carry(3, 0.3, "c").active == ()
