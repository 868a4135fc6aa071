"""What made the behaviour tier fail on scenes it was not built with, on synthetic tracks (metres, seconds):
newcomers in a crowd taking a lost person's episode, a runner entering at the edge of the view, and annotation
fragments in the ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from metrosight.analytics.engine import BehaviourEngine
from metrosight.analytics.geometry import GroundPlane, Polygon
from metrosight.analytics.model import Observation, Rules, Scene, Zone
from metrosight.eval.behaviour import join_fragments, load_trajectories, merged

SQUARE = [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)]
IDENTITY = GroundPlane(SQUARE, SQUARE)


def feed(engine, frames):
    """``frames``: [(t, [(track_id, x, y), ...], [ended ids])]; returns every event."""
    events = []
    for t, obs, ended in frames:
        events += engine.update(t, [Observation(tid, t, (x, y)) for tid, x, y in obs], ended)
    return events + engine.finish(frames[-1][0])


def test_two_newcomers_in_one_frame_each_continue_the_lost_person_they_are_nearest_to():
    # A stands at (5, 5) for 12 s, B walks past; both tracks are lost in one frame (occlusion) and two new ids
    # start 0.4 s later: the one listed first is nearer B's heading, the second stands where A stood
    rules = Rules(loitering_seconds=15.0, exit_grace_seconds=2.0)
    spot = [(4.0, 4.0), (6.0, 4.0), (6.0, 6.0), (4.0, 6.0)]
    eng = BehaviourEngine(Scene((Zone("spot", Polygon(spot)),), plane=IDENTITY), rules)
    frames = []
    for k in range(31):
        t = 0.4 * k
        frames.append((t, [(1, 5.0, 5.0), (2, 5.6, 2.0 + 0.25 * t)], []))  # B at (5.6, 5.1) when lost
    frames.append((12.4, [], [1, 2]))
    # 3: B walking on, yet nearer A's spot than 4 is to B; 4: A, where A stood
    frames.append((12.8, [(3, 5.2, 5.1), (4, 5.0, 5.02)], []))
    for k in range(1, 20):
        t = 12.8 + 0.4 * k
        frames.append((t, [(3, 5.2, 5.1 + 0.1 * k), (4, 5.0, 5.02)], []))
    events = feed(eng, frames)
    starts = [e for e in events if e.kind == "loitering" and e.phase == "start"]
    # A's stay goes on through the id switch (one episode, from 0 s); the walker never loiters
    assert [(e.start_ts, e.track_id) for e in starts] == [(0.0, 4)]
    assert eng.relinked == 1  # 3 is as near A as B: left a new person rather than guessed


def test_a_newcomer_far_from_where_a_lost_person_was_heading_at_once_is_someone_else():
    # lost at (5, 5) standing; 0.4 s later a new track starts 0.8 m away: too far for so short a gap
    eng = BehaviourEngine(Scene(plane=IDENTITY), Rules(relink_seconds=2.0, relink_metres=1.0))
    frames = [(0.4 * k, [(1, 5.0, 5.0)], []) for k in range(10)]
    frames += [(4.0, [], [1]), (4.4, [(2, 5.8, 5.0)], [])]
    feed(eng, frames)
    assert eng.relinked == 0 and eng.persons == 2
    # the same distance after 1.6 s unseen is within what is known of where they are
    eng = BehaviourEngine(Scene(plane=IDENTITY), Rules(relink_seconds=2.0, relink_metres=1.0))
    frames = [(0.4 * k, [(1, 5.0, 5.0)], []) for k in range(10)]
    frames += [(4.0, [], [1]), (5.2, [(2, 5.8, 5.0)], [])]
    feed(eng, frames)
    assert eng.relinked == 1


@pytest.mark.parametrize("seen_s", [2.4, 3.2])
def test_a_runner_entering_at_the_edge_is_fast_from_their_first_sample(seen_s):
    # 1.8 m/s through a corner of the view, seen only seen_s seconds at 2.5 Hz (students001 had such runs)
    rules = Rules(fast_speed_mps=1.6, min_duration_seconds=1.2, speed_window_seconds=1.6)
    eng = BehaviourEngine(Scene(plane=IDENTITY), rules)
    n = round(seen_s / 0.4) + 1
    frames = [(159.6 + 0.4 * k, [(1, 9.0 - 0.72 * k, 1.0)], []) for k in range(n)]
    events = feed(eng, frames)
    fast = [e for e in events if e.kind == "fast_movement"]
    assert [e.phase for e in fast] == ["start", "end"]
    assert fast[0].start_ts == pytest.approx(159.6)


def test_a_walker_speeding_up_slowly_is_not_fast_from_their_first_sample():
    # starts at 1.0 m/s and reaches 2 m/s only after 4 s: the run begins where the speed crossed, not at the start
    rules = Rules(fast_speed_mps=1.6, min_duration_seconds=1.2, speed_window_seconds=1.6)
    eng = BehaviourEngine(Scene(plane=IDENTITY), rules)
    x, frames = 0.5, []
    for k in range(30):
        t = 0.4 * k
        frames.append((t, [(1, x, 5.0)], []))
        x += 0.4 * min(2.0, 1.0 + 0.25 * t)
    fast = [e for e in feed(eng, frames) if e.kind == "fast_movement"]
    assert fast and fast[0].start_ts > 2.0


def _traj(t0, pts):
    return np.array([(t0 + 0.4 * k, x, y) for k, (x, y) in enumerate(pts)])


def test_ground_truth_joins_a_fragment_that_goes_on_where_the_first_left_off():
    trajs = {
        1: _traj(0.0, [(1.0, 1.0)] * 10),  # stands, last sample at 3.6 s
        2: _traj(4.0, [(1.05, 1.0)] * 5),  # the next sample, 5 cm on: the same person
        3: _traj(0.0, [(5.0, 1.0 + 0.5 * k) for k in range(10)]),  # walks +y at 1.25 m/s
        4: _traj(4.0, [(5.0, 5.4 - 0.5 * k) for k in range(5)]),  # starts where 3 was heading but walks back
        5: _traj(8.0, [(1.05, 1.0)] * 3),  # 2.2 s after 2 ended: not a fragment
    }
    root = join_fragments(trajs)
    assert root == {1: 1, 2: 1, 3: 3, 4: 4, 5: 5}
    people = merged(trajs, root)
    assert sorted(people) == [1, 3, 4, 5] and len(people[1]) == 15


def test_ground_truth_leaves_an_ambiguous_fragment_alone():
    trajs = {
        1: _traj(0.0, [(1.0, 1.0)] * 5),
        2: _traj(2.0, [(1.1, 1.0)] * 5),
        3: _traj(2.0, [(1.0, 1.2)] * 5),  # two candidates: nothing joined
    }
    assert join_fragments(trajs) == {1: 1, 2: 2, 3: 3}


def test_trajectory_time_comes_from_the_sample_rate_not_the_frame_numbering(tmp_path):
    # the same walk (0.5 m a sample = 1.25 m/s at 2.5 Hz) numbered in frames of 25 fps (every 10th) and of 15 fps
    # (every 6th, as BIWI's eth scene): the same times and speeds
    for step in (10, 6):
        path = tmp_path / f"s{step}.txt"
        path.write_text("".join(f"{k * step}\t1.0\t{0.5 * k}\t2.0\n" for k in range(10)))
        t = load_trajectories(path)[1]
        assert t[1, 0] - t[0, 0] == pytest.approx(0.4)
        assert (t[-1, 1] - t[0, 1]) / (t[-1, 0] - t[0, 0]) == pytest.approx(1.25)


def test_a_newcomer_where_a_slow_person_was_and_one_where_they_were_heading_are_rivals():
    # a person shuffling (0.25 m/s) is lost; 0.8 s later one newcomer starts where they were heading (0.2 m ahead)
    # and another where they were last seen: either could be them, so neither continues them (biwi_hotel had one)
    eng = BehaviourEngine(Scene(plane=IDENTITY), Rules(relink_seconds=2.0, relink_metres=1.0))
    frames = [(0.4 * k, [(1, 5.0 - 0.1 * k, 5.0)], []) for k in range(10)]  # last seen at (4.1, 5.0)
    frames += [(4.0, [], [1]), (4.4, [], []), (4.8, [(2, 3.9, 5.0), (3, 4.1, 5.0)], [])]
    feed(eng, frames)
    assert eng.relinked == 0 and eng.persons == 3
    # alone, the one ahead is them
    eng = BehaviourEngine(Scene(plane=IDENTITY), Rules(relink_seconds=2.0, relink_metres=1.0))
    frames = [(0.4 * k, [(1, 5.0 - 0.1 * k, 5.0)], []) for k in range(10)]
    frames += [(4.0, [], [1]), (4.4, [], []), (4.8, [(2, 3.9, 5.0)], [])]
    feed(eng, frames)
    assert eng.relinked == 1
