"""Per-track (video) evaluation: run the real camera pipeline over a labelled video and score its alerts.

Labels say *when* each watchlisted person is on screen (a CSV ``subject,start,end`` in seconds of media time, one
row per appearance; a header row is allowed). They do not say where: an alert naming S is counted as true when its
track overlaps an appearance of S, and false otherwise; an appearance is found when a true alert overlaps it.

Besides the alerts at the configured threshold, every match attempt of every track is recorded (the track's best
candidate and decision score), so the same run gives the false alerts and missed appearances at any threshold.
These per-track scores exist only in memory during the evaluation and are dropped with it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metrosight.config.model import Settings
from metrosight.detect.base import FaceDetector
from metrosight.detect.landmarks import FivePointLandmarker
from metrosight.eval.datasets import DatasetError
from metrosight.ingest.factory import file_source
from metrosight.ingest.source import parse_source
from metrosight.pipeline.camera import CameraPipeline
from metrosight.recognize.embedder import Embedder
from metrosight.recognize.gallery import Matcher


@dataclass(frozen=True, slots=True)
class Appearance:
    """A labelled stretch of video where ``subject`` is on screen (media seconds)."""

    subject: str
    start: float
    end: float


def load_labels(path: Path) -> list[Appearance]:
    """Read ``subject,start,end`` rows.

    Raises:
        DatasetError: missing file, malformed row, or ``end < start``.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: labels file not found")
    out: list[Appearance] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for k, row in enumerate(csv.reader(fh), start=1):
            if not row or row[0].startswith("#") or (k == 1 and row[0].strip().lower() == "subject"):
                continue
            try:
                subject, start, end = row[0].strip(), float(row[1]), float(row[2])
            except (IndexError, ValueError):
                raise DatasetError(f"{path}: line {k} is not 'subject,start,end': {row!r}") from None
            if end < start or not subject:
                raise DatasetError(f"{path}: line {k}: empty subject or end before start: {row!r}")
            out.append(Appearance(subject, start, end))
    if not out:
        raise DatasetError(f"{path}: no labelled appearance")
    return out


@dataclass(slots=True)
class TrackLog:
    """What one track's match attempts gave: the best decision score reached and for whom."""

    track_id: int
    first_ts: float
    last_ts: float
    best_subject: str = ""
    best_score: float = -math.inf
    alerted_subject: str | None = None


@dataclass(slots=True)
class VideoResult:
    """Per-track evaluation of one video.

    Attributes:
        frames: frames processed.
        tracks: face tracks.
        decided: tracks with enough shots to be matched at least once.
        alerts: ``(track id, subject, first_seen, last_seen, score, true?)`` raised at the configured threshold.
        appearances: ``(appearance, found?)`` at the configured threshold.
        sweep: rows ``{threshold, true_alerts, false_alerts, found, appearances}`` over thresholds.
        threshold: the configured threshold.
    """

    frames: int
    tracks: int
    decided: int
    alerts: list[tuple[int, str, float, float, float, bool]]
    appearances: list[tuple[Appearance, bool]]
    sweep: list[dict[str, float]] = field(default_factory=list)
    threshold: float = 0.0


def _overlaps(a0: float, a1: float, b0: float, b1: float, slack: float) -> bool:
    return a0 <= b1 + slack and b0 <= a1 + slack


def score_tracks(
    logs: Sequence[TrackLog], labels: Sequence[Appearance], threshold: float, slack: float = 0.25
) -> tuple[int, int, list[bool]]:
    """``(true alerts, false alerts, found per appearance)`` if every track whose best score reaches ``threshold``
    alerted for its best candidate."""
    tp = fp = 0
    found = [False] * len(labels)
    for lg in logs:
        if lg.best_score < threshold:
            continue
        hits = [
            i
            for i, a in enumerate(labels)
            if a.subject == lg.best_subject and _overlaps(lg.first_ts, lg.last_ts, a.start, a.end, slack)
        ]
        if hits:
            tp += 1
            for i in hits:
                found[i] = True
        else:
            fp += 1
    return tp, fp, found


def evaluate_video(
    source: str,
    settings: Settings,
    detector: FaceDetector,
    embedder: Embedder,
    matcher: Matcher,
    labels: Sequence[Appearance],
    on_frame: Callable[[float], None] | None = None,
    slack: float = 0.25,
) -> VideoResult:
    """Run the camera pipeline (detect, track, quality, embed, per-track fusion, match) over ``source``.

    Args:
        source: video file path.
        settings: :class:`~metrosight.config.model.Settings` (tracking and recognition parameters).
        detector: face detector.
        embedder: embedder.
        matcher: :class:`~metrosight.recognize.gallery.Matcher` over the evaluation gallery.
        labels: when each person is on screen.
        on_frame: called with the media time of each frame.
        slack: seconds of tolerance when comparing a track's span with a labelled appearance.
    """

    alerts: list[Any] = []
    last_seen: dict[str, float] = {}
    pipe = CameraPipeline(
        settings,
        detector,
        embedder,
        matcher,
        publish_alert=alerts.append,
        publish_update=lambda u: last_seen.__setitem__(u.event_id, u.last_seen),
        landmarker=FivePointLandmarker(),
    )
    logs: dict[int, TrackLog] = {}

    def on_decide(track_id: int, ts: float, template: np.ndarray) -> None:
        best = matcher.best(template)
        st = pipe.fusion.state(track_id)
        shots = [s.sample.ts for s in st.shots] if st else [ts]
        lg = logs.setdefault(track_id, TrackLog(track_id, min(shots), max(shots)))
        lg.first_ts, lg.last_ts = min(lg.first_ts, *shots), max(lg.last_ts, ts, *shots)
        if best is not None and best.score > lg.best_score:
            lg.best_score, lg.best_subject = float(best.score), best.subject_name

    pipe.fusion.on_decide = on_decide
    video = file_source(parse_source(source), "eval", settings.ingest, settings.ingest.analysis_fps)
    for frame in video.frames():
        pipe.process(frame)
        if on_frame is not None:
            on_frame(frame.ts)
    pipe.finish()

    rows = []
    for a in alerts:
        end = max(a.last_seen, last_seen.get(a.event_id, a.last_seen))
        ok = any(x.subject == a.subject and _overlaps(a.first_seen, end, x.start, x.end, slack) for x in labels)
        rows.append((a.track_id, a.subject, a.first_seen, end, a.score, ok))
    found = [
        any(ok and s == x.subject and _overlaps(f0, f1, x.start, x.end, slack) for _, s, f0, f1, _, ok in rows)
        for x in labels
    ]
    result = VideoResult(
        pipe.stats.frames,
        pipe.stats.tracks,
        len(logs),
        rows,
        list(zip(labels, found, strict=True)),
        threshold=float(matcher.threshold),
    )
    scores = sorted({lg.best_score for lg in logs.values() if math.isfinite(lg.best_score)})
    for t in [matcher.threshold, *scores]:
        tp, fp, f = score_tracks(list(logs.values()), labels, t, slack)
        result.sweep.append(
            {
                "threshold": float(t),
                "true_alerts": tp,
                "false_alerts": fp,
                "found": sum(f),
                "appearances": len(labels),
            }
        )
    logs.clear()  # the per-track scores go with the evaluation
    return result
