"""Threshold calibration (``metrosight calibrate``): the operating point in force, and a threshold floor chosen
from faces of people on no list (non-mated traffic) scored against the templates it will guard."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.eval.calibrate import (
    VIDEO_SUFFIXES,
    Calibration,
    CalibrationError,
    choose_threshold,
    faces_of_video,
    fpir_from_fmr,
    fused,
    photo_files,
    set_recognition_keys,
)
from metrosight.eval.datasets import DatasetError, people_folders
from metrosight.eval.extract import MetrosightEncoder, faces_of_photos, metrosight_encoder
from metrosight.eval.report import Figure, Report, Table, histogram_plot
from metrosight.eval.study import load_cohort, report_dir, report_stem
from metrosight.eval.study_io import ConsoleTable, EvalError, StudyIO, Written
from metrosight.ingest.source import SourceError
from metrosight.recognize.normalize import Cohort, CohortError, CohortNorm
from metrosight.services.calibration import cohort_path, save_nonmated


class Installation(Protocol):
    """What calibration reads from the installation: the operating point in force and the active templates."""

    def operating_status(self, searches_per_day: float | None) -> dict[str, Any]:
        """See :meth:`metrosight.pipeline.runtime.Runtime.operating_status`."""
        ...

    def active_templates(self) -> list[np.ndarray]:
        """The templates of the active watchlist entries, ``(128,)`` float32 each."""
        ...


@dataclass(frozen=True)
class CalibrateOptions:
    """What to calibrate with (see ``metrosight calibrate --help``). ``config`` is the global ``--config``: the
    file the threshold is written into when ``write_config`` is not given."""

    non_mated: tuple[Path, ...] = ()
    cohort: Path | None = None
    gallery: Path | None = None
    target_fpir: float | None = None
    watchlist_size: int | None = None
    footfall: int = 100_000
    write_config: Path | None = None
    config: Path | None = None
    allow_looser: bool = False
    every: float = 0.5
    out_dir: Path | None = None
    searches_per_day: float | None = None
    keep_faces: bool = True
    command: str = ""  # the command line, recorded in the report


@dataclass(frozen=True)
class CalibrateResult:
    """The calibration (None when only the operating point was shown), the operating point in force (None with
    ``--gallery``), the report (None without calibration) and the config values written (empty when none)."""

    calibration: Calibration | None
    operating_point: dict[str, Any] | None
    written: Written | None
    config_values: dict[str, object]


def operating_table(op: dict[str, Any]) -> ConsoleTable:
    """The operating point in force as the table ``calibrate`` prints."""
    spd = op["searches_per_day"]
    overall = f" (over every list: {op['fpir_per_search']:.4g})" if op["fpir_per_search"] != op["target_fpir"] else ""
    resolution = (
        f" (resolution {op['fpir_resolution']:.1e} per comparison; target {op['fmr_target']:.1e})"
        if op["fmr_target"] is not None
        else ""
    )
    rows = [
        ["target FPIR per search", f"{op['target_fpir']:g}" + overall],
        ["active persons", str(op["persons"])],
        ["match threshold", f"{op['threshold']:.4f} ({op['scoring']}; {op['method']})"],
        ["impostor pairs measured", f"{op['impostor_pairs']:,}" + resolution],
        ["floor", f"{op['floor']:.4f}"],
    ]
    for name, v in op["lists"].items():
        thr = f"{v['threshold']:.4f}" if v["threshold"] is not None else "-"
        rows.append([f"list {name}", f"target {v['target_fpir']:g}, threshold " + thr])
    rows.append(
        [
            "searches a day",
            "unknown (no finished runs in the last 7 days; give --searches-per-day)" if spd is None else f"{spd:,.0f}",
        ]
    )
    expected = (
        "-"
        if spd is None
        else f"{op['expected_false_candidates_per_day']:.2f} (FPIR {op['fpir_per_search']:.4g} x {spd:,.0f} searches)"
    )
    rows.append(["expected false candidates a day", expected])
    return ConsoleTable(["", "value"], rows, title="operating point in force")


def show_operating_point(io: StudyIO, inst: Installation, searches_per_day: float | None) -> dict[str, Any]:
    """Print the operating point in force and return it.

    Raises:
        EvalError: the stored cohort cannot be used.
    """
    try:
        op = inst.operating_status(searches_per_day)
    except CohortError as exc:
        raise EvalError(str(exc)) from exc
    io.say(operating_table(op))
    return op


def _cohort(io: StudyIO, opts: CalibrateOptions, settings: Settings, home: Home) -> tuple[Cohort | None, str]:
    """Step 1: the cohort (built from ``--cohort`` photos and stored under the home, else the stored one when the
    configuration normalises scores) and the scoring it implies."""
    scoring = "cohort" if settings.recognition.normalization == "cohort" else "cosine"
    cpath = cohort_path(home.root)
    if opts.cohort is not None:
        if not opts.cohort.is_dir():
            raise EvalError(f"--cohort {opts.cohort}: not a folder of photos")
        coh = load_cohort(io, opts.cohort, settings, home)
        coh.save(cpath)
        io.say(f"cohort: {len(coh)} faces from {opts.cohort} saved to {cpath}")
        return coh, "cohort"
    if scoring == "cohort":
        try:
            return Cohort.load(cpath), scoring
        except CohortError as exc:
            raise EvalError(str(exc)) from exc
    return None, scoring


def _gallery_templates(io: StudyIO, gallery: Path, enc: MetrosightEncoder) -> list[np.ndarray]:
    try:
        people = people_folders(gallery)
    except DatasetError as exc:
        raise EvalError(str(exc)) from exc
    templates = []
    with io.meter("gallery", total=sum(len(v) for v in people.values())) as tick:
        for photos in people.values():
            d, f, _ = faces_of_photos(photos, enc, on_progress=tick.advance)
            if len(d):
                v = fused(d, f).mean(axis=0)
                templates.append(v / max(float(np.linalg.norm(v)), 1e-12))
    return templates


def _templates(
    io: StudyIO, opts: CalibrateOptions, enc: MetrosightEncoder, inst: Installation
) -> tuple[np.ndarray, str]:
    """Step 2: the templates the threshold will guard (unit rows), and where they came from."""
    if opts.gallery is not None:
        templates = _gallery_templates(io, opts.gallery, enc)
        source = f"{len(templates)} people in {opts.gallery}"
    else:
        templates = inst.active_templates()
        source = f"{len(templates)} active watchlist entries"
    if not templates:
        raise EvalError(
            "no templates to calibrate against: enrol and approve watchlist entries first, or pass --gallery DIR"
        )
    t_mat = np.stack(templates).astype(np.float32)
    t_mat /= np.maximum(np.linalg.norm(t_mat, axis=1, keepdims=True), 1e-12)
    return t_mat, source


def _non_mated_faces(
    io: StudyIO, opts: CalibrateOptions, settings: Settings, home: Home, enc: MetrosightEncoder
) -> np.ndarray:
    """Step 3: the fused descriptors of every usable face in the non-mated photos and videos."""
    faces, flips = [], []
    for src in opts.non_mated:
        if src.is_dir():
            photos = photo_files(src)
            with io.meter(f"faces in {src.name}", total=len(photos)) as tick:
                d, f, _ = faces_of_photos(photos, enc, on_progress=tick.advance)
        elif src.is_file() and src.suffix.lower() in VIDEO_SUFFIXES:
            video_enc = metrosight_encoder(settings, home, flip=True, video=True)  # camera frames' limits
            with io.meter(f"faces in {src.name} (s)") as tick:
                try:
                    d, f = faces_of_video(src, video_enc, opts.every, on_progress=tick.to)
                except SourceError as exc:
                    raise EvalError(str(exc)) from exc
        else:
            raise EvalError(f"--non-mated {src}: not a folder of photos or a video file")
        faces.append(d)
        flips.append(f)
    d = np.concatenate(faces)
    if len(d) == 0:
        raise EvalError("no usable face in the non-mated traffic")
    flipped = np.concatenate([f for f in flips if f is not None]) if all(f is not None for f in flips) else None
    return fused(d, flipped)


def calibration_rows(cal: Calibration, source: str, floor: float | None) -> list[list[str]]:
    """The calibration as ``[name, value]`` rows (the printed table and the report's)."""
    kept = (
        " (kept at the configured value: calibration only tightens)"
        if floor is not None and cal.threshold == floor
        else ""
    )
    return [
        ["scoring", cal.scoring],
        ["templates compared", source],
        ["non-mated faces", str(cal.n_faces)],
        ["comparisons", str(cal.n_comparisons)],
        ["watchlist size planned", str(cal.watchlist_size)],
        ["target FPIR", f"{cal.target_fpir:g}"],
        ["threshold", f"{cal.threshold:.4f}" + kept],
        ["observed FMR per comparison", f"{cal.fmr:.2e} (95% upper {cal.fmr_upper:.2e})"],
        ["estimated FPIR", f"{cal.fpir:.2e} (95% upper {cal.fpir_upper:.2e})"],
        ["observed FPIR (these templates)", f"{cal.observed_fpir:.4f}"],
        [
            f"false alerts/day at footfall {cal.footfall:,}",
            f"{cal.false_alerts_per_day:.2f} (95% upper {cal.false_alerts_per_day_upper:.2f})",
        ],
    ]


def _report(opts: CalibrateOptions, cal: Calibration, rows: list[list[str]], scores: np.ndarray) -> Report:
    report = Report("Threshold calibration", opts.command)
    sec = report.section("Result")
    sec.tables.append(Table(["", "value"], [list(r) for r in rows]))
    sizes = sorted({10, 100, 1000, 10000, cal.watchlist_size})
    foot = sorted({10_000, 100_000, 1_000_000, opts.footfall})
    fmr = cal.fmr_upper if cal.fmr == 0 else cal.fmr
    sec.tables.append(
        Table(
            ["watchlist size"] + [f"false alerts/day @ {f:,}" for f in foot],
            [[s] + [f * fpir_from_fmr(fmr, s) for f in foot] for s in sizes],
            "expected false alerts a day at this threshold (upper bound where no comparison reached it)",
        )
    )
    plot = histogram_plot(
        [("non-mated top score", scores.max(axis=1))],
        cal.threshold,
        "non-mated faces: best score against the templates",
        cal.scoring,
    )
    sec.figures.append(Figure("nonmated", plot))
    report.data = {"calibration": {k: getattr(cal, k) for k in cal.__slots__}}
    return report


def _write_config(
    io: StudyIO, opts: CalibrateOptions, cal: Calibration, scoring: str, same_units: bool
) -> dict[str, object]:
    """Step 5: the threshold (and, when the units changed, the normalisation) written into the config file."""
    target = opts.write_config or opts.config
    if target is None:
        io.say("not written: pass --write-config FILE (or the global --config FILE) to store the threshold")
        return {}
    values: dict[str, object] = {"match_threshold": math.ceil(cal.threshold * 1e4) / 1e4}  # never loosen by rounding
    if not same_units:
        values["normalization"] = "cohort" if scoring == "cohort" else "none"
    try:
        set_recognition_keys(target, values)
    except CalibrationError as exc:
        raise EvalError(str(exc)) from exc
    io.say(f"wrote {', '.join(f'recognition.{k}={v}' for k, v in values.items())} to {target}")
    return values


def _check(opts: CalibrateOptions) -> None:
    if opts.searches_per_day is not None and opts.searches_per_day < 0:
        raise EvalError(f"--searches-per-day must be 0 or more, got {opts.searches_per_day:g}")
    if not opts.non_mated and (opts.cohort is not None or opts.gallery is not None or opts.write_config is not None):
        raise EvalError("--cohort, --gallery and --write-config need --non-mated (faces of people on no list)")


def run_calibrate(
    opts: CalibrateOptions, settings: Settings, home: Home, inst: Installation, io: StudyIO
) -> CalibrateResult:
    """Without non-mated traffic: show the operating point in force. With it: build the cohort (``--cohort``),
    collect the templates and the non-mated faces (kept as descriptors when ``keep_faces``), choose the threshold
    for the target FPIR (never looser than the configured one unless ``allow_looser``), print and report it, and
    write it into the config file.

    Raises:
        EvalError: the data or the options cannot be used (one line saying what to change).
    """
    _check(opts)
    if not opts.non_mated:
        return CalibrateResult(None, show_operating_point(io, inst, opts.searches_per_day), None, {})
    rec = settings.recognition
    enc = metrosight_encoder(settings, home, flip=True)
    coh, scoring = _cohort(io, opts, settings, home)
    t_mat, source = _templates(io, opts, enc, inst)
    probes = _non_mated_faces(io, opts, settings, home, enc)
    if opts.keep_faces:
        saved = save_nonmated(home.root, probes, enc.embedder.model_id)
        io.say(
            f"calibration faces: {len(probes)} descriptors (no images) saved to {saved}; the threshold is "
            "recomputed with them whenever the gallery changes"
        )
    cos = probes @ t_mat.T
    scores = CohortNorm(coh, t_mat).normalize_many(probes, cos) if scoring == "cohort" and coh is not None else cos
    same_units = scoring == ("cohort" if rec.normalization == "cohort" else "cosine")
    floor = rec.match_threshold if (not opts.allow_looser and same_units) else None
    target_fpir = opts.target_fpir if opts.target_fpir is not None else rec.target_fpir
    try:
        cal = choose_threshold(scores, target_fpir, opts.watchlist_size or len(t_mat), opts.footfall, scoring, floor)
    except CalibrationError as exc:
        raise EvalError(str(exc)) from exc
    rows = calibration_rows(cal, source, floor)
    io.say(ConsoleTable(["", "value"], rows, title="calibration"))
    if not cal.resolved:
        need = int(np.ceil(1.0 / (1.0 - (1.0 - target_fpir) ** (1.0 / cal.watchlist_size)) / max(len(t_mat), 1)))
        io.say(
            f"warning: {cal.n_comparisons} comparisons cannot resolve the target; the threshold sits above every "
            f"observed score and the upper bound is what the data supports (about {need} non-mated faces needed)"
        )
    report = _report(opts, cal, rows, scores)
    op = None
    if opts.gallery is None:
        report.data["operating_point"] = op = show_operating_point(io, inst, opts.searches_per_day)
    html_path, json_path = report.write(report_dir(opts.out_dir, home), report_stem("calibrate", None))
    written = Written(html_path, json_path)
    io.say(written.lines())
    return CalibrateResult(cal, op, written, _write_config(io, opts, cal, scoring, same_units))
