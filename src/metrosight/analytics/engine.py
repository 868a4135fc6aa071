"""The analytics of one camera: observations of tracked people in, behaviour events and counts out.

:class:`BehaviourEngine` is a pure state machine over time (no I/O, no clock: every time is the media time given
with the observations). It

- re-links tracker id switches: a track that starts within ``relink_seconds`` of another one ending, within
  ``relink_metres`` (or ``relink_heights`` body heights) of where that one was heading (constant velocity), continues
  the same person, unless that one was lost at the edge of the view (then they left it);
- keeps each person's stays per zone (:mod:`~metrosight.analytics.dwell`) → loitering events;
- fits each person's smoothed speed (:mod:`~metrosight.analytics.speed`) → fast-movement events;
- counts line crossings (:mod:`~metrosight.analytics.counting`) and the occupancy of each zone;
- raises the crowd-safety alarms (:mod:`~metrosight.analytics.crowd`): a zone holding too many people too long
  (``occupancy``), a line crossed against its allowed direction (``wrong_way``).

A person whose track is lost is kept for ``relink_seconds``; then their stays and episodes end at the last time
they were seen. Persons are per-camera numbers and nothing else: no appearance, no face, no identity is kept.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from metrosight.analytics.counting import LineRule, SideState
from metrosight.analytics.crowd import OccupancyChange, OccupancyRule, against
from metrosight.analytics.dwell import DwellRule, Stay, StayChange
from metrosight.analytics.model import (
    FAST_MOVEMENT,
    LINE_CROSSING,
    LOITERING,
    OCCUPANCY,
    WRONG_WAY,
    BehaviourEvent,
    Observation,
    Rules,
    Scene,
)
from metrosight.analytics.speed import FastChange, FastMovementRule, FastState, SpeedEstimator

AMBIGUOUS = 1.5  # a re-link needs every rival at least this many times as far as the chosen pair


@dataclass(slots=True)
class _Person:
    person: int
    track_id: int
    first_ts: float
    last_ts: float
    point: tuple[float, float]
    ground: tuple[float, float]
    scale: float
    speed: SpeedEstimator
    fast: FastState = field(default_factory=FastState)
    stays: dict[str, Stay] = field(default_factory=dict)
    sides: dict[str, SideState] = field(default_factory=dict)
    lost: bool = False
    at_edge: bool = False
    velocity: tuple[float, float] = (0.0, 0.0)
    episodes: int = 0
    last_speed: float | None = None


class BehaviourEngine:
    """Zones, dwell, speed and counting for one camera.

    Args:
        scene: zones, counting lines and the optional ground calibration.
        rules: the thresholds (seconds, metres or body heights).
    """

    def __init__(self, scene: Scene, rules: Rules) -> None:
        self.scene = scene
        self.rules = rules
        self.calibrated = scene.plane is not None
        self.unit = "m/s" if self.calibrated else "heights/s"
        self._dwell = {
            z.name: DwellRule(z.loitering_seconds or rules.loitering_seconds, rules.exit_grace_seconds)
            for z in scene.zones
        }
        threshold = rules.fast_speed_mps if self.calibrated else rules.fast_speed_heights
        self._fast = FastMovementRule(threshold, rules.min_duration_seconds, rules.speed_window_seconds)
        self._lines = {ln.name: LineRule(ln.line, rules.line_margin) for ln in scene.lines}
        self._polygons = {z.name: z.polygon for z in scene.zones}
        self._occupancy = [OccupancyRule(a, rules.exit_grace_seconds) for a in scene.occupancy]
        self._allowed = {w.line: w.allowed for w in scene.wrong_way}
        depth = rules.wrong_way_metres if self.calibrated else rules.wrong_way_depth_heights
        self._deep = {ln.name: LineRule(ln.line, depth) for ln in scene.lines if ln.name in self._allowed}
        self._wrong_speed = rules.wrong_way_mps if self.calibrated else rules.wrong_way_heights
        self._by_track: dict[int, _Person] = {}
        self._lost: list[_Person] = []
        self._next_person = 1
        self.crossings: Counter[tuple[str, str]] = Counter()
        self.events_started: Counter[str] = Counter()
        self.relinked = 0
        self.persons = 0
        self.peak_occupancy: dict[str, int] = {z.name: 0 for z in scene.zones}

    # -- public -----------------------------------------------------------------------------------------------
    def update(self, ts: float, observations: Iterable[Observation], ended: Iterable[int] = ()) -> list[BehaviourEvent]:
        """Advance to media time ``ts``.

        Args:
            ts: media time of this frame, seconds (non-decreasing from call to call).
            observations: the people seen in this frame (one per track at most).
            ended: tracker ids whose tracks ended at this frame.

        Returns:
            The events of this step, in order.
        """
        events: list[BehaviourEvent] = []
        for tid in ended:  # first, so that a track started in this frame can continue one that ended in it
            person = self._by_track.pop(tid, None)
            if person is not None:
                person.lost = True
                self._lost.append(person)
        obs = list(observations)
        ground = self._ground(obs)
        relinks = self._relinks([(o, g) for o, g in zip(obs, ground, strict=True) if o.track_id not in self._by_track])
        for o, g in zip(obs, ground, strict=True):
            person = self._by_track.get(o.track_id)
            if person is None:
                person = self._new_track(o, g, relinks.get(o.track_id))
            events.extend(self._observe(person, o, g))
        events.extend(self._age(ts))
        events.extend(self._crowd(ts))
        for name in self.peak_occupancy:
            self.peak_occupancy[name] = max(self.peak_occupancy[name], self.occupancy().get(name, 0))
        return events

    def finish(self, ts: float) -> list[BehaviourEvent]:
        """The source ended at ``ts``: end every stay and episode."""
        events: list[BehaviourEvent] = []
        for person in [*self._by_track.values(), *self._lost]:
            events.extend(self._close_person(person))
        self._by_track.clear()
        self._lost.clear()
        for rule in self._occupancy:
            change = rule.close(ts)
            if change is not None:
                events.append(self._occupancy_event(rule, change))
        return events

    def counts(self, ts: float | None = None) -> dict[str, int]:
        """People in each zone at media time ``ts`` (default: the latest): live tracks whose latest point is inside
        it, seen within ``exit_grace_seconds`` (a track the tracker still holds without seeing anyone is not a
        person in the zone). What the occupancy alarms count; :meth:`occupancy` counts stays, which outlast a step
        out by the exit grace."""
        grace = self.rules.exit_grace_seconds + 1e-6
        points = [p.point for p in self._by_track.values() if ts is None or ts - p.last_ts <= grace]
        if not points:
            return {name: 0 for name in self._polygons}
        at = np.asarray(points, dtype=np.float64)
        return {name: int(np.count_nonzero(polygon.contains(at))) for name, polygon in self._polygons.items()}

    def occupancy(self) -> dict[str, int]:
        """People currently staying in each zone (seen inside within the exit grace)."""
        occ = {z.name: 0 for z in self.scene.zones}
        for person in self._by_track.values():
            for name in person.stays:
                occ[name] += 1
        return occ

    def speed_of(self, track_id: int) -> float | None:
        """The latest smoothed speed of a live track (``unit`` per second), for display."""
        person = self._by_track.get(track_id)
        return person.last_speed if person else None

    # -- internals --------------------------------------------------------------------------------------------
    def _ground(self, obs: list[Observation]) -> list[tuple[tuple[float, float], float]]:
        """Each observation's point in speed units (metres, or pixels) and its scale (1, or the body height)."""
        if not obs:
            return []
        if self.scene.plane is not None:
            world = self.scene.plane.to_world(np.array([o.point for o in obs], dtype=np.float64))
            return [((float(w[0]), float(w[1])), 1.0) for w in world]
        return [(o.point, float(o.height) if o.height and o.height > 0 else 1.0) for o in obs]

    def _relink_limit(self, scale: float, gap: float) -> float:
        """How far from where a lost person was heading a new track may start and still be them: half the limit
        at once (box jitter, a step), growing to the whole limit over ``relink_seconds`` unseen (the longer they
        are unseen, the less is known of where they are)."""
        full = self.rules.relink_metres if self.calibrated else self.rules.relink_heights * scale
        grown = min(1.0, gap / self.rules.relink_seconds) if self.rules.relink_seconds > 0 else 1.0
        return full * (0.5 + 0.5 * grown)

    def _relinks(self, new: list[tuple[Observation, tuple[tuple[float, float], float]]]) -> dict[int, _Person]:
        """Which lost person each new track continues: every (new track, lost person) pair within the re-link limit
        of where that person was heading, nearest pairs first, each side used once. In a crowd several tracks start
        in one frame near several lost people; taking them in arrival order would give a lost person to the first
        newcomer near them, not to the one where they were heading. A pair with a rival (another newcomer for the
        same lost person, or another lost person for the same newcomer, less than ``AMBIGUOUS`` times as far from
        where they were heading or where they were last seen: a slow person's heading is mostly noise) is not
        re-linked: guessing would give one person's stay to another; not re-linking only splits it."""
        pairs = []  # (distance to the heading, new track id, lost index, nearer of heading and last seen)
        for o, ((gx, gy), scale) in new:
            for k, cand in enumerate(self._lost):
                gap = o.ts - cand.last_ts
                if cand.at_edge or gap > self.rules.relink_seconds or gap < 0:
                    continue
                px, py = cand.ground[0] + cand.velocity[0] * gap, cand.ground[1] + cand.velocity[1] * gap
                d = math.hypot(gx - px, gy - py)
                near = min(d, math.hypot(gx - cand.ground[0], gy - cand.ground[1]))
                limit = self._relink_limit(max(scale, cand.scale), gap)
                if near <= limit:
                    pairs.append((d if d <= limit else math.inf, o.track_id, k, near))
        out: dict[int, _Person] = {}
        taken: set[int] = set()
        for d, tid, k, _ in sorted(pairs):
            if math.isinf(d):
                break
            rival = min((n2 for _, t2, k2, n2 in pairs if (t2 == tid) != (k2 == k)), default=math.inf)
            if tid not in out and k not in taken and rival > AMBIGUOUS * d:
                out[tid] = self._lost[k]
                taken.add(k)
        return out

    def _new_track(self, o: Observation, g: tuple[tuple[float, float], float], best: _Person | None) -> _Person:
        (gx, gy), scale = g
        if best is not None:
            self._lost.remove(best)
            best.lost = False
            best.track_id = o.track_id
            self.relinked += 1
            person = best
        else:
            person = _Person(
                self._next_person,
                o.track_id,
                o.ts,
                o.ts,
                o.point,
                (gx, gy),
                scale,
                SpeedEstimator(self.rules.speed_window_seconds),
            )
            self._next_person += 1
            self.persons += 1
        self._by_track[o.track_id] = person
        return person

    def _observe(self, person: _Person, o: Observation, g: tuple[tuple[float, float], float]) -> list[BehaviourEvent]:
        (gx, gy), scale = g
        person.last_ts, person.point, person.ground, person.scale = o.ts, o.point, (gx, gy), scale
        events: list[BehaviourEvent] = []
        for zone in self.scene.zones:
            inside = zone.polygon.contains_point(o.point)
            stay, change = self._dwell[zone.name].step(person.stays.get(zone.name), o.ts, inside)
            if stay is None:
                person.stays.pop(zone.name, None)
            else:
                person.stays[zone.name] = stay
            if change is not None:
                events.append(self._stay_event(person, zone.name, change))
        view = self.scene.view
        if view is not None:
            margin = self.rules.edge_margin_heights * o.height if o.height else self.rules.edge_margin_metres
            person.at_edge = not view.contains_point(o.point) or view.edge_distance(o.point) < margin
        if o.speed_ok:
            speed = person.speed.add(o.ts, gx, gy, scale)
            person.last_speed = speed
            vel = person.speed.velocity()
            person.velocity = (vel[0], vel[1]) if vel is not None else (0.0, 0.0)
            fc = self._fast.step(person.fast, o.ts, speed, person.first_ts, person.speed.window_start)
            if fc is not None:
                events.append(self._fast_event(person, fc))
        for name, rule in self._lines.items():
            side = person.sides.setdefault(name, SideState())
            deep = self._deep.get(name)
            if deep is not None:  # a wrong-way crossing is counted with the deeper margin
                ww_side = person.sides.setdefault(f"wrong-way:{name}", SideState())
                before = (ww_side.ts, ww_side.distance)
                ww = deep.step(ww_side, o.point, 1.0 if self.calibrated else scale, o.ts)
                if ww is not None:
                    events.extend(self._wrong_way(person, name, ww, deep, o.ts, before, ww_side))
            direction = rule.step(side, o.point, 1.0 if self.calibrated else scale, o.ts)
            if direction is not None:
                self.crossings[(name, direction)] += 1
                events.append(
                    BehaviourEvent(
                        LINE_CROSSING,
                        "instant",
                        f"{LINE_CROSSING}:{person.person}:{name}:{self._episode(person)}",
                        person.person,
                        person.track_id,
                        o.ts,
                        o.ts,
                        {"line": name, "direction": direction},
                    )
                )
        return events

    def _age(self, ts: float) -> list[BehaviourEvent]:
        events: list[BehaviourEvent] = []
        for person in list(self._lost):
            if ts - person.last_ts > self.rules.relink_seconds:
                self._lost.remove(person)
                events.extend(self._close_person(person))
        for person in self._by_track.values():
            if person.last_ts >= ts:
                continue
            for name, stay in list(person.stays.items()):
                kept, change = self._dwell[name].expire(stay, ts)
                if kept is None:
                    del person.stays[name]
                if change is not None:
                    events.append(self._stay_event(person, name, change))
        return events

    def _close_person(self, person: _Person) -> list[BehaviourEvent]:
        events = []
        for name, stay in person.stays.items():
            change = DwellRule.close(stay)
            if change is not None:
                events.append(self._stay_event(person, name, change))
        person.stays.clear()
        fc = self._fast.close(person.fast)
        if fc is not None:
            events.append(self._fast_event(person, fc))
        return events

    def _episode(self, person: _Person) -> int:
        person.episodes += 1
        return person.episodes

    def _key(self, person: _Person, kind: str, zone: str, since: float) -> str:
        return f"{kind}:{person.person}:{zone}:{since:.3f}"

    def _stay_event(self, person: _Person, zone: str, change: StayChange) -> BehaviourEvent:
        if change.phase == "start":
            self.events_started[LOITERING] += 1
        return BehaviourEvent(
            LOITERING,
            change.phase,
            self._key(person, LOITERING, zone, change.since),
            person.person,
            person.track_id,
            change.since,
            change.ts,
            {"zone": zone, "duration_s": round(change.duration, 2)},
        )

    def _fast_event(self, person: _Person, change: FastChange) -> BehaviourEvent:
        if change.phase == "start":
            self.events_started[FAST_MOVEMENT] += 1
        return BehaviourEvent(
            FAST_MOVEMENT,
            change.phase,
            self._key(person, FAST_MOVEMENT, "", change.start_ts),
            person.person,
            person.track_id,
            change.start_ts,
            change.end_ts,
            {
                "peak_speed": round(change.peak, 2),
                "unit": self.unit,
                "duration_s": round(change.end_ts - change.start_ts, 2),
            },
        )

    # -- crowd-safety alarms ------------------------------------------------------------------------------------
    def _crowd(self, ts: float) -> list[BehaviourEvent]:
        if not self._occupancy:
            return []
        counts = self.counts(ts)
        events = []
        for rule in self._occupancy:
            change = rule.step(ts, counts.get(rule.alarm.zone, 0))
            if change is not None:
                events.append(self._occupancy_event(rule, change))
        return events

    def _occupancy_event(self, rule: OccupancyRule, change: OccupancyChange) -> BehaviourEvent:
        a = rule.alarm
        if change.phase == "start":
            self.events_started[OCCUPANCY] += 1
        data: dict[str, object] = {"alarm": a.name, "zone": a.zone, "max_people": a.max_people}
        data["count" if change.phase == "start" else "peak"] = change.count
        data["duration_s"] = round(change.ts - change.since, 2)
        return BehaviourEvent(
            OCCUPANCY,
            change.phase,
            f"{OCCUPANCY}:{a.name}:{change.since:.3f}",
            None,
            None,
            change.since,
            change.ts,
            data,
        )

    def _wrong_way(
        self,
        person: _Person,
        line: str,
        direction: str,
        rule: LineRule,
        ts: float,
        before: tuple[float, float],
        after: SideState,
    ) -> list[BehaviourEvent]:
        allowed = self._allowed.get(line)
        if allowed is None:
            return []
        # the velocity across the line, towards its right side, in the rules' speed unit: the smoothed velocity,
        # or (too little history for one: a new track, missed detections) the crossing's own: from the last
        # position on the side left to this one
        if person.speed.velocity() is not None:
            normal = rule.line.across(person.velocity) / (1.0 if self.calibrated else person.scale)
        else:
            dt = ts - before[0]
            normal = (after.distance - before[1]) / dt if dt > 0 else 0.0
        if not against(allowed, direction, normal, self._wrong_speed):
            return []
        self.events_started[WRONG_WAY] += 1
        return [
            BehaviourEvent(
                WRONG_WAY,
                "instant",
                f"{WRONG_WAY}:{person.person}:{line}:{self._episode(person)}",
                person.person,
                person.track_id,
                ts,
                ts,
                {"line": line, "direction": direction, "allowed": allowed},
            )
        ]
