"""``metrosight eval …``: accuracy you can reproduce — open-set 1:N identification (photos, or a labelled video),
LFW-protocol verification, face detection. Each command turns its options into the study's options value and runs
it (the studies live in :mod:`metrosight.eval`); each run prints a table and writes a self-contained HTML report,
a JSON file and the plots as PNG into ``--out`` (default ``<home>/reports``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from metrosight.cli.common import command_line, fail, study_io
from metrosight.cli.context import cli_context
from metrosight.eval.study_io import EvalError

eval_app = typer.Typer(
    help="Measure accuracy: LFW verification, open-set 1:N identification, face detection.",
    no_args_is_help=True,
)

OutOpt = Annotated[Path | None, typer.Option("--out", help="report folder (default <home>/reports)")]
NameOpt = Annotated[str | None, typer.Option("--name", help="report file stem")]
CacheOpt = Annotated[Path | None, typer.Option("--cache", help="folder for cached descriptors")]
BaselineOpt = Annotated[bool, typer.Option(help="also measure the face_recognition baseline")]

DataOpt = Annotated[Path | None, typer.Option("--data", help="one folder of photos per person, split automatically")]
GalleryOpt = Annotated[Path | None, typer.Option("--gallery", help="enrolment photos, one folder per person")]
ProbesOpt = Annotated[
    Path | None, typer.Option("--probes", help="probe photos, one folder per person (unknown people: non-mated)")
]
IncludeOpt = Annotated[str | None, typer.Option("--include", help="regex person folders must match")]
PerPersonOpt = Annotated[
    list[int] | None, typer.Option("--per-person", help="enrolment photos per person with --data (repeatable)")
]
NonMatedOpt = Annotated[
    str | None,
    typer.Option("--non-mated", help="regex of people never enrolled (all their photos non-mated) with --data"),
]
MaxPeopleOpt = Annotated[int | None, typer.Option("--max-people", help="use only the first N people")]
SameProbesOpt = Annotated[
    bool, typer.Option(help="with several --per-person: search the same probes (photos after the largest gallery)")
]
IdCohortOpt = Annotated[
    Path | None, typer.Option("--cohort", help="background faces for AS-norm: photo folder or cohort .npz")
]
IdQualityOpt = Annotated[
    bool, typer.Option(help="refuse faces failing the quality checks (counted as misses / no candidate)")
]
AlignedOpt = Annotated[
    bool, typer.Option("--aligned", help="the photos are aligned 150x150 chips: embed them without detection")
]
VideoOpt = Annotated[
    Path | None, typer.Option("--video", help="a labelled video: per-track evaluation against --gallery")
]
LabelsOpt = Annotated[
    Path | None, typer.Option("--labels", help="CSV subject,start,end (seconds) of who is on screen in --video")
]
ThresholdOpt = Annotated[
    float | None, typer.Option("--threshold", help="match threshold for --video (default: the configured one)")
]


@eval_app.command("identify")
def identify_cmd(
    ctx: typer.Context,
    data: DataOpt = None,
    gallery: GalleryOpt = None,
    probes: ProbesOpt = None,
    include: IncludeOpt = None,
    per_person: PerPersonOpt = None,
    non_mated: NonMatedOpt = None,
    max_people: MaxPeopleOpt = None,
    same_probes: SameProbesOpt = False,
    cohort: IdCohortOpt = None,
    baseline: BaselineOpt = True,
    quality_gate: IdQualityOpt = False,
    aligned: AlignedOpt = False,
    cache: CacheOpt = None,
    video: VideoOpt = None,
    labels: LabelsOpt = None,
    threshold: ThresholdOpt = None,
    out_dir: OutOpt = None,
    name: NameOpt = None,
) -> None:
    """Open-set 1:N identification: FNIR at FPIR 0.1/0.01/0.003, rank-1, DET curves, HTML + JSON report.
    With --video and --labels: per-track evaluation of the camera pipeline on a labelled video."""
    # heavy: the studies load numpy, scipy, matplotlib and the models; imported by the command that runs one
    from metrosight.eval.identify_study import IdentifyOptions, run_identify
    from metrosight.eval.video_study import VideoOptions, run_video

    c = cli_context(ctx)
    if video is not None:
        if gallery is None or labels is None:
            fail("--video needs --gallery DIR (one folder of photos per person) and --labels FILE")
        vopts = VideoOptions(video, labels, gallery, cohort, threshold, out_dir, name, command_line())
        settings, home = c.settings(), c.home()
        try:
            run_video(vopts, settings, home, lambda g: c.services().matching.matcher_for(g), study_io(c.out, c.err))
        except EvalError as exc:
            fail(str(exc))
        return
    opts = IdentifyOptions(
        data=data,
        gallery=gallery,
        probes=probes,
        include=include,
        per_person=tuple(per_person or [1]),
        non_mated=non_mated,
        max_people=max_people,
        same_probes=same_probes,
        cohort=cohort,
        baseline=baseline,
        quality_gate=quality_gate,
        aligned=aligned,
        cache=cache,
        out_dir=out_dir,
        name=name,
        command=command_line(),
    )
    settings, home = c.settings(), c.home()
    try:
        run_identify(opts, settings, home, study_io(c.out, c.err))
    except EvalError as exc:
        fail(str(exc))


@eval_app.command("verify")
def verify_cmd(
    ctx: typer.Context,
    images: Annotated[Path, typer.Option("--images", help="LFW image folder (one sub-folder per person)")],
    pairs: Annotated[Path, typer.Option("--pairs", help="LFW pairs.txt")],
    cohort: Annotated[Path | None, typer.Option("--cohort", help="background faces for AS-norm")] = None,
    baseline: BaselineOpt = True,
    folds: Annotated[int, typer.Option("--folds", help="folds when the pairs file has one")] = 10,
    max_pairs: Annotated[
        int | None, typer.Option("--max-pairs", help="use the first N genuine and N impostor pairs")
    ] = None,
    quality_gate: Annotated[
        bool, typer.Option(help="refuse faces failing the quality checks (their pairs are rejected)")
    ] = False,
    cache: CacheOpt = None,
    out_dir: OutOpt = None,
    name: NameOpt = None,
) -> None:
    """LFW-protocol verification: accuracy ± std (threshold from the training folds only), TAR at FAR 1e-3/1e-4."""
    # heavy: the study loads numpy, scipy, matplotlib and the models; imported by the command that runs it
    from metrosight.eval.verify_study import VerifyOptions, run_verify

    c = cli_context(ctx)
    opts = VerifyOptions(
        images, pairs, cohort, baseline, folds, max_pairs, quality_gate, cache, out_dir, name, command_line()
    )
    settings, home = c.settings(), c.home()
    try:
        run_verify(opts, settings, home, study_io(c.out, c.err))
    except EvalError as exc:
        fail(str(exc))


@eval_app.command("detect")
def detect_cmd(
    ctx: typer.Context,
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
    out_dir: OutOpt = None,
    name: NameOpt = None,
) -> None:
    """Face-detection recall/precision at IoU thresholds and the FDDB discrete ROC."""
    # heavy: the study loads numpy, matplotlib and the detectors; imported by the command that runs it
    from metrosight.eval.detect_study import DetectOptions, run_detect

    c = cli_context(ctx)
    opts = DetectOptions(
        fddb=fddb,
        folds=tuple(fold or [1]),
        dlib_xml=tuple(dlib_xml or []),
        detectors=tuple(detector or ["configured"]),
        ious=tuple(iou or [0.3, 0.4, 0.5]),
        max_images=max_images,
        out_dir=out_dir,
        name=name,
        command=command_line(),
    )
    settings, home = c.settings(), c.home()
    try:
        run_detect(opts, settings, home, study_io(c.out, c.err))
    except EvalError as exc:
        fail(str(exc))
