"""The LFW-protocol verification study (``metrosight eval verify``): accuracy ± std with the threshold chosen on the
training folds only, EER, TAR at FAR 1e-3/1e-4 over the pairs file and over every pair of distinct photos."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.eval.datasets import DatasetError, Pair, load_pairs
from metrosight.eval.extract import FaceRecognitionBaseline, metrosight_encoder
from metrosight.eval.identify_study import compared_methods
from metrosight.eval.metrics import MetricError
from metrosight.eval.report import Figure, Report, Table, roc_plot
from metrosight.eval.study import add_provenance, encode, load_cohort, pct, report_dir, report_stem
from metrosight.eval.study_io import ConsoleTable, EvalError, StudyIO, Written
from metrosight.eval.verify import VerificationRun, evaluate_pairs

REPORT_COLUMNS: Final = (
    "method",
    "accuracy",
    "± std",
    "EER",
    "pairs without face",
    "TAR@FAR 1e-3",
    "TAR@FAR 1e-4",
    "all-pairs TAR@1e-3",
    "all-pairs TAR@1e-4",
    "all-pairs genuine",
    "all-pairs impostor",
)
CONSOLE_COLUMNS: Final = (
    "method",
    "accuracy",
    "EER",
    "TAR@FAR1e-3",
    "TAR@FAR1e-4",
    "all-pairs TAR@1e-3",
    "all-pairs TAR@1e-4",
)


@dataclass(frozen=True)
class VerifyOptions:
    """LFW images and pairs file, and how to measure them (see ``metrosight eval verify --help``)."""

    images: Path
    pairs: Path
    cohort: Path | None = None
    baseline: bool = True
    folds: int = 10
    max_pairs: int | None = None
    quality_gate: bool = False
    cache: Path | None = None
    out_dir: Path | None = None
    name: str | None = None
    command: str = ""  # the command line, recorded in the report


@dataclass(frozen=True)
class VerifyResult:
    """What the study measured: ``results[method name]`` (as in the JSON report) and its summary table."""

    written: Written
    results: dict[str, dict[str, Any]]
    table: ConsoleTable


def pairs_for(opts: VerifyOptions) -> list[Pair]:
    """The pairs evaluated: the file's, or its first ``max_pairs`` genuine and impostor pairs.

    Raises:
        EvalError: the pairs file or an image it names cannot be used.
    """
    try:
        plist = load_pairs(opts.pairs, opts.images)
    except DatasetError as exc:
        raise EvalError(str(exc)) from exc
    if opts.max_pairs:
        plist = [p for p in plist if p.same][: opts.max_pairs] + [p for p in plist if not p.same][: opts.max_pairs]
    return plist


def _folds_note(plist: list[Pair], folds: int) -> str:
    n_file_folds = len({p.fold for p in plist})
    how = (
        f"the file has {n_file_folds} folds"
        if n_file_folds > 1
        else f"the file has one fold, so its pairs are split into {folds} stratified folds"
    )
    return (
        "Accuracy: each fold is scored with the threshold that maximises accuracy on the other folds "
        f"({how}). TAR at FAR over the pairs file is limited by its number of impostor pairs; the 'all pairs' "
        "columns use every pair of distinct photos in the set (many more impostor pairs)."
    )


def _method_data(run: VerificationRun) -> dict[str, Any]:
    r = run.result
    return {
        "accuracy": r.accuracy,
        "accuracy_std": r.accuracy_std,
        "fold_accuracies": r.fold_accuracies,
        "fold_thresholds": r.fold_thresholds,
        "eer": r.eer,
        "failed_pairs": run.failed_pairs,
        "tar_at_far": [
            {"far": p.target, "tar": p.value, "threshold": p.threshold, "resolved": p.resolved} for p in r.at_far
        ],
        "all_pairs": {
            "genuine": run.n_all_genuine,
            "impostor": run.n_all_impostor,
            "tar_at_far": [{"far": f, "tar": t, "threshold": th} for f, t, th in run.all_pairs],
        },
    }


def _rows(run: VerificationRun) -> tuple[list[Any], list[str]]:
    """The method's row of the report's table and of the console's."""
    r, name = run.result, run.method.name
    ap = {far: (tar, t) for far, tar, t in run.all_pairs}
    nan = float("nan")
    report_row = [name, r.accuracy, r.accuracy_std, r.eer, run.failed_pairs] + [p.value for p in r.at_far]
    report_row += [ap.get(1e-3, (nan,))[0], ap.get(1e-4, (nan,))[0], run.n_all_genuine, run.n_all_impostor]
    console_row = [name, f"{100 * r.accuracy:.2f} ± {100 * r.accuracy_std:.2f}%", pct(r.eer)]
    console_row += [pct(p.value) + ("" if p.resolved else "*") for p in r.at_far]
    console_row += [pct(ap[f][0]) if f in ap else "-" for f in (1e-3, 1e-4)]
    return report_row, console_row


def run_verify(opts: VerifyOptions, settings: Settings, home: Home, io: StudyIO) -> VerifyResult:
    """Run the study and write its report into ``opts.out_dir`` (default ``<home>/reports``).

    Raises:
        EvalError: the data or the options cannot be used (one line saying what to change).
    """
    plist = pairs_for(opts)
    label_of: dict[Path, str] = {}
    for p in plist:
        label_of[p.a] = p.a.parent.name
        label_of[p.b] = p.b.parent.name
    items = list(label_of.items())
    ms = metrosight_encoder(settings, home, gate_quality=opts.quality_gate)
    records = {"metrosight": encode(io, items, ms, opts.cache, "metrosight: encode")}
    if opts.baseline:
        records["face_recognition"] = encode(
            io, items, FaceRecognitionBaseline(), opts.cache, "face_recognition: encode"
        )
    coh = load_cohort(io, opts.cohort, settings, home, exclude=list(label_of)) if opts.cohort is not None else None
    report = Report("LFW-protocol verification", opts.command)
    sec = report.section(f"{sum(p.same for p in plist)} genuine and {sum(not p.same for p in plist)} impostor pairs")
    sec.notes.append(_folds_note(plist, opts.folds))
    rows, curves, results = [], [], {}
    table = ConsoleTable(list(CONSOLE_COLUMNS), title="verification")
    for source, m in compared_methods(opts.baseline, coh):
        try:
            run = evaluate_pairs(plist, records[source], m, folds=opts.folds)
        except MetricError as exc:
            raise EvalError(str(exc)) from exc
        report_row, console_row = _rows(run)
        rows.append(report_row)
        table.rows.append(console_row)
        curves.append((m.name, run.all_curve[0], run.all_curve[1]))
        results[m.name] = _method_data(run)
    sec.tables.append(
        Table(list(REPORT_COLUMNS), rows, "TAR at FAR from the pairs file is unresolved below 1/(impostor pairs)")
    )
    sec.figures.append(Figure("roc", roc_plot(curves, "ROC over all pairs of the photos"), "ROC over all pairs"))
    add_provenance(report, settings, [opts.images, opts.pairs])
    report.data.update({"verification": results})
    html_path, json_path = report.write(report_dir(opts.out_dir, home), report_stem("verify", opts.name))
    written = Written(html_path, json_path)
    io.say(table)
    io.say("* unresolved: fewer impostor pairs than 1/FAR")
    io.say(written.lines())
    return VerifyResult(written, results, table)
