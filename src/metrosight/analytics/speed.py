"""Speed with smoothing, and the fast-movement rule.

Speed is the slope of a least-squares line fitted to the last ``window`` seconds of a person's positions, not a
frame-to-frame difference: a detector's box jitter of a few pixels a frame averages out, and dropped frames only
thin the fit. Units: metres per second with a ground calibration, body heights per second without one (pixel speed
divided by the median box height over the window, so it does not depend on the distance to the camera).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


class SpeedEstimator:
    """Smoothed speed of one person.

    Args:
        window: seconds of history fitted.
        min_samples: fewer positions than this give no speed.
        min_span: the positions must span at least this fraction of ``window``.

    Where missed detections leave fewer than ``min_samples`` positions in the window, the last ``min_samples``
    positions are fitted instead, as long as they lie within twice the window (a person seen once, missed for a
    second and seen again while running has a speed: the average over what was seen).
    """

    def __init__(self, window: float = 1.0, min_samples: int = 3, min_span: float = 0.6) -> None:
        self.window = window
        self.min_samples = min_samples
        self.min_span = min_span
        self._hist: deque[tuple[float, float, float, float]] = deque()

    def add(self, ts: float, x: float, y: float, scale: float = 1.0) -> float | None:
        """Add a position (``scale``: the body height in the same units as ``x``/``y``, or 1 for metres) and return
        the smoothed speed in units of ``scale`` per second, or ``None`` while there is too little history."""
        if self._hist and ts <= self._hist[-1][0]:
            return self.speed()
        self._hist.append((ts, x, y, scale))
        while self._hist and self._hist[0][0] < ts - 2.0 * self.window - 1e-9:
            self._hist.popleft()
        return self.speed()

    def _fitted(self) -> list[tuple[float, float, float, float]]:
        """The positions the speed is fitted to: those in the window, or the last ``min_samples`` kept."""
        if not self._hist:
            return []
        newest = self._hist[-1][0]
        rows = [r for r in self._hist if r[0] >= newest - self.window - 1e-9]
        if len(rows) < self.min_samples:
            rows = list(self._hist)[-self.min_samples :]
        return rows

    def velocity(self) -> tuple[float, float, float] | None:
        """``(vx, vy, scale)``: the fitted velocity in position units per second and the median scale, or ``None``."""
        rows = self._fitted()
        if len(rows) < self.min_samples:
            return None
        h = np.asarray(rows, dtype=np.float64)
        t = h[:, 0]
        span = float(t[-1] - t[0])
        if span < self.min_span * self.window:
            return None
        tc = t - t.mean()
        denom = float(np.dot(tc, tc))
        vx = float(np.dot(tc, h[:, 1] - h[:, 1].mean())) / denom
        vy = float(np.dot(tc, h[:, 2] - h[:, 2].mean())) / denom
        return vx, vy, float(np.median(h[:, 3]))

    @property
    def window_start(self) -> float | None:
        """Media time of the oldest position fitted (``None``: none)."""
        rows = self._fitted()
        return rows[0][0] if rows else None

    def speed(self) -> float | None:
        v = self.velocity()
        if v is None or v[2] <= 0:
            return None
        return float(np.hypot(v[0], v[1])) / v[2]

    def clear(self) -> None:
        self._hist.clear()


@dataclass(slots=True)
class FastState:
    """One person's fast-movement episode in progress (times are the media times the fitted speeds describe)."""

    above_since: float | None = None  # where the run of speeds above the threshold began
    last_above: float = 0.0
    peak: float = 0.0
    alerted: bool = False


@dataclass(frozen=True, slots=True)
class FastChange:
    """What :meth:`FastMovementRule.step` decided: an episode ``started`` (became an event) or ``ended``."""

    phase: str  # "start" | "end"
    start_ts: float
    end_ts: float
    peak: float


EPS = 1e-6  # media times are sums of frame periods: 160.8 - 159.6 is 1.1999999999999886


class FastMovementRule:
    """Speed above ``threshold`` sustained for ``min_duration`` seconds is fast movement.

    A speed fitted over ``window`` seconds describes the middle of its window, so every time here is moved back by
    half the window (``lag``). A person who is already fast when first seen (entering at the edge of the view at a
    run) has been fast since they appeared: when the first fit above the threshold reaches back to their first
    sample, the run starts there, as it would for a speed measured from the first sample on (otherwise a run
    through a corner of the view, a few seconds long, is missed while the window fills).

    Hysteresis: an episode ends only when the speed falls below ``release × threshold``, so a speed hovering around
    the threshold makes one episode, not many.
    """

    def __init__(self, threshold: float, min_duration: float, window: float, release: float = 0.8) -> None:
        self.threshold = threshold
        self.min_duration = min_duration
        self.lag = window / 2.0
        self.release = release

    def step(
        self, state: FastState, ts: float, speed: float | None, first_ts: float, window_start: float | None = None
    ) -> FastChange | None:
        """One fitted ``speed`` at media time ``ts`` (``None``: too little history yet).

        Args:
            first_ts: media time the person was first seen.
            window_start: media time of the oldest position in the fit (``None``: unknown).
        """
        if speed is None:
            return None
        described = max(first_ts, ts - self.lag)
        if speed >= self.threshold:
            if state.above_since is None:
                from_first = window_start is not None and window_start <= first_ts + EPS
                state.above_since = first_ts if from_first else described
                state.peak = 0.0
            state.last_above = described
            state.peak = max(state.peak, speed)
            if not state.alerted and state.last_above - state.above_since >= self.min_duration - EPS:
                state.alerted = True
                return FastChange("start", state.above_since, ts, state.peak)
            return None
        if speed < self.release * self.threshold and state.above_since is not None:
            return self.close(state)
        return None

    def close(self, state: FastState) -> FastChange | None:
        """End the episode in progress (the person slowed down, or is gone); ``end`` only if it was an event."""
        change = None
        if state.alerted and state.above_since is not None:
            start = state.above_since
            change = FastChange("end", start, max(start, state.last_above), state.peak)
        state.above_since, state.alerted, state.peak = None, False, 0.0
        return change
