"""Per-track evaluation of the camera pipeline on a labelled video (``metrosight eval identify --video``): which
alerts are true, which labelled appearances were found, and how both change with the threshold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.core.types import Category
from metrosight.detect.registry import face_detector_for
from metrosight.eval.datasets import DatasetError, people_folders
from metrosight.eval.extract import FaceRecord, metrosight_encoder
from metrosight.eval.report import Report, Table
from metrosight.eval.study import encode, load_cohort, report_dir, report_stem
from metrosight.eval.study_io import ConsoleTable, EvalError, StudyIO, Written
from metrosight.eval.video import Appearance, VideoResult, evaluate_video, load_labels
from metrosight.ingest.source import SourceError
from metrosight.recognize.gallery import Gallery, GalleryEntry, Matcher, fuse
from metrosight.recognize.normalize import Cohort, CohortError
from metrosight.recognize.registry import embedder_for
from metrosight.services.calibration import cohort_path

NOTE = (
    "An alert naming S is true when its track overlaps a labelled appearance of S (labels give times, not places); "
    "an appearance is found when a true alert overlaps it. The sweep applies other thresholds to the best score "
    "each track reached (the margin rule is not re-applied there)."
)

#: the matcher the deployment would use for a gallery (the threshold ``recognition.target_fpir`` gives for it)
DeployedMatcher = Callable[[Gallery], Matcher]


@dataclass(frozen=True)
class VideoOptions:
    """A labelled video and the gallery to search it for (see ``metrosight eval identify --help``)."""

    video: Path
    labels: Path
    gallery: Path
    cohort: Path | None = None
    threshold: float | None = None
    out_dir: Path | None = None
    name: str | None = None
    command: str = ""  # the command line, recorded in the report


@dataclass(frozen=True)
class VideoStudyResult:
    """What the study measured, the scoring it used, and its summary table."""

    written: Written
    result: VideoResult
    scoring: str
    table: ConsoleTable


def _vectors(r: FaceRecord, flip: bool) -> np.ndarray:
    """A usable record's descriptor as one row, or with its mirrored chip's as two (``flip``)."""
    d, f = r.descriptor, r.flipped
    if d is None or (flip and f is None):
        raise EvalError(f"{r.path}: no descriptor")  # not for a usable record of a flipping encoder
    return np.stack([d, f]) if flip and f is not None else d[None]


def gallery_entries(people: dict[str, list[Path]], records: list[FaceRecord], flip: bool) -> list[GalleryEntry]:
    """One gallery entry per person with a usable photo: the fused template of their photos (with the mirrored
    chips when ``flip``)."""
    entries = []
    for i, person in enumerate(people):
        vecs = [_vectors(r, flip) for r in records if r.label == person and r.ok]
        if vecs:
            entries.append(
                GalleryEntry(i + 1, person.replace("_", " "), "eval", Category.WANTED, fuse(np.concatenate(vecs)))
            )
    return entries


def _cohort(io: StudyIO, opts: VideoOptions, settings: Settings, home: Home) -> Cohort | None:
    if opts.cohort is not None:
        coh = load_cohort(io, opts.cohort, settings, home)
        if opts.threshold is None and settings.recognition.normalization != "cohort":
            raise EvalError(
                "--cohort changes the score units: give --threshold (AS-norm units, e.g. from metrosight calibrate)"
            )
        return coh
    if settings.recognition.normalization == "cohort":
        try:
            return Cohort.load(cohort_path(home.root))
        except CohortError as exc:
            raise EvalError(str(exc)) from exc
    return None


def _matcher(
    io: StudyIO,
    opts: VideoOptions,
    settings: Settings,
    home: Home,
    entries: list[GalleryEntry],
    deployed: DeployedMatcher,
) -> Matcher:
    rec = settings.recognition
    coh = _cohort(io, opts, settings, home)
    if opts.threshold is None and coh is None:
        return deployed(Gallery(entries))  # as deployed: the threshold recognition.target_fpir gives this gallery
    threshold = opts.threshold if opts.threshold is not None else rec.match_threshold
    return Matcher(Gallery(entries), threshold, rec.min_margin, coh)


def _evaluate(
    io: StudyIO, opts: VideoOptions, settings: Settings, home: Home, matcher: Matcher, appearances: list[Appearance]
) -> VideoResult:
    # heavy: the backend registries load the model backends (OpenCV, dlib, onnxruntime)

    embedder = embedder_for(settings, home.cache / "models")
    with io.meter(f"{opts.video.name} (media s)") as tick:
        try:
            return evaluate_video(
                str(opts.video),
                settings,
                face_detector_for(settings, home.cache / "models"),
                embedder,
                matcher,
                appearances,
                on_frame=tick.to,
            )
        except SourceError as exc:
            raise EvalError(str(exc)) from exc


def _report(opts: VideoOptions, res: VideoResult, scoring: str) -> Report:
    report = Report("Per-track evaluation on a labelled video", opts.command)
    sec = report.section(
        f"{opts.video.name}: {res.frames} frames, {res.tracks} face tracks, {res.decided} matched at least once"
    )
    sec.notes.append(NOTE)
    sec.tables.append(
        Table(
            ["track", "subject", "first seen (s)", "last seen (s)", "score", "true"],
            [list(a) for a in res.alerts],
            f"alerts at threshold {res.threshold:g} ({scoring})",
        )
    )
    sec.tables.append(
        Table(
            ["subject", "start (s)", "end (s)", "found"],
            [[a.subject, a.start, a.end, f] for a, f in res.appearances],
            "labelled appearances",
        )
    )
    sweep = [[r["threshold"], r["true_alerts"], r["false_alerts"], r["found"], r["appearances"]] for r in res.sweep]
    sec.tables.append(
        Table(
            ["threshold", "true alerts", "false alerts", "appearances found", "appearances"],
            sweep,
            "if every track alerted whose best score reached the threshold",
        )
    )
    alerts = [
        dict(zip(["track", "subject", "first_seen", "last_seen", "score", "true"], a, strict=True)) for a in res.alerts
    ]
    report.data = {
        "video": str(opts.video),
        "frames": res.frames,
        "tracks": res.tracks,
        "decided": res.decided,
        "threshold": res.threshold,
        "scoring": scoring,
        "alerts": alerts,
        "appearances": [{"subject": a.subject, "start": a.start, "end": a.end, "found": f} for a, f in res.appearances],
        "sweep": res.sweep,
    }
    return report


def summary_table(res: VideoResult, scoring: str) -> ConsoleTable:
    """Alerts (true, false) and appearances found, as the command prints them."""
    n_true = sum(1 for a in res.alerts if a[5])
    found = f"{sum(f for _, f in res.appearances)}/{len(res.appearances)}"
    return ConsoleTable(
        ["alerts", "true", "false", "appearances found"],
        [[str(len(res.alerts)), str(n_true), str(len(res.alerts) - n_true), found]],
        title=f"per-track evaluation ({scoring} threshold {res.threshold:g})",
    )


def run_video(
    opts: VideoOptions, settings: Settings, home: Home, deployed: DeployedMatcher, io: StudyIO
) -> VideoStudyResult:
    """Enrol the gallery's people (fused templates), run the camera pipeline over the video with the deployed
    matcher (or ``threshold``/``cohort`` when given), score the tracks against the labels, and write the report.

    Raises:
        EvalError: the data or the options cannot be used (one line saying what to change).
    """
    try:
        appearances = load_labels(opts.labels)
        people = people_folders(opts.gallery)
    except DatasetError as exc:
        raise EvalError(str(exc)) from exc
    enc = metrosight_encoder(settings, home, flip=True, gate_quality=True)
    records = encode(io, [(p, k) for k, v in people.items() for p in v], enc, None, "gallery")
    entries = gallery_entries(people, records, settings.recognition.flip)
    if not entries:
        raise EvalError(f"--gallery {opts.gallery}: no usable enrolment photo")
    matcher = _matcher(io, opts, settings, home, entries, deployed)
    res = _evaluate(io, opts, settings, home, matcher, appearances)
    html_path, json_path = _report(opts, res, matcher.scoring).write(
        report_dir(opts.out_dir, home), report_stem("identify-video", opts.name)
    )
    written = Written(html_path, json_path)
    table = summary_table(res, matcher.scoring)
    io.say(table)
    io.say(written.lines())
    return VideoStudyResult(written, res, matcher.scoring, table)
