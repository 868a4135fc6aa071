"""Line counting: entries and exits across a line, with hysteresis.

A person's side of the line is only decided when they are more than ``margin`` away from it, so a person standing
on the line (and their jittering box) is never counted twice; a crossing is a change of decided side while the
person is within the line's extent.
"""

from __future__ import annotations

from dataclasses import dataclass

from metrosight.analytics.geometry import Line


@dataclass(slots=True)
class SideState:
    side: int = 0  # -1 left, +1 right, 0 not yet decided
    ts: float = 0.0  # media time of the last observation on the decided side
    distance: float = 0.0  # its signed distance from the line (scaled)


class LineRule:
    """Counts crossings of one :class:`~metrosight.analytics.geometry.Line`.

    Args:
        line: the line (zone plane coordinates).
        margin: the hysteresis distance, in the units the caller scales distances to.
        extent: how far past either end (as a fraction of the line's length) a crossing still counts.
    """

    def __init__(self, line: Line, margin: float, extent: float = 0.1) -> None:
        self.line = line
        self.margin = margin
        self.extent = extent

    def step(self, state: SideState, point: tuple[float, float], scale: float = 1.0, ts: float = 0.0) -> str | None:
        """The person is at ``point`` at media time ``ts``; ``scale`` divides distances (a body height in pixels,
        or 1). ``state`` keeps the last decided side, and when and how far from the line it was last seen there.

        Returns:
            ``"in"`` (right → left), ``"out"`` (left → right) or ``None``.
        """
        d = self.line.signed_distance(point) / scale
        if abs(d) <= self.margin:
            return None
        side = -1 if d < 0 else 1
        previous, state.side = state.side, side
        state.ts, state.distance = ts, d
        if previous == 0 or previous == side:
            return None
        if not (-self.extent <= self.line.along(point) <= 1.0 + self.extent):
            return None
        return "in" if side < 0 else "out"
