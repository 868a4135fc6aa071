"""``metrosight eval …`` (verify, identify, detect) and ``metrosight calibrate``: accuracy you can reproduce.

Each run prints a table, and writes a self-contained HTML report, a JSON file and the plots as PNG into ``--out``
(default ``<home>/reports``).
"""

from __future__ import annotations

import math
import re
import shlex
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table as RichTable

from metrosight.console import SafeConsole

eval_app = typer.Typer(
    help="Measure accuracy: LFW verification, open-set 1:N identification, face detection.",
    no_args_is_help=True,
)
out = SafeConsole(soft_wrap=True)
err = SafeConsole(stderr=True, soft_wrap=True)


# -- shared plumbing --------------------------------------------------------------------------------------------
def _root() -> Any:
    from metrosight import cli as root  # lazy: metrosight.cli imports this module

    return root


def _context() -> tuple[Any, Any]:
    """``(settings, home)`` from the global ``--home``/``--config`` options."""
    from metrosight.config.home import Home

    root = _root()
    settings = root._settings()
    try:
        home = Home.resolve(root.state.home).ensure()
    except OSError as exc:
        root.fail(f"cannot use home directory: {exc}", 1)
    return settings, home


def _fail(message: str, code: int = 2) -> NoReturn:
    _root().fail(message, code)
    raise typer.Exit(code)  # not reached: fail() exits


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def _command_line() -> str:
    return "metrosight " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""


def _out_dir(out_dir: Path | None, home: Any) -> Path:
    return Path(out_dir) if out_dir is not None else home.root / "reports"


def _stem(kind: str, name: str | None) -> str:
    """The report's file stem: ``--name`` under the camera id rule (no ``/``, no leading ``.``: the report stays
    in its folder), else ``KIND-<UTC time>``."""
    if name is None:
        return f"{kind}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
    from metrosight.core.names import InvalidInput, identifier

    try:
        return identifier(name, "--name")
    except InvalidInput as exc:
        _fail(str(exc))


def metrosight_encoder(
    settings: Any, home: Any, flip: bool = True, gate_quality: bool = True, aligned: bool = False, video: bool = False
) -> Any:
    """metrosight's photo path as configured (detector, quality limits, embedder): the quality limits of still
    photos (``photos.*``), or with ``video`` those of camera frames (``detection.min_face_px``,
    ``recognition.min_blur_var``, the default yaw limit)."""
    from metrosight.eval.extract import MetrosightEncoder
    from metrosight.services.models import make_face_detector
    from metrosight.recognize.registry import embedder_for

    if video:
        limits = (settings.detection.min_face_px, settings.recognition.min_blur_var, 0.45)
    else:
        limits = (settings.photos.min_face_px, settings.photos.min_blur_var, settings.photos.max_yaw_ratio)
    return MetrosightEncoder(
        make_face_detector(settings),
        embedder_for(settings, home.cache / "models", flip=False),
        limits[0],
        limits[1],
        gate_quality=gate_quality,
        flip=flip,
        aligned=aligned,
        max_yaw_ratio=limits[2],
    )


def encode_with_progress(items: Sequence[tuple[Path, str]], encoder: Any, cache: Path | None, label: str) -> list[Any]:
    from metrosight.eval.extract import encode_all

    with progress() as bar:
        task = bar.add_task(label, total=len(items))
        return encode_all(items, encoder, cache, on_progress=lambda n: bar.advance(task, n))


def load_cohort(path: Path, settings: Any, home: Any, exclude: Sequence[Path] = ()) -> Any:
    """A cohort from a ``.npz`` written by ``metrosight calibrate --cohort`` or from a folder of photos (every usable
    face). Photos identical (by content) to any of ``exclude`` are refused: the background set must share no photo
    with the gallery or the probes it is scored on.
    """
    from metrosight.eval.calibrate import build_cohort, photo_files
    from metrosight.recognize.normalize import Cohort, CohortError

    if path.is_file() and path.suffix == ".npz":
        try:
            return Cohort.load(path)
        except CohortError as exc:
            _fail(str(exc))
    if not path.is_dir():
        _fail(f"--cohort {path}: neither a folder of photos nor a cohort .npz file")
    photos = photo_files(path)
    if not photos:
        _fail(f"--cohort {path}: no photos found")
    if exclude:
        import hashlib

        def sha(p: Path) -> str:
            return hashlib.sha256(p.read_bytes()).hexdigest()

        banned = {sha(p) for p in exclude}
        clash = [p for p in photos if sha(p) in banned]
        if clash:
            _fail(f"--cohort shares {len(clash)} photo(s) with the evaluated set (e.g. {clash[0]}); use disjoint data")
    enc = metrosight_encoder(settings, home, flip=True)
    with progress() as bar:
        task = bar.add_task("cohort faces", total=len(photos))
        try:
            return build_cohort(photos, enc, on_progress=lambda n: bar.advance(task, n))
        except CohortError as exc:
            _fail(str(exc))


def _provenance(report: Any, settings: Any, measured: Sequence[Path], fddb_folds: Sequence[int] = ()) -> None:
    """A report section (and ``data["provenance"]``) saying which data chose the settings, which measured them."""
    from metrosight.eval.provenance import provenance

    prov = provenance(settings, measured, fddb_folds)
    report.section("Which data chose the settings, which data measured them").notes.extend(prov["notes"])
    report.data["provenance"] = prov


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


# -- identify ---------------------------------------------------------------------------------------------------
@eval_app.command("identify")
def identify_cmd(
    data: Annotated[
        Path | None, typer.Option("--data", help="one folder of photos per person, split automatically")
    ] = None,
    gallery: Annotated[Path | None, typer.Option("--gallery", help="enrolment photos, one folder per person")] = None,
    probes: Annotated[
        Path | None,
        typer.Option("--probes", help="probe photos, one folder per person (unknown people: non-mated)"),
    ] = None,
    include: Annotated[str | None, typer.Option("--include", help="regex person folders must match")] = None,
    per_person: Annotated[
        list[int] | None,
        typer.Option("--per-person", help="enrolment photos per person with --data (repeatable)"),
    ] = None,
    non_mated: Annotated[
        str | None,
        typer.Option("--non-mated", help="regex of people never enrolled (all their photos non-mated) with --data"),
    ] = None,
    max_people: Annotated[int | None, typer.Option("--max-people", help="use only the first N people")] = None,
    same_probes: Annotated[
        bool,
        typer.Option(help="with several --per-person: search the same probes (photos after the largest gallery)"),
    ] = False,
    cohort: Annotated[
        Path | None,
        typer.Option("--cohort", help="background faces for AS-norm: photo folder or cohort .npz"),
    ] = None,
    baseline: Annotated[bool, typer.Option(help="also measure the face_recognition baseline")] = True,
    quality_gate: Annotated[
        bool, typer.Option(help="refuse faces failing the quality checks (counted as misses / no candidate)")
    ] = False,
    aligned: Annotated[
        bool,
        typer.Option("--aligned", help="the photos are aligned 150x150 chips: embed them without detection"),
    ] = False,
    cache: Annotated[Path | None, typer.Option("--cache", help="folder for cached descriptors")] = None,
    video: Annotated[
        Path | None, typer.Option("--video", help="a labelled video: per-track evaluation against --gallery")
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option("--labels", help="CSV subject,start,end (seconds) of who is on screen in --video"),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option("--threshold", help="match threshold for --video (default: the configured one)"),
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="report folder (default <home>/reports)")] = None,
    name: Annotated[str | None, typer.Option("--name", help="report file stem")] = None,
) -> None:
    """Open-set 1:N identification: FNIR at FPIR 0.1/0.01/0.003, rank-1, DET curves, HTML + JSON report.
    With --video and --labels: per-track evaluation of the camera pipeline on a labelled video."""
    import re

    if video is not None:
        if gallery is None or labels is None:
            _fail("--video needs --gallery DIR (one folder of photos per person) and --labels FILE")
        _identify_video(video, labels, gallery, cohort, threshold, out_dir, name)
        return
    from metrosight.eval.datasets import DatasetError, open_set_split, people_folders, people_split
    from metrosight.eval.extract import FaceRecognitionBaseline
    from metrosight.eval.identify import MethodSpec, evaluate_open_set
    from metrosight.eval.metrics import MetricError, det_curve
    from metrosight.eval.report import Figure, Report, Table, det_plot, histogram_plot

    settings, home = _context()
    per_person = per_person or [1]
    try:
        if data is not None:
            if gallery or probes:
                _fail("give either --data, or --gallery with --probes")
            people = people_folders(data, include)
            if max_people:
                people = dict(list(people.items())[:max_people])
            if non_mated:
                pat = re.compile(non_mated)
                names = [p for p in people if pat.fullmatch(p)]
                splits = {k: people_split(people, k, names) for k in per_person}
            else:
                start = max(per_person) if same_probes else None
                splits = {k: open_set_split(people, k, start) for k in per_person}
        elif gallery is not None and probes is not None:
            from metrosight.eval.datasets import OpenSetSplit

            g = people_folders(gallery, include)
            pr = people_folders(probes, include)
            splits = {
                0: OpenSetSplit(
                    g,
                    [(p, k) for k, v in pr.items() if k in g for p in v],
                    [(p, k) for k, v in pr.items() if k not in g for p in v],
                )
            }
        else:
            _fail("give --data DIR (one folder per person), or --gallery DIR and --probes DIR")
    except (DatasetError, re.error) as exc:
        _fail(str(exc))

    items: dict[Path, str] = {}
    for sp in splits.values():
        items.update(dict(sp.all_items()))
    item_list = list(items.items())
    ms = metrosight_encoder(settings, home, gate_quality=quality_gate, aligned=aligned)
    records = {"metrosight": encode_with_progress(item_list, ms, cache, "metrosight: encode")}
    if baseline:
        records["face_recognition"] = encode_with_progress(
            item_list, FaceRecognitionBaseline(aligned=aligned), cache, "face_recognition: encode"
        )
    coh = load_cohort(cohort, settings, home, exclude=list(items)) if cohort is not None else None

    methods: list[tuple[str, MethodSpec]] = []
    if baseline:
        methods.append(("face_recognition", MethodSpec("face_recognition (HOG, Euclidean)", "euclidean")))
    methods.append(("metrosight", MethodSpec("metrosight cosine", "cosine")))
    methods.append(("metrosight", MethodSpec("metrosight cosine + flips", "cosine", flip=True)))
    if coh is not None:
        methods.append(
            ("metrosight", MethodSpec(f"metrosight AS-norm + flips (cohort {len(coh)})", "asnorm", True, coh))
        )
    margin = settings.recognition.min_margin
    if margin > 0:
        best = methods[-1][1]
        methods.append(
            (
                "metrosight",
                MethodSpec(
                    f"{best.name} + former margin rule {margin:g} (withholds close calls; the deployed "
                    "ambiguity rule shows them instead)",
                    best.scoring,
                    True,
                    best.cohort,
                    margin=margin,
                ),
            )
        )

    report = Report("Open-set 1:N identification", _command_line())
    intro = report.section("Protocol")
    intro.notes += [
        (
            "Mated searches: photos of enrolled people not used for enrolment; hit = the mate is the top candidate and "
            "reaches the threshold. Non-mated searches: photos of people who are not enrolled; a false positive when the "
            "top candidate reaches the threshold. A photo where no usable face is found counts as a miss (mated) or as no "
            "candidate (non-mated)."
        ),
        (
            "FNIR at FPIR x uses the threshold at which at most x of the non-mated searches return a candidate, computed "
            "from these searches (the DET-curve convention). 'Held-out' columns choose the threshold on half of the "
            "non-mated people and measure FPIR/FNIR on the other half (mean of both halves): the operational figure."
        ),
        (
            "The face_recognition baseline reproduces that package with dlib (HOG upsample 1, 5-point landmarks, "
            "face_recognition_model_v1, Euclidean distance to the nearest enrolment photo). The cohort for AS-norm shares "
            "no photo with the gallery or the probes."
        ),
    ]
    results: dict[str, Any] = {}
    console = RichTable(
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
        title="open-set identification",
    )
    for k, sp in splits.items():
        label = f"{k} photo(s) per person" if k else "given gallery"
        sec = report.section(f"Gallery: {label}")
        rows, curves = [], []
        best = None
        for source, m in methods:
            try:
                run = evaluate_open_set(sp, records[source], m)
            except MetricError as exc:
                _fail(str(exc))
            r = run.result
            ho = {row["target"]: row for row in run.heldout}
            fn = {p.target: p for p in r.at_fpir}
            rows.append(
                [
                    m.name,
                    r.n_gallery,
                    r.n_mated,
                    r.n_non_mated,
                    r.mated_fta,
                    r.non_mated_fta,
                    r.rank1,
                    r.rank5,
                ]
                + [fn[x].value for x in (0.1, 0.01, 0.003)]
                + [fn[0.003].threshold, fn[0.003].resolved]
                + [ho.get(0.003, {}).get("fnir", float("nan")), ho.get(0.003, {}).get("fpir", float("nan"))]
            )
            console.add_row(
                label,
                m.name,
                str(r.n_gallery),
                str(r.n_mated),
                str(r.n_non_mated),
                _pct(r.rank1),
                *[_pct(fn[x].value) for x in (0.1, 0.01, 0.003)],
                f"{_pct(ho[0.003]['fnir'])} / {_pct(ho[0.003]['fpir'])}" if 0.003 in ho else "-",
            )
            _, fpr, fnr = det_curve(run.searches.hit_scores, run.searches.non_mated_top)
            curves.append((m.name, fpr, fnr))
            results.setdefault(label, {})[m.name] = {
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
            if run.by_gallery_size:
                sec.tables.append(
                    Table(
                        ["gallery size", "FPIR at a fixed threshold"],
                        [[int(x["gallery"]), x["fpir"]] for x in run.by_gallery_size],
                        f"{m.name}: FPIR against watchlist size at the threshold giving FPIR 0.01 on the full gallery",
                    )
                )
            best = run
        sec.tables.insert(
            0,
            Table(
                [
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
                ],
                rows,
                f"{label}: FNIR at FPIR (lower is better); 'resolved' is no when there are fewer than 1/0.003 "
                "non-mated searches (the point is then at zero observed false positives)",
            ),
        )
        stem = f"k{k}"
        sec.figures.append(Figure(f"det-{stem}", det_plot(curves, title=f"DET, {label}"), "DET: FNIR against FPIR"))
        if best is not None:
            thr = next(p.threshold for p in best.result.at_fpir if p.target == 0.003)
            sec.figures.append(
                Figure(
                    f"scores-{stem}",
                    histogram_plot(
                        [
                            ("mated (hits)", best.searches.hit_scores),
                            ("non-mated top", best.searches.non_mated_top),
                        ],
                        thr,
                        f"{best.method.name}: top scores",
                        "score",
                    ),
                )
            )
    measured = [p for p in (data, gallery, probes) if p is not None]
    _provenance(report, settings, measured)
    report.data.update({"identification": results, "settings": {"detector": settings.detection.detector.kind}})
    html_path, json_path = report.write(_out_dir(out_dir, home), _stem("identify", name))
    out.print(console)
    out.print(f"report: {html_path}\njson:   {json_path}", highlight=False)


# -- verify -----------------------------------------------------------------------------------------------------
@eval_app.command("verify")
def verify_cmd(
    images: Annotated[Path, typer.Option("--images", help="LFW image folder (one sub-folder per person)")],
    pairs: Annotated[Path, typer.Option("--pairs", help="LFW pairs.txt")],
    cohort: Annotated[Path | None, typer.Option("--cohort", help="background faces for AS-norm")] = None,
    baseline: Annotated[bool, typer.Option(help="also measure the face_recognition baseline")] = True,
    folds: Annotated[int, typer.Option("--folds", help="folds when the pairs file has one")] = 10,
    max_pairs: Annotated[
        int | None, typer.Option("--max-pairs", help="use the first N genuine and N impostor pairs")
    ] = None,
    quality_gate: Annotated[
        bool, typer.Option(help="refuse faces failing the quality checks (their pairs are rejected)")
    ] = False,
    cache: Annotated[Path | None, typer.Option("--cache", help="folder for cached descriptors")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="report folder (default <home>/reports)")] = None,
    name: Annotated[str | None, typer.Option("--name", help="report file stem")] = None,
) -> None:
    """LFW-protocol verification: accuracy ± std (threshold from the training folds only), TAR at FAR 1e-3/1e-4."""
    from metrosight.eval.datasets import DatasetError, load_pairs
    from metrosight.eval.extract import FaceRecognitionBaseline
    from metrosight.eval.identify import MethodSpec
    from metrosight.eval.metrics import MetricError
    from metrosight.eval.report import Figure, Report, Table, roc_plot
    from metrosight.eval.verify import evaluate_pairs

    settings, home = _context()
    try:
        plist = load_pairs(pairs, images)
    except DatasetError as exc:
        _fail(str(exc))
    if max_pairs:
        plist = [p for p in plist if p.same][:max_pairs] + [p for p in plist if not p.same][:max_pairs]
    label_of = {}
    for p in plist:
        label_of[p.a] = p.a.parent.name
        label_of[p.b] = p.b.parent.name
    items = list(label_of.items())
    ms = metrosight_encoder(settings, home, gate_quality=quality_gate)
    records = {"metrosight": encode_with_progress(items, ms, cache, "metrosight: encode")}
    if baseline:
        records["face_recognition"] = encode_with_progress(
            items, FaceRecognitionBaseline(), cache, "face_recognition: encode"
        )
    coh = load_cohort(cohort, settings, home, exclude=list(label_of)) if cohort is not None else None
    methods: list[tuple[str, MethodSpec]] = []
    if baseline:
        methods.append(("face_recognition", MethodSpec("face_recognition (HOG, Euclidean)", "euclidean")))
    methods += [
        ("metrosight", MethodSpec("metrosight cosine", "cosine")),
        ("metrosight", MethodSpec("metrosight cosine + flips", "cosine", flip=True)),
    ]
    if coh is not None:
        methods.append(
            ("metrosight", MethodSpec(f"metrosight AS-norm + flips (cohort {len(coh)})", "asnorm", True, coh))
        )

    report = Report("LFW-protocol verification", _command_line())
    sec = report.section(f"{sum(p.same for p in plist)} genuine and {sum(not p.same for p in plist)} impostor pairs")
    n_file_folds = len({p.fold for p in plist})
    sec.notes.append(
        f"Accuracy: each fold is scored with the threshold that maximises accuracy on the other folds "
        f"({'the file has ' + str(n_file_folds) + ' folds' if n_file_folds > 1 else 'the file has one fold, so its pairs are split into ' + str(folds) + ' stratified folds'}). "
        "TAR at FAR over the pairs file is limited by its number of impostor pairs; the 'all pairs' columns use every "
        "pair of distinct photos in the set (many more impostor pairs)."
    )
    rows, curves, data = [], [], {}
    console = RichTable(
        "method",
        "accuracy",
        "EER",
        "TAR@FAR1e-3",
        "TAR@FAR1e-4",
        "all-pairs TAR@1e-3",
        "all-pairs TAR@1e-4",
        title="verification",
    )
    for source, m in methods:
        try:
            run = evaluate_pairs(plist, records[source], m, folds=folds)
        except MetricError as exc:
            _fail(str(exc))
        r = run.result
        ap = {far: (tar, t) for far, tar, t in run.all_pairs}
        rows.append(
            [m.name, r.accuracy, r.accuracy_std, r.eer, run.failed_pairs]
            + [p.value for p in r.at_far]
            + [
                ap.get(1e-3, (float("nan"),))[0],
                ap.get(1e-4, (float("nan"),))[0],
                run.n_all_genuine,
                run.n_all_impostor,
            ]
        )
        console.add_row(
            m.name,
            f"{100 * r.accuracy:.2f} ± {100 * r.accuracy_std:.2f}%",
            _pct(r.eer),
            *[_pct(p.value) + ("" if p.resolved else "*") for p in r.at_far],
            *[_pct(ap[f][0]) if f in ap else "-" for f in (1e-3, 1e-4)],
        )
        curves.append((m.name, run.all_curve[0], run.all_curve[1]))
        data[m.name] = {
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
    sec.tables.append(
        Table(
            [
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
            ],
            rows,
            "TAR at FAR from the pairs file is unresolved below 1/(impostor pairs)",
        )
    )
    sec.figures.append(Figure("roc", roc_plot(curves, "ROC over all pairs of the photos"), "ROC over all pairs"))
    _provenance(report, settings, [images, pairs])
    report.data.update({"verification": data})
    html_path, json_path = report.write(_out_dir(out_dir, home), _stem("verify", name))
    out.print(console)
    out.print("* unresolved: fewer impostor pairs than 1/FAR", highlight=False)
    out.print(f"report: {html_path}\njson:   {json_path}", highlight=False)


# -- calibrate --------------------------------------------------------------------------------------------------
def calibrate_cmd(
    non_mated: Annotated[
        list[Path] | None,
        typer.Option("--non-mated", help="photos folder or video of people on no list (repeatable)"),
    ] = None,
    cohort: Annotated[
        Path | None,
        typer.Option("--cohort", help="folder of photos of people on no list: build the AS-norm cohort from it"),
    ] = None,
    gallery: Annotated[
        Path | None,
        typer.Option("--gallery", help="enrolment photos, one folder per person (default: the active watchlists)"),
    ] = None,
    target_fpir: Annotated[
        float | None,
        typer.Option("--target-fpir", help="share of passers-by allowed to raise a candidate (default: the config's)"),
    ] = None,
    watchlist_size: Annotated[
        int | None,
        typer.Option("--watchlist-size", help="people on the watchlists (default: the templates used)"),
    ] = None,
    footfall: Annotated[int, typer.Option("--footfall", help="people passing the cameras a day")] = 100_000,
    write_config: Annotated[
        Path | None,
        typer.Option("--write-config", help="YAML config to write the threshold into (default: --config)"),
    ] = None,
    allow_looser: Annotated[
        bool, typer.Option(help="allow a threshold below the configured one (same score units)")
    ] = False,
    every: Annotated[float, typer.Option("--every", help="seconds between sampled video frames")] = 0.5,
    out_dir: Annotated[Path | None, typer.Option("--out", help="report folder (default <home>/reports)")] = None,
    searches_per_day: Annotated[
        float | None,
        typer.Option(
            "--searches-per-day",
            help="watchlist searches (face tracks) a day (default: the tracks of the runs of the last 7 days)",
        ),
    ] = None,
    keep_faces: Annotated[
        bool,
        typer.Option(
            help="store the non-mated faces' descriptors (no images) so the threshold is recomputed with them "
            "whenever the gallery changes"
        ),
    ] = True,
) -> None:
    """Show the operating point in force — the threshold that recognition.target_fpir gives for the active
    persons, estimated from their templates scored against each other — and the expected false candidates a day.

    With --non-mated (photos or video of people on no list, e.g. staff who volunteered, on the deployment's own
    cameras): their faces are added to the impostor pairs the threshold is estimated from (descriptors only, in
    <home>/calibration/nonmated.npz), a threshold floor for the target is chosen from them and written into the
    config, and the expected false alerts a day are reported."""
    from metrosight.eval.calibrate import (
        VIDEO_SUFFIXES,
        CalibrationError,
        choose_threshold,
        faces_of_video,
        fused,
        photo_files,
        set_recognition_keys,
    )
    from metrosight.eval.extract import faces_of_photos
    from metrosight.eval.report import Figure, Report, Table, histogram_plot
    from metrosight.recognize.normalize import CohortError, CohortNorm
    from metrosight.services.calibration import cohort_path

    settings, home = _context()
    root = _root()
    rec = settings.recognition
    if target_fpir is None:
        target_fpir = rec.target_fpir
    if searches_per_day is not None and searches_per_day < 0:
        _fail(f"--searches-per-day must be 0 or more, got {searches_per_day:g}")
    if not non_mated:
        if cohort is not None or gallery is not None or write_config is not None:
            _fail("--cohort, --gallery and --write-config need --non-mated (faces of people on no list)")
        _operating_table(root, searches_per_day)
        return
    enc = metrosight_encoder(settings, home, flip=True)

    # 1. the cohort (optional): built from the operator's photos, stored under the home.
    coh = None
    scoring = "cohort" if rec.normalization == "cohort" else "cosine"
    cpath = cohort_path(home.root)
    if cohort is not None:
        if not cohort.is_dir():
            _fail(f"--cohort {cohort}: not a folder of photos")
        coh = load_cohort(cohort, settings, home)
        coh.save(cpath)
        scoring = "cohort"
        out.print(f"cohort: {len(coh)} faces from {cohort} saved to {cpath}", highlight=False)
    elif scoring == "cohort":
        from metrosight.recognize.normalize import Cohort

        try:
            coh = Cohort.load(cpath)
        except CohortError as exc:
            _fail(str(exc))

    # 2. the templates the threshold will guard.
    if gallery is not None:
        from metrosight.eval.datasets import DatasetError, people_folders

        try:
            people = people_folders(gallery)
        except DatasetError as exc:
            _fail(str(exc))
        templates = []
        with progress() as bar:
            task = bar.add_task("gallery", total=sum(len(v) for v in people.values()))
            for photos in people.values():
                d, f, _ = faces_of_photos(photos, enc, on_progress=lambda n: bar.advance(task, n))
                if len(d):
                    v = fused(d, f).mean(axis=0)
                    templates.append(v / max(float(np.linalg.norm(v)), 1e-12))
        source = f"{len(templates)} people in {gallery}"
    else:
        rt = root._runtime()
        templates = [e.template for e in rt.store.active_gallery(rt.models.model_id)]
        source = f"{len(templates)} active watchlist entries"
    if not templates:
        _fail("no templates to calibrate against: enrol and approve watchlist entries first, or pass --gallery DIR")
    t_mat = np.stack(templates).astype(np.float32)
    t_mat /= np.maximum(np.linalg.norm(t_mat, axis=1, keepdims=True), 1e-12)

    # 3. non-mated traffic.
    faces, flips = [], []
    for src in non_mated:
        if src.is_dir():
            photos = photo_files(src)
            with progress() as bar:
                task = bar.add_task(f"faces in {src.name}", total=len(photos))
                d, f, _ = faces_of_photos(photos, enc, on_progress=lambda n: bar.advance(task, n))  # noqa: B023
        elif src.is_file() and src.suffix.lower() in VIDEO_SUFFIXES:
            from metrosight.ingest.source import SourceError

            with progress() as bar:
                task = bar.add_task(f"faces in {src.name} (s)", total=None)
                try:
                    d, f = faces_of_video(
                        src,
                        metrosight_encoder(settings, home, flip=True, video=True),  # camera frames' limits
                        every,
                        on_progress=lambda ts: bar.update(task, completed=ts),  # noqa: B023
                    )
                except SourceError as exc:
                    _fail(str(exc))
        else:
            _fail(f"--non-mated {src}: not a folder of photos or a video file")
        faces.append(d)
        flips.append(f)
    d = np.concatenate(faces)
    if len(d) == 0:
        _fail("no usable face in the non-mated traffic")
    probes = fused(
        d, np.concatenate([f for f in flips if f is not None]) if all(f is not None for f in flips) else None
    )
    if keep_faces:
        from metrosight.services.calibration import save_nonmated

        saved = save_nonmated(home.root, probes, enc.embedder.model_id)
        out.print(
            f"calibration faces: {len(probes)} descriptors (no images) saved to {saved}; the threshold is "
            "recomputed with them whenever the gallery changes",
            highlight=False,
        )
    cos = probes @ t_mat.T
    scores = CohortNorm(coh, t_mat).normalize_many(probes, cos) if scoring == "cohort" and coh is not None else cos
    n = watchlist_size or len(t_mat)
    same_units = scoring == ("cohort" if rec.normalization == "cohort" else "cosine")
    floor = rec.match_threshold if (not allow_looser and same_units) else None
    try:
        cal = choose_threshold(scores, target_fpir, n, footfall, scoring, floor)
    except CalibrationError as exc:
        _fail(str(exc))

    table = RichTable("", "value", title="calibration")
    rows = [
        ("scoring", cal.scoring),
        ("templates compared", source),
        ("non-mated faces", str(cal.n_faces)),
        ("comparisons", str(cal.n_comparisons)),
        ("watchlist size planned", str(cal.watchlist_size)),
        ("target FPIR", f"{cal.target_fpir:g}"),
        (
            "threshold",
            f"{cal.threshold:.4f}"
            + (
                " (kept at the configured value: calibration only tightens)"
                if floor is not None and cal.threshold == floor
                else ""
            ),
        ),
        ("observed FMR per comparison", f"{cal.fmr:.2e} (95% upper {cal.fmr_upper:.2e})"),
        ("estimated FPIR", f"{cal.fpir:.2e} (95% upper {cal.fpir_upper:.2e})"),
        ("observed FPIR (these templates)", f"{cal.observed_fpir:.4f}"),
        (
            f"false alerts/day at footfall {footfall:,}",
            f"{cal.false_alerts_per_day:.2f} (95% upper {cal.false_alerts_per_day_upper:.2f})",
        ),
    ]
    for k, v in rows:
        table.add_row(k, v)
    out.print(table)
    if not cal.resolved:
        need = int(np.ceil(1.0 / (1.0 - (1.0 - target_fpir) ** (1.0 / cal.watchlist_size)) / max(len(t_mat), 1)))
        out.print(
            f"warning: {cal.n_comparisons} comparisons cannot resolve the target; the threshold sits above every "
            f"observed score and the upper bound is what the data supports (about {need} non-mated faces needed)",
            highlight=False,
        )

    report = Report("Threshold calibration", _command_line())
    sec = report.section("Result")
    sec.tables.append(Table(["", "value"], [list(r) for r in rows]))
    sizes = sorted({10, 100, 1000, 10000, cal.watchlist_size})
    foot = sorted({10_000, 100_000, 1_000_000, footfall})
    from metrosight.eval.calibrate import fpir_from_fmr

    sec.tables.append(
        Table(
            ["watchlist size"] + [f"false alerts/day @ {f:,}" for f in foot],
            [[s] + [f * fpir_from_fmr(cal.fmr_upper if cal.fmr == 0 else cal.fmr, s) for f in foot] for s in sizes],
            "expected false alerts a day at this threshold (upper bound where no comparison reached it)",
        )
    )
    sec.figures.append(
        Figure(
            "nonmated",
            histogram_plot(
                [("non-mated top score", scores.max(axis=1))],
                cal.threshold,
                "non-mated faces: best score against the templates",
                cal.scoring,
            ),
        )
    )
    report.data = {"calibration": {k: getattr(cal, k) for k in cal.__slots__}}  # type: ignore[attr-defined]
    if gallery is None:
        report.data["operating_point"] = _operating_table(root, searches_per_day)
    html_path, json_path = report.write(_out_dir(out_dir, home), _stem("calibrate", None))
    out.print(f"report: {html_path}\njson:   {json_path}", highlight=False)

    target = write_config or root.state.config
    if target is None:
        out.print(
            "not written: pass --write-config FILE (or the global --config FILE) to store the threshold",
            highlight=False,
        )
        return
    values: dict[str, object] = {"match_threshold": math.ceil(cal.threshold * 1e4) / 1e4}  # never loosen by rounding
    if not same_units:
        values["normalization"] = "cohort" if scoring == "cohort" else "none"
    try:
        set_recognition_keys(target, values)
    except CalibrationError as exc:
        _fail(str(exc))
    out.print(f"wrote {', '.join(f'recognition.{k}={v}' for k, v in values.items())} to {target}", highlight=False)


def _operating_table(root: Any, searches_per_day: float | None) -> dict[str, Any]:
    """Print the operating point in force (see :meth:`metrosight.services.matching.Matching.operating_status`)."""
    from metrosight.recognize.normalize import CohortError

    rt = root._runtime()
    try:
        op = rt.matching.operating_status(searches_per_day)
    except CohortError as exc:
        _fail(str(exc))
    t = RichTable("", "value", title="operating point in force")
    spd = op["searches_per_day"]
    rows = [
        (
            "target FPIR per search",
            f"{op['target_fpir']:g}"
            + (
                f" (over every list: {op['fpir_per_search']:.4g})" if op["fpir_per_search"] != op["target_fpir"] else ""
            ),
        ),
        ("active persons", str(op["persons"])),
        ("match threshold", f"{op['threshold']:.4f} ({op['scoring']}; {op['method']})"),
        (
            "impostor pairs measured",
            f"{op['impostor_pairs']:,}"
            + (
                f" (resolution {op['fpir_resolution']:.1e} per comparison; target {op['fmr_target']:.1e})"
                if op["fmr_target"] is not None
                else ""
            ),
        ),
        ("floor", f"{op['floor']:.4f}"),
    ]
    rows += [
        (
            f"list {name}",
            f"target {v['target_fpir']:g}, threshold "
            + (f"{v['threshold']:.4f}" if v["threshold"] is not None else "-"),
        )
        for name, v in op["lists"].items()
    ]
    rows += [
        (
            "searches a day",
            "unknown (no finished runs in the last 7 days; give --searches-per-day)" if spd is None else f"{spd:,.0f}",
        ),
        (
            "expected false candidates a day",
            "-"
            if spd is None
            else f"{op['expected_false_candidates_per_day']:.2f}"
            + f" (FPIR {op['fpir_per_search']:.4g} x {spd:,.0f} searches)",
        ),
    ]
    for k, v in rows:
        t.add_row(k, v)
    out.print(t)
    return op


# -- detect -----------------------------------------------------------------------------------------------------
@eval_app.command("detect")
def detect_cmd(
    fddb: Annotated[Path | None, typer.Option("--fddb", help="FDDB root (FDDB-folds/ and originalPics/)")] = None,
    fold: Annotated[list[int] | None, typer.Option("--fold", help="FDDB fold number(s) (default 1)")] = None,
    dlib_xml: Annotated[
        list[Path] | None,
        typer.Option("--dlib-xml", help="dlib/imglab dataset XML with face boxes (repeatable)"),
    ] = None,
    detector: Annotated[
        list[str] | None,
        typer.Option(
            "--detector",
            help="configured | centerface | mtcnn | mmod | hog | hog0 (HOG without upsampling) (repeatable)",
        ),
    ] = None,
    iou: Annotated[list[float] | None, typer.Option("--iou", help="IoU threshold(s) for a match")] = None,
    max_images: Annotated[int | None, typer.Option("--max-images", help="first N images of each set")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="report folder (default <home>/reports)")] = None,
    name: Annotated[str | None, typer.Option("--name", help="report file stem")] = None,
) -> None:
    """Face-detection recall/precision at IoU thresholds and the FDDB discrete ROC."""
    import time

    from metrosight.eval.detection import (
        GroundTruthError,
        evaluate,
        load_dlib_xml,
        load_fddb_fold,
        roc_points,
        summarize,
    )
    from metrosight.eval.report import Figure, Report, Table, detection_roc_plot
    from metrosight.ingest.images import ImageError, load_image

    settings, _home = _context()
    sets: list[tuple[str, list[Any]]] = []
    try:
        if fddb is not None:
            for k in fold or [1]:
                ell = fddb / "FDDB-folds" / f"FDDB-fold-{k:02d}-ellipseList.txt"
                sets.append((f"FDDB fold {k}", load_fddb_fold(ell, fddb / "originalPics")))
        for x in dlib_xml or []:
            sets.append((f"dlib {x.name}", load_dlib_xml(x)))
    except GroundTruthError as exc:
        _fail(str(exc))
    if not sets:
        _fail("give --fddb DIR and/or --dlib-xml FILE")
    if max_images:
        sets = [(n, g[:max_images]) for n, g in sets]
    ious = iou or [0.3, 0.4, 0.5]

    def build(kind: str) -> Any:
        from metrosight.detect.base import DetectorError
        from metrosight.detect.factory import make_detector
        from metrosight.services.models import make_face_detector

        try:
            if kind == "configured":
                return make_face_detector(settings)
            if kind == "hog0":
                return make_detector("hog", upsample=0)
            return make_detector(kind)
        except DetectorError as exc:
            _fail(str(exc))

    kinds = detector or ["configured"]
    report = Report("Face detection", _command_line())
    console = RichTable(
        "set",
        "detector",
        "images",
        "faces",
        *[f"recall@IoU{t:g}" for t in ious],
        "precision@0.4",
        "FP@0.4",
        "ms/image",
        title="face detection",
    )
    data: dict[str, Any] = {}
    for set_name, gts in sets:
        sec = report.section(set_name)
        sec.notes.append(
            "Boxes are matched greedily in descending score order; FDDB ellipses are compared as their bounding boxes, "
            "and the different box conventions of detectors make IoU 0.4 the fair operating point (0.5 is shown too). "
            "The ROC counts detections at every score threshold (FDDB's discrete ROC)."
        )
        rows, curves = [], []
        images = []
        for g in gts:
            try:
                images.append(load_image(g.path)[0])
            except ImageError as exc:
                _fail(str(exc))
        for kind in kinds:
            det = build(kind)
            label = f"{kind} ({getattr(det, 'name', kind)})" if kind == "configured" else kind
            dets = []
            started = time.perf_counter()
            with progress() as bar:
                task = bar.add_task(f"{label} on {set_name}", total=len(images))
                for img in images:
                    found = det.detect(img)
                    dets.append(([d.box for d in found], [d.score for d in found]))
                    bar.advance(task)
            ms = 1000 * (time.perf_counter() - started) / max(len(images), 1)
            by_iou = {t: summarize(evaluate(dets, gts, t)) for t in ious}
            s4 = summarize(evaluate(dets, gts, 0.4))
            roc = roc_points(evaluate(dets, gts, 0.4))
            rows.append([label, s4.n_images, s4.n_gt] + [by_iou[t].recall for t in ious] + [s4.precision, s4.fp, ms])
            console.add_row(
                set_name,
                label,
                str(s4.n_images),
                str(s4.n_gt),
                *[_pct(by_iou[t].recall) for t in ious],
                _pct(s4.precision),
                str(s4.fp),
                f"{ms:.0f}",
            )
            curves.append((label, np.array([p.fp for p in roc]), np.array([p.recall for p in roc])))
            data.setdefault(set_name, {})[label] = {
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
        sec.tables.append(
            Table(
                ["detector", "images", "faces"]
                + [f"recall @IoU {t:g}" for t in ious]
                + ["precision @0.4", "false positives @0.4", "ms/image"],
                rows,
            )
        )
        stem = re.sub(r"[^a-z0-9]+", "-", set_name.lower()).strip("-")
        sec.figures.append(Figure(f"roc-{stem}", detection_roc_plot(curves, f"{set_name}: discrete ROC (IoU 0.4)")))
    _provenance(
        report,
        settings,
        ([fddb] if fddb is not None else []) + list(dlib_xml or []),
        (fold or [1]) if fddb is not None else (),
    )
    report.data.update({"detection": data})
    html_path, json_path = report.write(_out_dir(out_dir, _home), _stem("detect", name))
    out.print(console)
    out.print(f"report: {html_path}\njson:   {json_path}", highlight=False)


def _identify_video(
    video: Path,
    labels: Path,
    gallery: Path,
    cohort: Path | None,
    threshold: float | None,
    out_dir: Path | None,
    name: str | None,
) -> None:
    from metrosight.core.types import Category
    from metrosight.eval.datasets import DatasetError, people_folders
    from metrosight.eval.report import Report, Table
    from metrosight.eval.video import evaluate_video, load_labels
    from metrosight.ingest.source import SourceError
    from metrosight.recognize.gallery import Gallery, GalleryEntry, Matcher, fuse
    from metrosight.recognize.normalize import Cohort, CohortError

    settings, home = _context()
    rec = settings.recognition
    try:
        appearances = load_labels(labels)
        people = people_folders(gallery)
    except DatasetError as exc:
        _fail(str(exc))
    enc = metrosight_encoder(settings, home, flip=True, gate_quality=True)
    items = [(p, k) for k, v in people.items() for p in v]
    records = encode_with_progress(items, enc, None, "gallery")
    entries = []
    for i, person in enumerate(people):
        vecs = [
            np.stack([r.descriptor, r.flipped]) if rec.flip else r.descriptor[None]
            for r in records
            if r.label == person and r.ok
        ]
        if vecs:
            entries.append(
                GalleryEntry(i + 1, person.replace("_", " "), "eval", Category.WANTED, fuse(np.concatenate(vecs)))
            )
    if not entries:
        _fail(f"--gallery {gallery}: no usable enrolment photo")
    coh = None
    if cohort is not None:
        coh = load_cohort(cohort, settings, home)
        if threshold is None and rec.normalization != "cohort":
            _fail("--cohort changes the score units: give --threshold (AS-norm units, e.g. from metrosight calibrate)")
    elif rec.normalization == "cohort":
        from metrosight.services.calibration import cohort_path

        try:
            coh = Cohort.load(cohort_path(home.root))
        except CohortError as exc:
            _fail(str(exc))
    if threshold is None and coh is None:
        # as deployed: the threshold recognition.target_fpir gives for this gallery's persons
        matcher = _root()._runtime().matching.matcher_for(Gallery(entries))
    else:
        matcher = Matcher(
            Gallery(entries), threshold if threshold is not None else rec.match_threshold, rec.min_margin, coh
        )
    from metrosight.services.models import make_face_detector
    from metrosight.recognize.registry import embedder_for

    embedder = embedder_for(settings, home.cache / "models")
    with progress() as bar:
        task = bar.add_task(f"{video.name} (media s)", total=None)
        try:
            res = evaluate_video(
                str(video),
                settings,
                make_face_detector(settings),
                embedder,
                matcher,
                appearances,
                on_frame=lambda ts: bar.update(task, completed=ts),
            )
        except SourceError as exc:
            _fail(str(exc))
    report = Report("Per-track evaluation on a labelled video", _command_line())
    sec = report.section(
        f"{video.name}: {res.frames} frames, {res.tracks} face tracks, {res.decided} matched at least once"
    )
    sec.notes.append(
        "An alert naming S is true when its track overlaps a labelled appearance of S (labels give times, not places); "
        "an appearance is found when a true alert overlaps it. The sweep applies other thresholds to the best score "
        "each track reached (the margin rule is not re-applied there)."
    )
    sec.tables.append(
        Table(
            ["track", "subject", "first seen (s)", "last seen (s)", "score", "true"],
            [list(a) for a in res.alerts],
            f"alerts at threshold {res.threshold:g} ({matcher.scoring})",
        )
    )
    sec.tables.append(
        Table(
            ["subject", "start (s)", "end (s)", "found"],
            [[a.subject, a.start, a.end, f] for a, f in res.appearances],
            "labelled appearances",
        )
    )
    sec.tables.append(
        Table(
            ["threshold", "true alerts", "false alerts", "appearances found", "appearances"],
            [[r["threshold"], r["true_alerts"], r["false_alerts"], r["found"], r["appearances"]] for r in res.sweep],
            "if every track alerted whose best score reached the threshold",
        )
    )
    report.data = {
        "video": str(video),
        "frames": res.frames,
        "tracks": res.tracks,
        "decided": res.decided,
        "threshold": res.threshold,
        "scoring": matcher.scoring,
        "alerts": [
            dict(zip(["track", "subject", "first_seen", "last_seen", "score", "true"], a, strict=True))
            for a in res.alerts
        ],
        "appearances": [{"subject": a.subject, "start": a.start, "end": a.end, "found": f} for a, f in res.appearances],
        "sweep": res.sweep,
    }
    html_path, json_path = report.write(_out_dir(out_dir, home), _stem("identify-video", name))
    t = RichTable(
        "alerts",
        "true",
        "false",
        "appearances found",
        title=f"per-track evaluation ({matcher.scoring} threshold {res.threshold:g})",
    )
    n_true = sum(1 for a in res.alerts if a[5])
    t.add_row(
        str(len(res.alerts)),
        str(n_true),
        str(len(res.alerts) - n_true),
        f"{sum(f for _, f in res.appearances)}/{len(res.appearances)}",
    )
    out.print(t)
    out.print(f"report: {html_path}\njson:   {json_path}", highlight=False)
