"""The face-detection study (``metrosight eval detect``): recall and precision at IoU thresholds, false positives,
time per image, and the FDDB discrete ROC, on FDDB folds and dlib/imglab XML sets."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.detect.base import DetectorError, FaceDetector
from metrosight.detect.factory import make_detector
from metrosight.detect.registry import face_detector_for
from metrosight.eval.detection import (
    GroundTruthError,
    GroundTruthImage,
    RocPoint,
    evaluate,
    load_dlib_xml,
    load_fddb_fold,
    roc_points,
    summarize,
)
from metrosight.eval.report import Figure, Report, Table, detection_roc_plot
from metrosight.eval.study import add_provenance, pct, report_dir, report_stem
from metrosight.eval.study_io import ConsoleTable, EvalError, StudyIO, Written
from metrosight.ingest.images import ImageError, load_image

SET_NOTE = (
    "Boxes are matched greedily in descending score order; FDDB ellipses are compared as their bounding boxes, "
    "and the different box conventions of detectors make IoU 0.4 the fair operating point (0.5 is shown too). "
    "The ROC counts detections at every score threshold (FDDB's discrete ROC)."
)

#: builds the detector a ``--detector`` value names (``configured``: the configuration's)
DetectorMaker = Callable[[str], FaceDetector]


@dataclass(frozen=True)
class DetectOptions:
    """The ground-truth sets and detectors to measure (see ``metrosight eval detect --help``)."""

    fddb: Path | None = None
    folds: tuple[int, ...] = (1,)
    dlib_xml: tuple[Path, ...] = ()
    detectors: tuple[str, ...] = ("configured",)
    ious: tuple[float, ...] = (0.3, 0.4, 0.5)
    max_images: int | None = None
    out_dir: Path | None = None
    name: str | None = None
    command: str = ""  # the command line, recorded in the report


@dataclass(frozen=True)
class DetectResult:
    """What the study measured: ``results[set][detector]`` (as in the JSON report) and its summary table."""

    written: Written
    results: dict[str, dict[str, Any]]
    table: ConsoleTable


def configured_detectors(settings: Settings, cache_dir: Path | None = None) -> DetectorMaker:
    """The detector maker of the command line: ``configured``, ``hog0`` (HOG without upsampling), or a backend name.

    The detector it returns raises :class:`EvalError` when the backend cannot be loaded."""

    def make(kind: str) -> FaceDetector:
        # heavy: the factory and the registry load the model backends (OpenCV, dlib, onnxruntime)

        try:
            if kind == "configured":
                return face_detector_for(settings, cache_dir)
            if kind == "hog0":
                return make_detector("hog", upsample=0)
            return make_detector(kind)
        except DetectorError as exc:
            raise EvalError(str(exc)) from exc

    return make


def ground_truth_sets(opts: DetectOptions) -> list[tuple[str, list[GroundTruthImage]]]:
    """``(set name, annotated images)`` for each FDDB fold and XML file, cut to ``max_images``.

    Raises:
        EvalError: no set given, or a ground-truth file that cannot be read.
    """
    sets: list[tuple[str, list[GroundTruthImage]]] = []
    try:
        if opts.fddb is not None:
            for k in opts.folds:
                ell = opts.fddb / "FDDB-folds" / f"FDDB-fold-{k:02d}-ellipseList.txt"
                sets.append((f"FDDB fold {k}", load_fddb_fold(ell, opts.fddb / "originalPics")))
        for x in opts.dlib_xml:
            sets.append((f"dlib {x.name}", load_dlib_xml(x)))
    except GroundTruthError as exc:
        raise EvalError(str(exc)) from exc
    if not sets:
        raise EvalError("give --fddb DIR and/or --dlib-xml FILE")
    if opts.max_images:
        sets = [(n, g[: opts.max_images]) for n, g in sets]
    return sets


def _detections(
    io: StudyIO, det: FaceDetector, images: list[np.ndarray], label: str
) -> tuple[list[tuple[list[Any], list[float]]], float]:
    """Every image's ``(boxes, scores)``, and the milliseconds an image took."""
    dets = []
    started = time.perf_counter()
    with io.meter(label, total=len(images)) as tick:
        for img in images:
            found = det.detect(img)
            dets.append(([d.box for d in found], [d.score for d in found]))
            tick.advance(1)
    return dets, 1000 * (time.perf_counter() - started) / max(len(images), 1)


def _measure(
    dets: list[tuple[list[Any], list[float]]], gts: list[GroundTruthImage], ious: tuple[float, ...], ms: float
) -> tuple[dict[str, Any], list[Any], list[str], list[RocPoint]]:
    """One detector on one set: its JSON data, its report row, its console cells (after set and label), its ROC."""
    by_iou = {t: summarize(evaluate(dets, gts, t)) for t in ious}
    s4 = summarize(evaluate(dets, gts, 0.4))
    roc = roc_points(evaluate(dets, gts, 0.4))
    data = {
        "images": s4.n_images,
        "faces": s4.n_gt,
        "ms_per_image": ms,
        "at_iou": {
            str(t): {
                "recall": by_iou[t].recall,
                "precision": by_iou[t].precision,
                "tp": by_iou[t].tp,
                "fp": by_iou[t].fp,
            }
            for t in ious
        },
        "roc_iou_0.4": [{"threshold": p.threshold, "tp": p.tp, "fp": p.fp, "recall": p.recall} for p in roc],
    }
    row = [s4.n_images, s4.n_gt] + [by_iou[t].recall for t in ious] + [s4.precision, s4.fp, ms]
    cells = [str(s4.n_images), str(s4.n_gt), *[pct(by_iou[t].recall) for t in ious], pct(s4.precision), str(s4.fp)]
    return data, row, [*cells, f"{ms:.0f}"], roc


def _load_images(gts: list[GroundTruthImage]) -> list[np.ndarray]:
    try:
        return [load_image(g.path)[0] for g in gts]
    except ImageError as exc:
        raise EvalError(str(exc)) from exc


def run_detect(
    opts: DetectOptions, settings: Settings, home: Home, io: StudyIO, make: DetectorMaker | None = None
) -> DetectResult:
    """Run the study and write its report into ``opts.out_dir`` (default ``<home>/reports``). ``make`` builds each
    detector named in ``opts.detectors`` (default :func:`configured_detectors`).

    Raises:
        EvalError: the data, a detector or the options cannot be used (one line saying what to change).
    """
    make = make or configured_detectors(settings, home.cache / "models")
    sets = ground_truth_sets(opts)
    ious = opts.ious
    report = Report("Face detection", opts.command)
    columns = ["set", "detector", "images", "faces", *[f"recall@IoU{t:g}" for t in ious]]
    table = ConsoleTable([*columns, "precision@0.4", "FP@0.4", "ms/image"], title="face detection")
    results: dict[str, dict[str, Any]] = {}
    for set_name, gts in sets:
        sec = report.section(set_name)
        sec.notes.append(SET_NOTE)
        rows, curves = [], []
        images = _load_images(gts)
        for kind in opts.detectors:
            det = make(kind)
            label = f"{kind} ({det.name})" if kind == "configured" else kind
            dets, ms = _detections(io, det, images, f"{label} on {set_name}")
            data, row, cells, roc = _measure(dets, gts, ious, ms)
            rows.append([label, *row])
            table.rows.append([set_name, label, *cells])
            curves.append((label, np.array([p.fp for p in roc]), np.array([p.recall for p in roc])))
            results.setdefault(set_name, {})[label] = data
        headers = ["detector", "images", "faces"] + [f"recall @IoU {t:g}" for t in ious]
        sec.tables.append(Table(headers + ["precision @0.4", "false positives @0.4", "ms/image"], rows))
        stem = re.sub(r"[^a-z0-9]+", "-", set_name.lower()).strip("-")
        sec.figures.append(Figure(f"roc-{stem}", detection_roc_plot(curves, f"{set_name}: discrete ROC (IoU 0.4)")))
    measured = ([opts.fddb] if opts.fddb is not None else []) + list(opts.dlib_xml)
    add_provenance(report, settings, measured, opts.folds if opts.fddb is not None else ())
    report.data.update({"detection": results})
    html_path, json_path = report.write(report_dir(opts.out_dir, home), report_stem("detect", opts.name))
    written = Written(html_path, json_path)
    io.say(table)
    io.say(written.lines())
    return DetectResult(written, results, table)
