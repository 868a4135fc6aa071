"""The open-set 1:N identification study (``metrosight eval identify``): FNIR at FPIR 0.1/0.01/0.003, rank-1,
held-out thresholds, DET curves, written as an HTML + JSON report."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.eval.datasets import DatasetError, OpenSetSplit, open_set_split, people_folders, people_split
from metrosight.eval.extract import FaceRecognitionBaseline, FaceRecord, metrosight_encoder
from metrosight.eval.identify import MethodSpec, OpenSetRun, evaluate_open_set
from metrosight.eval.metrics import MetricError, det_curve
from metrosight.eval.report import Figure, Report, Section, Table, det_plot, histogram_plot
from metrosight.eval.study import add_provenance, encode, load_cohort, pct, report_dir, report_stem
from metrosight.eval.study_io import ConsoleTable, EvalError, StudyIO, Written
from metrosight.recognize.normalize import Cohort

FPIRS = (0.1, 0.01, 0.003)

PROTOCOL: Final = (
    "Mated searches: photos of enrolled people not used for enrolment; hit = the mate is the top candidate and "
    "reaches the threshold. Non-mated searches: photos of people who are not enrolled; a false positive when the "
    "top candidate reaches the threshold. A photo where no usable face is found counts as a miss (mated) or as no "
    "candidate (non-mated).",
    "FNIR at FPIR x uses the threshold at which at most x of the non-mated searches return a candidate, computed "
    "from these searches (the DET-curve convention). 'Held-out' columns choose the threshold on half of the "
    "non-mated people and measure FPIR/FNIR on the other half (mean of both halves): the operational figure.",
    "The face_recognition baseline reproduces that package with dlib (HOG upsample 1, 5-point landmarks, "
    "face_recognition_model_v1, Euclidean distance to the nearest enrolment photo). The cohort for AS-norm shares "
    "no photo with the gallery or the probes.",
)

REPORT_COLUMNS: Final = (
    "method",
    "N",
    "mated",
    "non-mated",
    "mated FTA",
    "non-mated FTA",
    "rank-1",
    "rank-5",
    "FNIR@FPIR 0.1",
    "FNIR@0.01",
    "FNIR@0.003",
    "threshold@0.003",
    "0.003 resolved",
    "held-out FNIR@0.003",
    "held-out FPIR@0.003",
)

CONSOLE_COLUMNS: Final = (
    "gallery",
    "method",
    "N",
    "mated",
    "non-mated",
    "rank-1",
    "FNIR@0.1",
    "FNIR@0.01",
    "FNIR@0.003",
    "held-out FNIR/FPIR@0.003",
)


@dataclass(frozen=True)
class IdentifyOptions:
    """What to evaluate: ``data`` (one folder per person, split automatically, ``per_person`` enrolment photos
    each) or ``gallery`` with ``probes``; see ``metrosight eval identify --help`` for each option."""

    data: Path | None = None
    gallery: Path | None = None
    probes: Path | None = None
    include: str | None = None
    per_person: tuple[int, ...] = (1,)
    non_mated: str | None = None
    max_people: int | None = None
    same_probes: bool = False
    cohort: Path | None = None
    baseline: bool = True
    quality_gate: bool = False
    aligned: bool = False
    cache: Path | None = None
    out_dir: Path | None = None
    name: str | None = None
    command: str = ""  # the command line, recorded in the report


@dataclass(frozen=True)
class IdentifyResult:
    """What the study measured: ``results[gallery label][method name]`` (as in the JSON report) and the summary
    table it printed."""

    written: Written
    results: dict[str, dict[str, Any]]
    table: ConsoleTable


def _from_data(opts: IdentifyOptions, data: Path) -> dict[int, OpenSetSplit]:
    people = people_folders(data, opts.include)
    if opts.max_people:
        people = dict(list(people.items())[: opts.max_people])
    if opts.non_mated:
        pat = re.compile(opts.non_mated)
        names = [p for p in people if pat.fullmatch(p)]
        return {k: people_split(people, k, names) for k in opts.per_person}
    start = max(opts.per_person) if opts.same_probes else None
    return {k: open_set_split(people, k, start) for k in opts.per_person}


def splits_for(opts: IdentifyOptions) -> dict[int, OpenSetSplit]:
    """The gallery/probe splits to evaluate, by enrolment photos per person (0: the given gallery).

    Raises:
        EvalError: neither or both of the data layouts, an unreadable folder, a bad pattern.
    """
    try:
        if opts.data is not None:
            if opts.gallery or opts.probes:
                raise EvalError("give either --data, or --gallery with --probes")
            return _from_data(opts, opts.data)
        if opts.gallery is not None and opts.probes is not None:
            g = people_folders(opts.gallery, opts.include)
            pr = people_folders(opts.probes, opts.include)
            mated = [(p, k) for k, v in pr.items() if k in g for p in v]
            return {0: OpenSetSplit(g, mated, [(p, k) for k, v in pr.items() if k not in g for p in v])}
    except (DatasetError, re.error) as exc:
        raise EvalError(str(exc)) from exc
    raise EvalError("give --data DIR (one folder per person), or --gallery DIR and --probes DIR")


def compared_methods(baseline: bool, cohort: Cohort | None) -> list[tuple[str, MethodSpec]]:
    """The methods compared, each with the encoder whose records it scores (``metrosight`` or
    ``face_recognition``): the baseline, cosine, cosine with mirror fusion, and AS-norm (with a cohort)."""
    methods: list[tuple[str, MethodSpec]] = []
    if baseline:
        methods.append(("face_recognition", MethodSpec("face_recognition (HOG, Euclidean)", "euclidean")))
    methods.append(("metrosight", MethodSpec("metrosight cosine", "cosine")))
    methods.append(("metrosight", MethodSpec("metrosight cosine + flips", "cosine", flip=True)))
    if cohort is not None:
        methods.append(
            ("metrosight", MethodSpec(f"metrosight AS-norm + flips (cohort {len(cohort)})", "asnorm", True, cohort))
        )
    return methods


def methods_for(settings: Settings, baseline: bool, cohort: Cohort | None) -> list[tuple[str, MethodSpec]]:
    """:func:`compared_methods`, and the former margin rule when the configuration sets one."""
    methods = compared_methods(baseline, cohort)
    margin = settings.recognition.min_margin
    if margin > 0:
        best = methods[-1][1]
        former = MethodSpec(
            f"{best.name} + former margin rule {margin:g} (withholds close calls; the deployed "
            "ambiguity rule shows them instead)",
            best.scoring,
            True,
            best.cohort,
            margin=margin,
        )
        methods.append(("metrosight", former))
    return methods


def _method_data(run: OpenSetRun) -> dict[str, Any]:
    r = run.result
    return {
        "n_gallery": r.n_gallery,
        "n_mated": r.n_mated,
        "n_non_mated": r.n_non_mated,
        "mated_fta": r.mated_fta,
        "non_mated_fta": r.non_mated_fta,
        "rank1": r.rank1,
        "rank5": r.rank5,
        "fnir_at_fpir": [
            {
                "fpir": p.target,
                "fnir": p.value,
                "threshold": p.threshold,
                "achieved_fpir": p.achieved,
                "resolved": p.resolved,
            }
            for p in r.at_fpir
        ],
        "heldout": run.heldout,
        "fpir_by_gallery_size": run.by_gallery_size,
    }


def _rows(label: str, m: MethodSpec, run: OpenSetRun) -> tuple[list[Any], list[str]]:
    """The method's row of the report's table and of the console's."""
    r = run.result
    ho = {row["target"]: row for row in run.heldout}
    fn = {p.target: p for p in r.at_fpir}
    held = [ho.get(0.003, {}).get("fnir", float("nan")), ho.get(0.003, {}).get("fpir", float("nan"))]
    report_row = [m.name, r.n_gallery, r.n_mated, r.n_non_mated, r.mated_fta, r.non_mated_fta, r.rank1, r.rank5]
    report_row += [fn[x].value for x in FPIRS] + [fn[0.003].threshold, fn[0.003].resolved] + held
    console_row = [label, m.name, str(r.n_gallery), str(r.n_mated), str(r.n_non_mated), pct(r.rank1)]
    console_row += [pct(fn[x].value) for x in FPIRS]
    console_row.append(f"{pct(ho[0.003]['fnir'])} / {pct(ho[0.003]['fpir'])}" if 0.003 in ho else "-")
    return report_row, console_row


def _score_figure(stem: str, run: OpenSetRun) -> Figure:
    thr = next(p.threshold for p in run.result.at_fpir if p.target == 0.003)
    scores = [("mated (hits)", run.searches.hit_scores), ("non-mated top", run.searches.non_mated_top)]
    return Figure(f"scores-{stem}", histogram_plot(scores, thr, f"{run.method.name}: top scores", "score"))


def _evaluate_split(
    sec: Section,
    label: str,
    sp: OpenSetSplit,
    methods: list[tuple[str, MethodSpec]],
    records: dict[str, list[FaceRecord]],
    table: ConsoleTable,
) -> tuple[dict[str, Any], list[list[Any]], list[Any], OpenSetRun | None]:
    """Every method on one split: the JSON results by method, the report rows, the DET curves, the last run."""
    results: dict[str, Any] = {}
    rows: list[list[Any]] = []
    curves: list[Any] = []
    last: OpenSetRun | None = None
    for source, m in methods:
        try:
            run = evaluate_open_set(sp, records[source], m)
        except MetricError as exc:
            raise EvalError(str(exc)) from exc
        report_row, console_row = _rows(label, m, run)
        rows.append(report_row)
        table.rows.append(console_row)
        _, fpr, fnr = det_curve(run.searches.hit_scores, run.searches.non_mated_top)
        curves.append((m.name, fpr, fnr))
        results[m.name] = _method_data(run)
        if run.by_gallery_size:
            sec.tables.append(
                Table(
                    ["gallery size", "FPIR at a fixed threshold"],
                    [[int(x["gallery"]), x["fpir"]] for x in run.by_gallery_size],
                    f"{m.name}: FPIR against watchlist size at the threshold giving FPIR 0.01 on the full gallery",
                )
            )
        last = run
    return results, rows, curves, last


def _records(
    io: StudyIO, opts: IdentifyOptions, settings: Settings, home: Home, items: list[tuple[Path, str]]
) -> dict[str, list[FaceRecord]]:
    ms = metrosight_encoder(settings, home, gate_quality=opts.quality_gate, aligned=opts.aligned)
    records = {"metrosight": encode(io, items, ms, opts.cache, "metrosight: encode")}
    if opts.baseline:
        baseline = FaceRecognitionBaseline(aligned=opts.aligned)
        records["face_recognition"] = encode(io, items, baseline, opts.cache, "face_recognition: encode")
    return records


def run_identify(opts: IdentifyOptions, settings: Settings, home: Home, io: StudyIO) -> IdentifyResult:
    """Run the study and write its report into ``opts.out_dir`` (default ``<home>/reports``).

    Raises:
        EvalError: the data or the options cannot be used (one line saying what to change).
    """
    splits = splits_for(opts)
    items: dict[Path, str] = {}
    for sp in splits.values():
        items.update(dict(sp.all_items()))
    records = _records(io, opts, settings, home, list(items.items()))
    coh = load_cohort(io, opts.cohort, settings, home, exclude=list(items)) if opts.cohort is not None else None
    methods = methods_for(settings, opts.baseline, coh)
    report = Report("Open-set 1:N identification", opts.command)
    report.section("Protocol").notes.extend(PROTOCOL)
    results: dict[str, dict[str, Any]] = {}
    table = ConsoleTable(list(CONSOLE_COLUMNS), title="open-set identification")
    for k, sp in splits.items():
        label = f"{k} photo(s) per person" if k else "given gallery"
        sec = report.section(f"Gallery: {label}")
        results[label], rows, curves, last = _evaluate_split(sec, label, sp, methods, records, table)
        caption = (
            f"{label}: FNIR at FPIR (lower is better); 'resolved' is no when there are fewer than 1/0.003 "
            "non-mated searches (the point is then at zero observed false positives)"
        )
        sec.tables.insert(0, Table(list(REPORT_COLUMNS), rows, caption))
        sec.figures.append(Figure(f"det-k{k}", det_plot(curves, title=f"DET, {label}"), "DET: FNIR against FPIR"))
        if last is not None:
            sec.figures.append(_score_figure(f"k{k}", last))
    add_provenance(report, settings, [p for p in (opts.data, opts.gallery, opts.probes) if p is not None])
    report.data.update({"identification": results, "settings": {"detector": settings.detection.detector.kind}})
    html_path, json_path = report.write(report_dir(opts.out_dir, home), report_stem("identify", opts.name))
    written = Written(html_path, json_path)
    io.say(table)
    io.say(written.lines())
    return IdentifyResult(written, results, table)
