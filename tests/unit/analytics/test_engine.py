"""The analytics state machines on synthetic tracks (metres, seconds)."""

from __future__ import annotations

import numpy as np
import pytest

from metrosight.analytics.engine import BehaviourEngine
from metrosight.analytics.geometry import GeometryError, GroundPlane, Line, Polygon
from metrosight.analytics.model import CountingLine, Observation, Rules, Scene, Zone

SQUARE = [(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0)]
IDENTITY = GroundPlane(SQUARE, SQUARE)


def run(engine, samples, fps=10.0, end=None):
    """``samples``: {track_id: [(t, x, y), ...]}; feeds them in time order; returns all events."""
    frames: dict[float, list[Observation]] = {}
    for tid, pts in samples.items():
        for t, x, y in pts:
            frames.setdefault(round(t, 6), []).append(Observation(tid, t, (x, y)))
    events = []
    for t in sorted(frames):
        events += engine.update(t, frames[t])
    events += engine.finish(end if end is not None else max(frames))
    return events


def stand(tid, x, y, t0, t1, fps=10.0):
    return [(t, x, y) for t in np.arange(t0, t1 + 1e-9, 1 / fps)]


def test_polygon_contains_and_degenerate_shapes():
    p = Polygon([(0, 0), (10, 0), (10, 10), (0, 10)])
    assert p.contains(np.array([[5, 5], [11, 5], [-1, -1], [9.9, 0.1]])).tolist() == [True, False, False, True]
    with pytest.raises(GeometryError, match="at least 3"):
        Polygon([(0, 0), (1, 1)])
    with pytest.raises(GeometryError, match="zero area"):
        Polygon([(0, 0), (1, 1), (2, 2)])


def test_homography_maps_calibration_points_and_rejects_collinear():
    img = [(100, 400), (540, 400), (420, 200), (220, 200)]
    world = [(0, 0), (4, 0), (4, 6), (0, 6)]
    plane = GroundPlane(img, world)
    assert np.allclose(plane.to_world(np.array(img, dtype=float)), world, atol=1e-6)
    mid = plane.to_world(np.array([[320.0, 400.0]]))[0]
    assert mid == pytest.approx((2.0, 0.0), abs=1e-6)
    with pytest.raises(GeometryError, match="collinear"):
        GroundPlane([(0, 0), (1, 1), (2, 2), (0, 5)], world)


def test_one_loitering_event_with_start_duration_and_end():
    eng = BehaviourEngine(Scene((Zone("hall", Polygon(SQUARE)),), plane=IDENTITY), Rules(loitering_seconds=10))
    walk_in = [(t, -2 + t, 2.0) for t in np.arange(0, 3.0, 0.1)]  # enters the zone at x=0 at t=2
    events = run(
        eng, {1: walk_in + stand(1, 1.0, 2.0, 3.0, 20.0) + [(20.1 + k / 10, 1.0 + k / 5, 2.0) for k in range(30)]}
    )
    starts = [e for e in events if e.kind == "loitering" and e.phase == "start"]
    ends = [e for e in events if e.kind == "loitering" and e.phase == "end"]
    assert len(starts) == 1 and len(ends) == 1
    assert starts[0].start_ts == pytest.approx(2.0, abs=0.15)
    assert starts[0].ts == pytest.approx(12.0, abs=0.15)  # fires once the stay is longer than 10 s
    assert starts[0].key == ends[0].key and starts[0].data["zone"] == "hall"
    # leaves at x = 4 → t = 20.1 + 1.5 s
    assert ends[0].data["duration_s"] == pytest.approx(21.6 - 2.0, abs=0.2)


def test_short_stay_and_detector_gaps():
    eng = BehaviourEngine(Scene((Zone("hall", Polygon(SQUARE)),), plane=IDENTITY), Rules(loitering_seconds=10))
    # 8 s stay: no event
    assert run(eng, {1: stand(1, 2, 2, 0, 8)}) == []
    # 20 s stay seen only every 2 s (gaps shorter than the 3 s grace): still one event
    eng = BehaviourEngine(Scene((Zone("hall", Polygon(SQUARE)),), plane=IDENTITY), Rules(loitering_seconds=10))
    events = run(eng, {1: [(t, 2, 2) for t in np.arange(0, 20.1, 2.0)]})
    assert [(e.phase, round(e.data["duration_s"])) for e in events] == [("start", 10), ("end", 20)]


def test_id_switch_is_relinked_and_does_not_split_the_stay():
    eng = BehaviourEngine(Scene((Zone("hall", Polygon(SQUARE)),), plane=IDENTITY), Rules(loitering_seconds=10))
    frames = [(t, [Observation(1, t, (2.0, 2.0))]) for t in np.arange(0, 8, 0.1)]
    frames += [(t, [Observation(7, t, (2.2, 2.0))]) for t in np.arange(9.0, 20, 0.1)]  # new id 1 s later, 0.2 m away
    events = []
    for i, (t, obs) in enumerate(frames):
        ended = [1] if i == 80 else []
        events += eng.update(t, obs, ended)
    events += eng.finish(20.0)
    loiter = [e for e in events if e.kind == "loitering"]
    assert [e.phase for e in loiter] == ["start", "end"]
    assert loiter[0].start_ts == pytest.approx(0.0) and loiter[1].data["duration_s"] == pytest.approx(19.9, abs=0.2)
    assert eng.relinked == 1 and eng.persons == 1


def test_fast_movement_needs_sustained_speed_and_reports_the_peak():
    rules = Rules(fast_speed_mps=2.5, min_duration_seconds=1.0, speed_window_seconds=1.0)
    # walk 1.4 m/s for 5 s, run 4 m/s for 3 s, walk again
    pts, x, t = [], 0.0, 0.0
    for speed, dur in ((1.4, 5.0), (4.0, 3.0), (1.4, 5.0)):
        for _ in range(int(dur * 10)):
            pts.append((t, x, 0.0))
            x += speed / 10
            t += 0.1
    eng = BehaviourEngine(Scene(plane=IDENTITY), rules)
    events = run(eng, {1: pts})
    assert [e.phase for e in events] == ["start", "end"]
    assert events[1].data["peak_speed"] == pytest.approx(4.0, abs=0.1)
    assert events[0].start_ts == pytest.approx(5.0, abs=0.5) and events[1].ts == pytest.approx(8.0, abs=0.6)
    # a 0.3 s sprint is not sustained
    pts, x = [], 0.0
    for i in range(100):
        pts.append((i / 10, x, 0.0))
        x += 0.4 if 40 <= i < 43 else 0.14
    eng = BehaviourEngine(Scene(plane=IDENTITY), rules)
    assert run(eng, {1: pts}) == []


def test_jitter_does_not_make_a_walker_fast():
    rng = np.random.default_rng(1)
    pts = [(i / 10, 1.4 * i / 10 + rng.normal(0, 0.08), rng.normal(0, 0.08)) for i in range(200)]
    eng = BehaviourEngine(Scene(plane=IDENTITY), Rules(fast_speed_mps=2.5))
    assert run(eng, {1: pts}) == []


def test_speed_in_body_heights_without_calibration():
    # 100 px tall person moving 300 px/s = 3 heights/s
    eng = BehaviourEngine(Scene(), Rules(fast_speed_heights=1.5, min_duration_seconds=1.0))
    events = []
    for i in range(40):
        t = i / 10
        events += eng.update(t, [Observation(1, t, (30.0 * i, 200.0), height=100.0)])
    events += eng.finish(4.0)
    assert [e.phase for e in events] == ["start", "end"]
    assert events[0].data["unit"] == "heights/s" and events[1].data["peak_speed"] == pytest.approx(3.0, abs=0.05)
    # a truncated box (speed_ok False) never feeds the speed
    eng = BehaviourEngine(Scene(), Rules(fast_speed_heights=1.5))
    for i in range(40):
        eng.update(i / 10, [Observation(1, i / 10, (30.0 * i, 200.0), height=100.0, speed_ok=False)])
    assert eng.finish(4.0) == [] and eng.speed_of(1) is None


def test_line_counting_in_out_and_no_double_count_on_jitter():
    line = CountingLine("gate", Line((0.0, 0.0), (0.0, 4.0)))  # walking along +y: left is +x in y-down images
    eng = BehaviourEngine(Scene(lines=(line,), plane=IDENTITY), Rules(line_margin=0.15))
    rng = np.random.default_rng(0)
    pts = [(i / 10, -2 + i / 10, 2.0) for i in range(20)]  # walks up to the line
    pts += [(2.0 + i / 10, rng.normal(0, 0.05), 2.0) for i in range(30)]  # stands on it, jittering
    pts += [(5.0 + i / 10, i / 10, 2.0) for i in range(21)]  # walks on
    run(eng, {1: pts})
    assert sum(eng.crossings.values()) == 1 and eng.crossings[("gate", "in")] == 1
    eng = BehaviourEngine(Scene(lines=(line,), plane=IDENTITY), Rules(line_margin=0.15))
    run(eng, {1: [(i / 10, -2 + i / 10, 2.0) for i in range(41)], 2: [(i / 10, 2 - i / 10, 1.0) for i in range(41)]})
    assert eng.crossings[("gate", "in")] == 1 and eng.crossings[("gate", "out")] == 1


def test_occupancy_and_zone_override():
    zones = (
        Zone("a", Polygon(SQUARE), loitering_seconds=2.0),
        Zone("b", Polygon([(10, 0), (14, 0), (14, 4), (10, 4)])),
    )
    eng = BehaviourEngine(Scene(zones, plane=IDENTITY), Rules(loitering_seconds=100))
    events = []
    for i in range(50):
        t = i / 10
        events += eng.update(t, [Observation(1, t, (1, 1)), Observation(2, t, (2, 2)), Observation(3, t, (12, 2))])
    assert eng.occupancy() == {"a": 2, "b": 1}
    assert {(e.kind, e.data["zone"]) for e in events} == {("loitering", "a")} and len(events) == 2
