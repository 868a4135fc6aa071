"""Agreement of the crowd-safety alarms with ground truth computed directly from pedestrian trajectories.

The ETH/UCY trajectories (see :mod:`metrosight.eval.behaviour`) are fed to the engine as tracks (clean, or with
noise, dropped observations and tracker id switches), with the scene's four quadrants as zones (an occupancy alarm
on each) and its two centre lines as counting lines (each allowing ``in`` only). Ground truth comes from the clean
annotations alone:

- *occupancy*: the true count of a zone at an annotated frame is the number of annotated people whose position at
  that frame is inside it. A true episode is a run of frames with the count above the limit, dips of at most the
  dip time merged, lasting the alarm's ``seconds`` or more. The limit of each zone is set from the true counts
  (the 75th percentile of its non-zero counts), so that every scene has episodes however dense it is.
- *wrong way*: a person (annotation fragments joined, :func:`~metrosight.eval.behaviour.join_fragments`) crosses a
  line when, between two of their samples at least ``margin`` from it on opposite sides, their path meets the line
  within its length; the direction is from the side they left. Crossings ``out`` are against the allowed ``in``.

Tolerance bands as for loitering: recall of clear cases (*strict*: occupancy above the limit for ``band_seconds``
longer; crossings from 0.5 m to 0.5 m beyond the line, at 0.5 m/s or more across it, away from its ends), precision
against *lenient* cases (occupancy at the limit or above for ``band_seconds`` shorter; any change of side near the
line, its span from the last sample 0.5 m on the side left to the first 0.5 m on the side reached: someone who
lingers by the line is crossing it all that time). An occupancy event matches a true episode of its zone that it
overlaps; a wrong-way event matches a true crossing of the same person, line and direction within
``match_seconds``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metrosight.analytics.crowd import OccupancyAlarm, WrongWay
from metrosight.analytics.engine import BehaviourEngine
from metrosight.analytics.geometry import Line
from metrosight.analytics.model import OCCUPANCY, WRONG_WAY, BehaviourEvent, CountingLine, Rules, Scene, Zone
from metrosight.eval.behaviour import (
    HarnessRules,
    Perturbation,
    Score,
    as_tracks,
    extent,
    identity_plane,
    join_fragments,
    merged,
    quadrant_zones,
)


@dataclass(frozen=True, slots=True)
class CrowdHarness:
    """The alarms' settings in the harness and the scoring's tolerance bands."""

    seconds: float = 5.0  # occupancy above the limit this long raises the alarm
    clear_seconds: float = 2.0
    quantile: float = 0.75  # each zone's limit: this quantile of its true counts
    band_seconds: float = 2.0
    margin: float = 0.3  # metres: a crossing is from this far on one side to this far on the other
    strict_margin: float = 0.5
    strict_speed: float = 0.5  # m/s across the line
    match_seconds: float = 2.0


@dataclass(frozen=True, slots=True)
class Span:
    """A true episode or crossing: ``person`` (-1: none), ``where`` (zone or line), ``direction`` ('' for zones)."""

    person: int
    where: str
    direction: str
    start: float
    end: float


def centre_lines(trajs: dict[int, np.ndarray]) -> tuple[CountingLine, ...]:
    """The scene's two centre lines (``ns``: x at the middle, from low to high y; ``ew``: y at the middle, from high
    to low x), spanning its extent."""
    allp = np.vstack([t[:, 1:] for t in trajs.values()])
    (x0, y0), (x1, y1) = allp.min(axis=0), allp.max(axis=0)
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    return (CountingLine("ns", Line((xm, y0), (xm, y1))), CountingLine("ew", Line((x1, ym), (x0, ym))))


def true_counts(trajs: dict[int, np.ndarray], zone: Zone) -> tuple[np.ndarray, np.ndarray]:
    """``(frame times, true count of the zone at each)`` over every annotated frame."""
    allt = np.vstack([t for t in trajs.values()])
    times = np.unique(np.round(allt[:, 0], 3))
    inside = zone.polygon.contains(allt[:, 1:])
    idx = np.searchsorted(times, np.round(allt[:, 0], 3))
    return times, np.bincount(idx[inside], minlength=len(times))


def count_runs(times: np.ndarray, above: np.ndarray, dip: float, min_seconds: float, where: str) -> list[Span]:
    """Runs of frames where ``above`` holds, gaps of at most ``dip`` seconds merged, lasting ``min_seconds``+."""
    ts = times[above]
    if len(ts) == 0:
        return []
    breaks = np.nonzero(np.diff(ts) > dip + 1e-6)[0]
    starts, ends = np.r_[ts[0], ts[breaks + 1]], np.r_[ts[breaks], ts[-1]]
    return [Span(-1, where, "", float(s), float(e)) for s, e in zip(starts, ends, strict=True) if e - s >= min_seconds]


def true_crossings(
    trajs: dict[int, np.ndarray],
    line: CountingLine,
    margin: float,
    ends: tuple[float, float],
    min_speed: float,
    band: float = 0.0,
) -> list[Span]:
    """Each person's crossings of ``line`` (see the module docstring); ``ends``: the part of the line's length
    (0 at ``a``, 1 at ``b``) a crossing must meet; ``min_speed``: across the line, m/s (0: any). A crossing's span
    runs from the last sample ``band`` metres or more on the side left to the first as far on the side reached
    (a person who lingers by the line is still crossing it)."""
    out = []
    ln = line.line
    for pid, t in trajs.items():
        d = np.array([ln.signed_distance(p) for p in t[:, 1:]])
        decided = np.nonzero(np.abs(d) >= margin)[0] if margin > 0 else np.nonzero(d != 0)[0]
        for i, j in zip(decided, decided[1:], strict=False):
            if np.sign(d[i]) == np.sign(d[j]):
                continue
            f = d[i] / (d[i] - d[j])  # where the straight path between the two samples meets the line
            along = ln.along(t[i, 1:] + f * (t[j, 1:] - t[i, 1:]))
            dt = float(t[j, 0] - t[i, 0])
            if not (ends[0] <= along <= ends[1]) or abs(d[i] - d[j]) < min_speed * dt:
                continue
            direction = "in" if d[j] < 0 else "out"
            far_before = np.nonzero(np.sign(d[: i + 1]) * np.sign(d[i]) * np.abs(d[: i + 1]) >= band)[0]
            far_after = np.nonzero(np.sign(d[j:]) * np.sign(d[j]) * np.abs(d[j:]) >= band)[0]
            i0 = min(int(i), int(far_before[-1]) if len(far_before) else 0)
            j1 = max(int(j), int(j) + int(far_after[0]) if len(far_after) else len(t) - 1)
            out.append(Span(pid, line.name, direction, float(t[i0, 0]), float(t[j1, 0])))
    return out


def evaluate_crowd(
    trajs: dict[int, np.ndarray], perturbation: Perturbation, ch: CrowdHarness = CrowdHarness()
) -> dict[str, Score]:
    """Run the engine with the scene's occupancy and wrong-way alarms; score both against the ground truth."""
    r: Rules = HarnessRules().rules
    zones = quadrant_zones(trajs)
    lines = centre_lines(trajs)
    root = join_fragments(trajs)
    people = merged(trajs, root)
    counts = {z.name: true_counts(trajs, z) for z in zones}
    limits = {n: int(np.quantile(c[c > 0], ch.quantile)) if np.any(c > 0) else 0 for n, (_, c) in counts.items()}
    alarms = tuple(
        OccupancyAlarm(z.name, z.name, limits[z.name], ch.seconds, limits[z.name], ch.clear_seconds) for z in zones
    )
    scene = Scene(
        zones, lines, plane=identity_plane(), view=extent(trajs), occupancy=alarms,
        wrong_way=tuple(WrongWay(ln.name, "in") for ln in lines),
    )  # fmt: skip
    engine = BehaviourEngine(scene, r)
    frames, owner = as_tracks(trajs, perturbation)
    events: list[BehaviourEvent] = []
    for ts, obs, ended in frames:
        events += engine.update(ts, obs, ended)
    events += engine.finish(frames[-1][0] if frames else 0.0)
    owner = {tid: root[pid] for tid, pid in owner.items()}

    dip, t_, b = r.exit_grace_seconds, ch.seconds, ch.band_seconds
    strict_occ, lenient_occ = [], []
    for n, (times, c) in counts.items():
        strict_occ += count_runs(times, c > limits[n], dip, t_ + b, n)
        lenient_occ += count_runs(times, c >= limits[n], dip, t_ - b, n)
    strict_ww, lenient_ww = [], []
    for ln in lines:
        strict_ww += [s for s in true_crossings(people, ln, ch.strict_margin, (0.05, 0.95), ch.strict_speed)]
        lenient_ww += [s for s in true_crossings(people, ln, 0.0, (-0.2, 1.2), 0.0, ch.strict_margin)]
    strict_ww = [s for s in strict_ww if s.direction == "out"]
    lenient_ww = [s for s in lenient_ww if s.direction == "out"]
    return {
        OCCUPANCY: score_occupancy(events, strict_occ, lenient_occ),
        WRONG_WAY: score_wrong_way(events, owner, strict_ww, lenient_ww, ch.match_seconds),
    }


def _overlaps(a0: float, a1: float, b0: float, b1: float) -> bool:
    return a0 <= b1 and b0 <= a1


def score_occupancy(events: list[BehaviourEvent], strict: list[Span], lenient: list[Span]) -> Score:
    """Each raised alarm (its span: raised … cleared) against true episodes of its zone that it overlaps."""
    ends = {e.key: e for e in events if e.kind == OCCUPANCY and e.phase == "end"}
    spans = [
        (str(e.data["zone"]), e.start_ts, ends.get(e.key, e).ts)
        for e in events
        if e.kind == OCCUPANCY and e.phase == "start"
    ]
    s = Score(OCCUPANCY, events=len(spans), truth=len(strict))
    s.true_positive_events = sum(
        any(g.where == z and _overlaps(a0, a1, g.start, g.end) for g in lenient) for z, a0, a1 in spans
    )
    for g in strict:
        hits = [sp for sp in spans if sp[0] == g.where and _overlaps(sp[1], sp[2], g.start, g.end)]
        if hits:
            s.found += 1
            s.start_errors.append(min(abs(sp[1] - g.start) for sp in hits))
    return s


def score_wrong_way(
    events: list[BehaviourEvent], owner: dict[int, int], strict: list[Span], lenient: list[Span], tol: float
) -> Score:
    """Each wrong-way event against true crossings of the same person, line and direction near its time."""
    evs = [
        (owner[e.track_id], str(e.data["line"]), str(e.data["direction"]), e.ts)
        for e in events
        if e.kind == WRONG_WAY and e.track_id is not None
    ]
    s = Score(WRONG_WAY, events=len(evs), truth=len(strict))

    def near(g: Span, ev: tuple[int, str, str, float]) -> bool:
        pid, line, direction, ts = ev
        return g.person == pid and g.where == line and g.direction == direction and g.start - tol <= ts <= g.end + tol

    s.true_positive_events = sum(any(near(g, ev) for g in lenient) for ev in evs)
    for g in strict:
        hits = [ev for ev in evs if near(g, ev)]
        if hits:
            s.found += 1
            s.start_errors.append(min(abs(ev[3] - g.end) for ev in hits))
    return s
