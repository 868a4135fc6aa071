"""``metrosight calibrate``: the operating point in force, and a threshold chosen from non-mated traffic (the study
is :func:`metrosight.eval.calibrate_study.run_calibrate`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from metrosight.cli.common import command_line, fail, study_io
from metrosight.cli.context import CliContext, cli_context
from metrosight.eval.study_io import EvalError

if TYPE_CHECKING:
    import numpy as np

    from metrosight.services.suite import Services

NonMatedOpt = Annotated[
    list[Path] | None, typer.Option("--non-mated", help="photos folder or video of people on no list (repeatable)")
]
CohortOpt = Annotated[
    Path | None,
    typer.Option("--cohort", help="folder of photos of people on no list: build the AS-norm cohort from it"),
]
GalleryOpt = Annotated[
    Path | None,
    typer.Option("--gallery", help="enrolment photos, one folder per person (default: the active watchlists)"),
]
TargetOpt = Annotated[
    float | None,
    typer.Option("--target-fpir", help="share of passers-by allowed to raise a candidate (default: the config's)"),
]
SizeOpt = Annotated[
    int | None, typer.Option("--watchlist-size", help="people on the watchlists (default: the templates used)")
]
FootfallOpt = Annotated[int, typer.Option("--footfall", help="people passing the cameras a day")]
WriteOpt = Annotated[
    Path | None, typer.Option("--write-config", help="YAML config to write the threshold into (default: --config)")
]
LooserOpt = Annotated[bool, typer.Option(help="allow a threshold below the configured one (same score units)")]
EveryOpt = Annotated[float, typer.Option("--every", help="seconds between sampled video frames")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="report folder (default <home>/reports)")]
SearchesOpt = Annotated[
    float | None,
    typer.Option(
        "--searches-per-day",
        help="watchlist searches (face tracks) a day (default: the tracks of the runs of the last 7 days)",
    ),
]
KeepOpt = Annotated[
    bool,
    typer.Option(
        help="store the non-mated faces' descriptors (no images) so the threshold is recomputed with them "
        "whenever the gallery changes"
    ),
]


class ServicesInstallation:
    """The installation calibration reads (:class:`metrosight.eval.calibrate_study.Installation`), opened only when
    first needed (calibrating against ``--gallery`` photos needs no store)."""

    def __init__(self, c: CliContext) -> None:
        self.c = c
        self._services: Services | None = None

    def services(self) -> Services:
        if self._services is None:
            self._services = self.c.services()
        return self._services

    def operating_status(self, searches_per_day: float | None) -> dict[str, Any]:
        return self.services().matching.operating_status(searches_per_day)

    def active_templates(self) -> list[np.ndarray]:
        services = self.services()
        return [e.template for e in services.store.gallery.active(services.models.model_id)]


def calibrate_cmd(
    ctx: typer.Context,
    non_mated: NonMatedOpt = None,
    cohort: CohortOpt = None,
    gallery: GalleryOpt = None,
    target_fpir: TargetOpt = None,
    watchlist_size: SizeOpt = None,
    footfall: FootfallOpt = 100_000,
    write_config: WriteOpt = None,
    allow_looser: LooserOpt = False,
    every: EveryOpt = 0.5,
    out_dir: OutOpt = None,
    searches_per_day: SearchesOpt = None,
    keep_faces: KeepOpt = True,
) -> None:
    """Show the operating point in force — the threshold that recognition.target_fpir gives for the active
    persons, estimated from their templates scored against each other — and the expected false candidates a day.

    With --non-mated (photos or video of people on no list, e.g. staff who volunteered, on the deployment's own
    cameras): their faces are added to the impostor pairs the threshold is estimated from (descriptors only, in
    <home>/calibration/nonmated.npz), a threshold floor for the target is chosen from them and written into the
    config, and the expected false alerts a day are reported."""
    # heavy: the study loads numpy, scipy, matplotlib and the models; imported by the command that runs it
    from metrosight.eval.calibrate_study import CalibrateOptions, run_calibrate

    c = cli_context(ctx)
    settings, home = c.settings(), c.home()
    opts = CalibrateOptions(
        non_mated=tuple(non_mated or ()),
        cohort=cohort,
        gallery=gallery,
        target_fpir=target_fpir,
        watchlist_size=watchlist_size,
        footfall=footfall,
        write_config=write_config,
        config=c.config,
        allow_looser=allow_looser,
        every=every,
        out_dir=out_dir,
        searches_per_day=searches_per_day,
        keep_faces=keep_faces,
        command=command_line(),
    )
    try:
        run_calibrate(opts, settings, home, ServicesInstallation(c), study_io(c.out, c.err))
    except EvalError as exc:
        fail(str(exc))
