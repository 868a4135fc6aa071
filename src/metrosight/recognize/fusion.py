"""Per-track recognition: keep a track's best shots, fuse their descriptors, decide once.

Descriptors live only here, in memory, and are dropped when their track ends (match-or-forget).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from metrosight.core.types import FaceSample, Match
from metrosight.recognize.gallery import Matcher, fuse


@dataclass(slots=True)
class _Shot:
    sample: FaceSample
    descriptor: np.ndarray


@dataclass(slots=True)
class TrackFaces:
    """The best shots of one track and its recognition state."""

    shots: list[_Shot] = field(default_factory=list)
    decided: Match | None = None
    last_decision_ts: float = -1e9
    seen_samples: int = 0

    def best_shot(self) -> FaceSample | None:
        return max(self.shots, key=lambda s: s.sample.quality).sample if self.shots else None


class TrackFusion:
    """Collects best shots per track and matches the fused template.

    Args:
        matcher: the gallery matcher.
        min_samples: shots a track needs before it can match.
        max_samples: shots kept per track (the highest quality ones).
        decide_every: seconds of media time between two match attempts of the same track.
    """

    def __init__(self, matcher: Matcher, min_samples: int, max_samples: int, decide_every: float) -> None:
        self.matcher = matcher
        self.min_samples = min_samples
        self.max_samples = max_samples
        self.decide_every = decide_every
        self._tracks: dict[int, TrackFaces] = {}
        #: Evaluation hook: called with (track id, media time, fused template) at each match attempt. The template
        #: must not be kept beyond the call by anything that runs on live cameras (match-or-forget).
        self.on_decide: Callable[[int, float, np.ndarray], None] | None = None

    def wants(self, track_id: int, quality: float) -> bool:
        """Whether a shot of this quality would enter the track's best shots (so is worth embedding)."""
        tf = self._tracks.get(track_id)
        if tf is None or len(tf.shots) < self.max_samples:
            return True
        return quality > min(s.sample.quality for s in tf.shots)

    def add(self, sample: FaceSample, descriptor: np.ndarray) -> None:
        """Add an embedded shot to its track, keeping the ``max_samples`` best."""
        tf = self._tracks.setdefault(sample.track_id, TrackFaces())
        tf.seen_samples += 1
        tf.shots.append(_Shot(sample, np.asarray(descriptor, dtype=np.float32)))
        if len(tf.shots) > self.max_samples:
            tf.shots.remove(min(tf.shots, key=lambda s: s.sample.quality))

    def decide(self, track_id: int, ts: float, final: bool = False) -> Match | None:
        """Match the track's fused template if it is due; returns a *new* match once per track, else ``None``.

        Args:
            track_id: the track.
            ts: current media time, seconds.
            final: the track is ending; decide now if it has enough shots.
        """
        tf = self._tracks.get(track_id)
        if tf is None or tf.decided is not None or len(tf.shots) < self.min_samples:
            return None
        if not final and ts - tf.last_decision_ts < self.decide_every:
            return None
        tf.last_decision_ts = ts
        template = self.template(track_id)
        if template is None:
            return None
        if self.on_decide is not None:
            self.on_decide(track_id, ts, template)
        found = self.matcher.match(template)
        if found is not None:
            tf.decided = found
        return found

    def template(self, track_id: int) -> np.ndarray | None:
        """The track's fused unit template ``(128,)``: the quality-weighted mean of its best shots' unit
        descriptors (``None`` for a track with no shot)."""
        tf = self._tracks.get(track_id)
        if tf is None or not tf.shots:
            return None
        return fuse(
            np.stack([s.descriptor for s in tf.shots]),
            np.array([max(s.sample.quality, 1e-3) for s in tf.shots], dtype=np.float32),
        )

    def state(self, track_id: int) -> TrackFaces | None:
        return self._tracks.get(track_id)

    def track_ids(self) -> list[int]:
        """Tracks holding descriptors now."""
        return list(self._tracks)

    def forget(self, track_id: int) -> None:
        """Drop every descriptor and crop of the track."""
        self._tracks.pop(track_id, None)

    def __len__(self) -> int:
        return len(self._tracks)
