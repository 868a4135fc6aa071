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
        min_samples: fewer positions than this in the window give no speed.
        min_span: the positions must span at least this fraction of ``window``.
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
        while self._hist and self._hist[0][0] < ts - self.window - 1e-9:
            self._hist.popleft()
        return self.speed()

    def velocity(self) -> tuple[float, float, float] | None:
        """``(vx, vy, scale)``: the fitted velocity in position units per second and the median scale, or ``None``."""
        if len(self._hist) < self.min_samples:
            return None
        h = np.asarray(self._hist, dtype=np.float64)
        t = h[:, 0]
        span = float(t[-1] - t[0])
        if span < self.min_span * self.window:
            return None
        tc = t - t.mean()
        denom = float(np.dot(tc, tc))
        vx = float(np.dot(tc, h[:, 1] - h[:, 1].mean())) / denom
        vy = float(np.dot(tc, h[:, 2] - h[:, 2].mean())) / denom
        return vx, vy, float(np.median(h[:, 3]))

    def speed(self) -> float | None:
        v = self.velocity()
        if v is None or v[2] <= 0:
            return None
        return float(np.hypot(v[0], v[1])) / v[2]

    def clear(self) -> None:
        self._hist.clear()


@dataclass(slots=True)
class FastState:
    """One person's fast-movement episode in progress."""

    above_since: float | None = None  # media time of the first sample above the threshold
    last_above: float = 0.0
    peak: float = 0.0
    alerted: bool = False
    first_ts: float = 0.0  # media time the person was first seen (episode starts are not moved before it)


@dataclass(frozen=True, slots=True)
class FastChange:
    """What :meth:`FastMovementRule.step` decided: an episode ``started`` (became an event) or ``ended``."""

    phase: str  # "start" | "end"
    start_ts: float
    end_ts: float
    peak: float


class FastMovementRule:
    """Speed above ``threshold`` sustained for ``min_duration`` seconds is fast movement.

    Hysteresis: an episode ends only when the speed falls below ``release × threshold``, so a speed hovering around
    the threshold makes one episode, not many. The start time is moved back by half the smoothing window (the
    fitted speed describes the middle of its window).
    """

    def __init__(self, threshold: float, min_duration: float, window: float, release: float = 0.8) -> None:
        self.threshold = threshold
        self.min_duration = min_duration
        self.lag = window / 2.0
        self.release = release

    def step(self, state: FastState, ts: float, speed: float | None, first_ts: float) -> FastChange | None:
        if speed is None:
            return None
        if speed >= self.threshold:
            if state.above_since is None:
                state.above_since = ts
                state.peak = 0.0
            state.last_above = ts
            state.peak = max(state.peak, speed)
            if not state.alerted and state.last_above - state.above_since >= self.min_duration:
                state.alerted = True
                state.first_ts = first_ts
                return FastChange("start", self._shift(state.above_since, first_ts), ts, state.peak)
            return None
        if speed < self.release * self.threshold and state.above_since is not None:
            return self.close(state)
        return None

    def _shift(self, ts: float, first_ts: float) -> float:
        return max(first_ts, ts - self.lag)

    def close(self, state: FastState) -> FastChange | None:
        """End the episode in progress (the person slowed down, or is gone); ``end`` only if it was an event."""
        change = None
        if state.alerted and state.above_since is not None:
            start = self._shift(state.above_since, state.first_ts)
            change = FastChange("end", start, max(start, state.last_above - self.lag), state.peak)
        state.above_since, state.alerted, state.peak = None, False, 0.0
        return change
