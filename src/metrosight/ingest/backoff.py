"""Reconnect delays: exponential backoff with jitter.

A camera that drops is retried quickly at first, then less and less often up to a ceiling, and each delay is
shortened by a random fraction so that the cameras of a station whose switch rebooted do not all reconnect in the
same instant (thundering herd).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


class BackoffError(ValueError):
    """A backoff parameter is out of range; the message names it and the value."""


@dataclass(slots=True)
class Backoff:
    """Delay before reconnect attempt ``n`` (1-based): ``min(maximum, initial * factor**(n-1))`` times a random
    factor drawn uniformly from ``[1 - jitter, 1]``.

    Args:
        initial: delay before the first retry, seconds (> 0).
        maximum: ceiling of the delay, seconds (>= initial).
        factor: growth per attempt (>= 1).
        jitter: fraction in [0, 1] by which a delay may be shortened at random (0: no jitter).
        rng: random source (seeded in tests).
    """

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if not self.initial > 0:
            raise BackoffError(f"backoff initial delay must be > 0 s, got {self.initial}")
        if self.maximum < self.initial:
            raise BackoffError(f"backoff maximum ({self.maximum} s) must be >= initial ({self.initial} s)")
        if self.factor < 1:
            raise BackoffError(f"backoff factor must be >= 1, got {self.factor}")
        if not 0.0 <= self.jitter <= 1.0:
            raise BackoffError(f"backoff jitter must be in [0, 1], got {self.jitter}")

    def ceiling(self, attempt: int) -> float:
        """The delay before attempt ``attempt`` without jitter, seconds."""
        n = max(1, attempt)
        # cap the exponent so huge attempt counts cannot overflow
        return min(self.maximum, self.initial * self.factor ** min(n - 1, 64))

    def delay(self, attempt: int) -> float:
        """The jittered delay before attempt ``attempt`` (1-based), seconds, in ``[(1-jitter)*c, c]``."""
        c = self.ceiling(attempt)
        return c * (1.0 - self.jitter * self.rng.random())
