"""Dwell in a zone and the loitering rule.

A *stay* starts when a person is first seen inside a zone and lasts while they are seen inside it again within
``exit_grace`` seconds (detector gaps and jitter across the zone's edge do not split a stay). A stay longer than
the zone's loitering time becomes one loitering event; when the stay ends the event gets its end and duration.
The duration is from the first to the last time the person was seen inside.
"""

from __future__ import annotations

from dataclasses import dataclass

EPS = 1e-6  # media times are sums of frame periods: 33.2 - 31.2 is 2.0000000000000036


@dataclass(slots=True)
class Stay:
    """One person's stay in one zone."""

    since: float
    last_inside: float
    alerted: bool = False

    @property
    def duration(self) -> float:
        return self.last_inside - self.since


@dataclass(frozen=True, slots=True)
class StayChange:
    phase: str  # "start" (became loitering) | "end" (a loitering stay ended)
    since: float
    ts: float
    duration: float


class DwellRule:
    """Decides, for one zone, when a stay starts, becomes loitering, and ends.

    Args:
        loitering_seconds: a stay longer than this is loitering.
        exit_grace: seconds a person may be unseen inside the zone before the stay ends.
    """

    def __init__(self, loitering_seconds: float, exit_grace: float) -> None:
        self.loitering_seconds = loitering_seconds
        self.exit_grace = exit_grace

    def step(self, stay: Stay | None, ts: float, inside: bool) -> tuple[Stay | None, StayChange | None]:
        """One observation of the person at ``ts``; returns the updated stay (``None``: not staying) and a change."""
        if inside:
            if stay is None or ts - stay.last_inside > self.exit_grace + EPS:
                ended = self.close(stay) if stay is not None else None
                if ended is not None:
                    return Stay(ts, ts), ended
                stay = Stay(ts, ts)
            stay.last_inside = ts
            if not stay.alerted and stay.duration >= self.loitering_seconds - EPS:
                stay.alerted = True
                return stay, StayChange("start", stay.since, ts, stay.duration)
            return stay, None
        if stay is not None and ts - stay.last_inside > self.exit_grace + EPS:
            return None, self.close(stay)
        return stay, None

    def expire(self, stay: Stay, ts: float) -> tuple[Stay | None, StayChange | None]:
        """No observation of the person at ``ts`` (time passes): the stay ends once the grace has run out."""
        if ts - stay.last_inside > self.exit_grace + EPS:
            return None, self.close(stay)
        return stay, None

    @staticmethod
    def close(stay: Stay) -> StayChange | None:
        """End ``stay``: a change only if it had become loitering."""
        if stay.alerted:
            return StayChange("end", stay.since, stay.last_inside, stay.duration)
        return None
