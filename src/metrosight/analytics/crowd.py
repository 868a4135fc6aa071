"""Crowd-safety rules (no identity, as for loitering): a zone holding too many people for too long, and people
crossing a line against its configured direction.

*Occupancy*: the count of a zone is the number of live person tracks whose latest point is inside it (a person
missed by the detector for a few frames keeps their place until the tracker ends their track). An alarm is raised
once the count has been above ``max_people`` for ``seconds`` (dips to ``max_people`` or fewer lasting no longer
than ``dip_seconds`` do not restart the wait: one person flickering at the zone's edge), and cleared once the count
has been at most ``clear_people`` for ``clear_seconds`` (hysteresis: a count hovering around the limit makes one
alarm, not many). One event per episode: ``start`` when raised, ``end`` when cleared (or when the source ends).

*Wrong way*: a crossing of a counting line (with the line's hysteresis margin, :mod:`.counting`) against the
line's allowed direction, made while the person's smoothed velocity across the line points the same way at
``min_speed`` or more: a person standing on the line, whose position jitters across it, is not walking the wrong
way.
"""

from __future__ import annotations

from dataclasses import dataclass

EPS = 1e-6  # media times are sums of frame periods


@dataclass(frozen=True, slots=True)
class OccupancyAlarm:
    """A zone that may hold at most ``max_people`` people (more for ``seconds`` raises the alarm).

    Attributes:
        name: the alarm's name (events carry it).
        zone: the zone's name (a :class:`~metrosight.analytics.model.Zone` of the scene).
        max_people: more people than this is too many.
        seconds: too many for this long raises the alarm.
        clear_people: the alarm clears when the zone holds at most this many (``<= max_people``)…
        clear_seconds: …for this long.
    """

    name: str
    zone: str
    max_people: int
    seconds: float
    clear_people: int
    clear_seconds: float


@dataclass(frozen=True, slots=True)
class WrongWay:
    """A counting line crossed only one way: ``allowed`` is ``"in"`` or ``"out"`` (see
    :class:`~metrosight.analytics.geometry.Line`); a crossing the other way is a wrong-way event."""

    line: str
    allowed: str


@dataclass(frozen=True, slots=True)
class OccupancyChange:
    """What :meth:`OccupancyRule.step` decided: the alarm was ``start``-ed (raised) or ``end``-ed (cleared)."""

    phase: str
    since: float  # when the count went above the limit
    ts: float  # start: when raised; end: when the count fell to the clearing level
    count: int  # start: the count when raised; end: the peak count of the episode
    peak: int


class OccupancyRule:
    """The occupancy alarm of one zone; a state machine over ``(ts, count)`` steps.

    Args:
        alarm: the limits.
        dip_seconds: a dip to the limit or below lasting no longer than this does not restart the wait.
    """

    def __init__(self, alarm: OccupancyAlarm, dip_seconds: float) -> None:
        self.alarm = alarm
        self.dip_seconds = dip_seconds
        self.above_since: float | None = None
        self.last_above = 0.0
        self.raised = False
        self.clear_since: float | None = None
        self.peak = 0

    def step(self, ts: float, count: int) -> OccupancyChange | None:
        """The zone holds ``count`` people at media time ``ts`` (seconds, non-decreasing)."""
        a = self.alarm
        if count > a.max_people:
            if self.above_since is None or (not self.raised and ts - self.last_above > self.dip_seconds + EPS):
                self.above_since, self.peak = ts, 0
            self.last_above = ts
            self.peak = max(self.peak, count)
            self.clear_since = None
            if not self.raised and ts - self.above_since >= a.seconds - EPS:
                self.raised = True
                return OccupancyChange("start", self.above_since, ts, count, self.peak)
            return None
        if not self.raised:
            if self.above_since is not None and ts - self.last_above > self.dip_seconds + EPS:
                self.above_since = None
            return None
        if count > a.clear_people:
            self.clear_since = None  # between the clearing level and the limit: still raised
            return None
        if self.clear_since is None:
            self.clear_since = ts
        if ts - self.clear_since >= a.clear_seconds - EPS:
            return self.close(ts)
        return None

    def close(self, ts: float) -> OccupancyChange | None:
        """End the episode (cleared, or the source ended at ``ts``): it ended when the count fell to the clearing
        level, if it had, else at ``ts``; ``end`` only if the alarm was raised."""
        change = None
        if self.raised and self.above_since is not None:
            end = self.clear_since if self.clear_since is not None else ts
            change = OccupancyChange("end", self.above_since, max(end, self.above_since), self.peak, self.peak)
        self.above_since, self.raised, self.clear_since, self.peak = None, False, None, 0
        return change


def against(allowed: str, direction: str, normal_speed: float, min_speed: float) -> bool:
    """Whether a crossing in ``direction`` (``"in"``/``"out"``) of a line that allows ``allowed`` is a wrong-way
    crossing: the other direction, walked at ``min_speed`` or more across the line.

    Args:
        normal_speed: the person's smoothed velocity across the line, positive towards its right side (the side
            an ``"out"`` crossing ends on), in the rules' speed unit.
    """
    if direction == allowed:
        return False
    toward = normal_speed if direction == "out" else -normal_speed
    return toward >= min_speed
