"""Crowd-safety alarms on synthetic tracks (metres, seconds): occupancy above N for T seconds with hysteresis, and
wrong-way crossings of a line."""

from __future__ import annotations

import numpy as np
import pytest

from metrosight.analytics.crowd import OccupancyAlarm, OccupancyRule, WrongWay
from metrosight.analytics.engine import BehaviourEngine
from metrosight.analytics.geometry import GroundPlane, Line, Polygon
from metrosight.analytics.model import CountingLine, Observation, Rules, Scene, Zone

SQUARE = [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)]
IDENTITY = GroundPlane(SQUARE, SQUARE)
HALL = Zone("hall", Polygon([(2.0, 2.0), (8.0, 2.0), (8.0, 8.0), (2.0, 8.0)]))
STEP = 0.4


def engine(max_people=3, seconds=5.0, clear_people=None, clear_seconds=2.0, lines=(), wrong_way=()):
    alarm = OccupancyAlarm(
        "hall", "hall", max_people, seconds, max_people if clear_people is None else clear_people, clear_seconds
    )
    scene = Scene((HALL,), tuple(lines), plane=IDENTITY, occupancy=(alarm,), wrong_way=tuple(wrong_way))
    return BehaviourEngine(scene, Rules(exit_grace_seconds=2.0))


def feed(eng, frames):
    """``frames``: [(t, {track_id: (x, y)}, [ended])] → every event."""
    events = []
    for t, pts, ended in frames:
        events += eng.update(t, [Observation(tid, t, xy) for tid, xy in pts.items()], ended)
    return events + eng.finish(frames[-1][0])


def of(events, kind):
    return [e for e in events if e.kind == kind]


def test_a_crowd_above_the_limit_for_long_enough_raises_one_alarm_and_clears_it():
    # 5 people stand in the hall from 0 to 20 s, then 3 leave (2 stay): limit 3, 5 s
    frames = []
    for k in range(76):
        t = k * STEP
        n = 5 if t < 20.0 else 2
        frames.append((t, {i: (3.0 + i, 5.0) for i in range(n)}, [2, 3, 4] if k == 50 else []))
    occ = of(feed(engine(), frames), "occupancy")
    assert [e.phase for e in occ] == ["start", "end"]
    start, end = occ
    assert start.start_ts == pytest.approx(0.0) and start.ts == pytest.approx(5.2, abs=STEP)
    assert start.data["count"] == 5 and start.data["max_people"] == 3 and start.person is None
    assert end.key == start.key and end.data["peak"] == 5
    assert end.ts == pytest.approx(20.0, abs=STEP)  # cleared at the fall, once it held for clear_seconds


def test_a_crowd_too_short_raises_nothing():
    frames = [
        (k * STEP, {i: (3.0 + i, 5.0) for i in range(5 if k * STEP < 4.0 else 1)}, [1, 2, 3, 4] if k == 10 else [])
        for k in range(40)
    ]
    assert of(feed(engine(), frames), "occupancy") == []


def test_flicker_around_the_limit_makes_one_alarm():
    # 4 people inside, a 5th... no: the count flickers 4 ↔ 3 as one person steps in and out across the edge
    frames = []
    for k in range(150):
        t = k * STEP
        edge = (8.1, 5.0) if (k // 2) % 2 else (7.9, 5.0)  # in for 0.8 s, out for 0.8 s
        frames.append((t, {1: (3.0, 5.0), 2: (4.0, 5.0), 3: (5.0, 5.0), 4: edge}, []))
    occ = of(feed(engine(max_people=3, seconds=5.0, clear_seconds=2.0), frames), "occupancy")
    # above the limit only half the time, but the dips (0.8 s) are shorter than the 2 s dip time: one episode
    assert [e.phase for e in occ] == ["start", "end"]


def test_hysteresis_needs_the_clearing_level_held():
    # limit 3, clears at 1 for 2 s: the count falling to 2 does not clear it; to 1 briefly does not either
    counts = [5] * 20 + [2] * 20 + [1] * 3 + [2] * 10 + [1] * 10
    rule = OccupancyRule(OccupancyAlarm("hall", "hall", 3, 5.0, 1, 2.0), dip_seconds=2.0)
    changes = [c for k, n in enumerate(counts) if (c := rule.step(k * STEP, n)) is not None]
    assert [c.phase for c in changes] == ["start", "end"]
    assert changes[1].ts == pytest.approx(53 * STEP)


def test_dense_crowd_walking_through_counts_the_people_inside_now():
    # 30 walkers crossing the hall in a dense stream (0.3 m apart), each inside ~6 s: about 20 inside at once
    rng = np.random.default_rng(0)
    frames = []
    for k in range(100):
        t = k * STEP
        pts = {}
        for i in range(30):
            x = -1.0 + 1.0 * (t - 0.3 * i) + rng.normal(0, 0.05)
            if 0.0 <= x <= 10.0:
                pts[i] = (x, 4.0 + (i % 5) * 0.3)
        frames.append((t, pts, []))
    eng = engine(max_people=15, seconds=3.0)
    occ = of(feed(eng, frames), "occupancy")
    assert [e.phase for e in occ] == ["start", "end"]
    assert 18 <= occ[1].data["peak"] <= 21


def test_people_entering_at_the_edges_of_the_view_count_at_once():
    # tracks that start inside the zone (a person appearing from behind a pillar) count from their first frame
    frames = [(k * STEP, {i: (3.0 + i, 3.0) for i in range(5)} if k >= 5 else {}, []) for k in range(30)]
    occ = of(feed(engine(max_people=3, seconds=2.0), frames), "occupancy")
    assert occ[0].start_ts == pytest.approx(5 * STEP)


GATE = CountingLine("gate", Line((5.0, 0.0), (5.0, 10.0)))  # walking a→b (+y), right is -x… see Line


def walk(tid, x0, x1, y=5.0, speed=1.2, t0=0.0, jitter=0.0, seed=0):
    rng = np.random.default_rng(seed)
    n = int(abs(x1 - x0) / (speed * STEP)) + 1
    xs = np.linspace(x0, x1, n)
    return [(t0 + k * STEP, tid, (float(x + rng.normal(0, jitter)), y)) for k, x in enumerate(xs)]


def run_walks(eng, *walks):
    frames: dict[float, dict[int, tuple[float, float]]] = {}
    for w in walks:
        for t, tid, xy in w:
            frames.setdefault(round(t, 6), {})[tid] = xy
    return feed(eng, [(t, pts, []) for t, pts in sorted(frames.items())])


def direction_of(x0, x1):
    line = GATE.line
    return "in" if line.signed_distance((x1, 5.0)) < 0 else "out"


def test_wrong_way_crossing_is_one_event_and_the_allowed_way_none():
    allowed = direction_of(1.0, 9.0)
    eng = engine(lines=[GATE], wrong_way=[WrongWay("gate", allowed)])
    events = run_walks(eng, walk(1, 1.0, 9.0), walk(2, 9.0, 1.0, y=6.0))
    ww = of(events, "wrong_way")
    assert len(ww) == 1 and ww[0].person is not None and ww[0].track_id == 2
    assert ww[0].data == {"line": "gate", "direction": direction_of(9.0, 1.0), "allowed": allowed}
    assert ww[0].ts == pytest.approx(4.0 / 1.2, abs=1.0)


def test_jitter_around_the_line_is_not_walking_the_wrong_way():
    # a person standing on the line, their position jittering up to 0.3 m across it (twice the counting margin)
    eng = engine(lines=[GATE], wrong_way=[WrongWay("gate", "in")])
    rng = np.random.default_rng(3)
    frames = [(k * STEP, {1: (5.0 + rng.uniform(-0.3, 0.3), 5.0)}, []) for k in range(150)]
    events = feed(eng, frames)
    assert eng.crossings  # the jitter is counted as crossings…
    assert of(events, "wrong_way") == []  # …but nobody walked the wrong way


def test_a_wrong_way_walker_with_jitter_is_one_event():
    eng = engine(lines=[GATE], wrong_way=[WrongWay("gate", direction_of(1.0, 9.0))])
    events = run_walks(eng, walk(1, 9.0, 1.0, jitter=0.08, seed=4))
    assert len(of(events, "wrong_way")) == 1


def test_a_wrong_way_walker_on_a_new_track_at_the_line_is_still_caught():
    # the track starts 0.6 m before the line (too little history for a smoothed velocity)
    eng = engine(lines=[GATE], wrong_way=[WrongWay("gate", direction_of(1.0, 9.0))])
    events = run_walks(eng, walk(1, 5.6, 3.0))
    assert len(of(events, "wrong_way")) == 1


def test_the_source_ending_before_the_clear_time_ends_the_episode_when_the_count_fell():
    rule = OccupancyRule(OccupancyAlarm("hall", "hall", 0, 2.0, 0, 5.0), dip_seconds=2.0)
    changes = [rule.step(k * STEP, 1 if k < 20 else 0) for k in range(24)]
    assert [c.phase for c in changes if c is not None] == ["start"]
    end = rule.close(23 * STEP)
    assert end is not None and end.ts == pytest.approx(20 * STEP)


def test_a_track_held_without_being_seen_stops_counting_after_the_grace():
    # 2 people seen inside, then only one of them is seen again; the other's track is never ended by the tracker
    eng = engine(max_people=1, seconds=2.0, clear_seconds=1.0)
    frames = [(k * STEP, {1: (3.0, 3.0), 2: (4.0, 4.0)} if k < 10 else {1: (3.0, 3.0)}, []) for k in range(30)]
    occ = of(feed(eng, frames), "occupancy")
    assert [e.phase for e in occ] == ["start", "end"]
    assert occ[1].ts == pytest.approx(10 * STEP + 2.0, abs=STEP)  # stale after the 2 s exit grace


def stop_and_go(tid, legs, y=5.0, t0=0.0):
    """``legs``: [(x_to, seconds)] from x=legs[0][0]: walk (or stand, when x does not change) to x_to in seconds."""
    x, t, out = legs[0][0], t0, []
    for x_to, secs in legs[1:]:
        n = max(1, round(secs / STEP))
        for k in range(n):
            out.append((t + k * STEP, tid, (x + (x_to - x) * k / n, y)))
        x, t = x_to, t + n * STEP
    return out


def test_a_stop_and_go_walker_who_stops_on_the_line_crosses_it_once():
    # walks the wrong way, stops astride the line for 4 s (standing jitter-free on it), walks on, stops past it
    eng = engine(lines=[GATE], wrong_way=[WrongWay("gate", direction_of(1.0, 9.0))])
    walker = stop_and_go(1, [(8.0, 0), (5.1, 2.4), (5.1, 4.0), (4.3, 1.2), (4.3, 3.0), (1.0, 2.4)])
    events = run_walks(eng, walker)
    assert len(of(events, "wrong_way")) == 1


def test_stop_and_go_walkers_count_while_inside_and_not_after_they_leave():
    # four people walk into the hall, stop, walk a little, stop again (all inside), then walk out together
    walkers = [
        stop_and_go(i, [(0.5, 0), (3.0 + i, 2.0), (3.0 + i, 4.0), (3.5 + i, 1.0), (3.5 + i, 4.0), (9.5, 2.0)], y=5.0)
        for i in range(1, 5)
    ]
    frames: dict[float, dict[int, tuple[float, float]]] = {}
    for w in walkers:
        for t, tid, xy in w:
            frames.setdefault(round(t, 6), {})[tid] = xy
    last = max(frames)
    rows = [(t, pts, [1, 2, 3, 4] if t == last else []) for t, pts in sorted(frames.items())]
    occ = of(feed(engine(max_people=3, seconds=5.0, clear_seconds=1.0), rows), "occupancy")
    assert [e.phase for e in occ] == ["start", "end"]
    assert occ[0].data["count"] == 4 and occ[1].data["peak"] == 4
    assert occ[1].ts <= 12.0  # they walk out between 11 and 13 s: cleared when the count fell
