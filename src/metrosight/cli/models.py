"""``metrosight models optimise``: build a faster variant of a face model and measure it through the parity gate.

The variant (:mod:`metrosight.core.derived`) is built into the installation's model cache next to the float model,
measured against it on the shared research data (:mod:`metrosight.eval.parity`) and the verdict stored with it; a
configuration naming that variant as ``precision`` is accepted only while a passing verdict speaks for exactly that
file (``config check`` and every start say so in one line otherwise).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from metrosight.cli.common import fail
from metrosight.cli.context import cli_context
from metrosight.config.model import Settings
from metrosight.core.derived import FLOAT, VARIANTS, ParityRecord, VariantError


def require_parity(settings: Settings, cache: Path) -> None:
    """Stop the command with one line when the configuration names a model ``precision`` without a passing parity
    record in ``cache/models`` (``config check`` and every host's start: run, node, worker, serve)."""
    from metrosight.detect.base import DetectorError
    from metrosight.recognize.embedder import EmbedderError
    from metrosight.services.models import check_precisions  # the check the model backends make when built

    try:
        check_precisions(settings, cache)
    except (DetectorError, EmbedderError) as exc:
        fail(f"invalid configuration: {exc}")


models_app = typer.Typer(help="Faster variants of the face models, accepted only with measured parity.")


@models_app.command("optimise")
def optimise(
    ctx: typer.Context,
    embedder: Annotated[
        str | None, typer.Option("--embedder", help=f"variant of the face embedder: {', '.join(VARIANTS)}")
    ] = None,
    detector: Annotated[
        str | None, typer.Option("--detector", help=f"variant of the CenterFace detector: {', '.join(VARIANTS)}")
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="shared data folder (default $METROSIGHT_DATA, else ../shared/data)")
    ] = None,
) -> None:
    """Build a variant, measure it against the float model (embedder: LFW fold 1; detector: FDDB fold 1) and record
    the verdict in the model cache. Exits 1 when the variant fails the gate (the float model stays in use)."""
    c = cli_context(ctx)
    if (embedder is None) == (detector is None):
        fail("give one of --embedder VARIANT or --detector VARIANT")
    variant = str(embedder or detector)
    if variant not in VARIANTS:
        fail(f"unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}")
    # heavy: the evaluation loads the model backends and the quantisation tooling
    from metrosight.eval.parity import optimise_detector, optimise_embedder
    from metrosight.eval.speed import BenchDataError, data_dir
    from metrosight.eval.study_io import EvalError

    cache = c.home().cache / "models"
    try:
        root = data_dir(data)
        c.err.print(f"building the {variant} variant and measuring it against the float model …", highlight=False)
        record = optimise_embedder(variant, cache, root) if embedder else optimise_detector(variant, cache, root)
    except (BenchDataError, EvalError, VariantError) as exc:
        fail(str(exc), 1)
    for line in report_lines("embedder" if embedder else "detector", record):
        c.out.print(line, highlight=False)
    if not record.passed:
        raise typer.Exit(1)


def report_lines(what: str, record: ParityRecord) -> list[str]:
    """What ``optimise`` prints about a verdict: the figures, what they were measured on, what to configure."""
    key = "recognition.embedder.precision" if what == "embedder" else "detection.detector.precision"
    verdict = "passed" if record.passed else f"FAILED parity — stays {FLOAT}"
    lines = [
        f"{what} {record.variant}: {verdict}: {record.summary}",
        f"measured on {record.data.get('measured_on', '')}; model sha256 {record.model_sha256[:16]}…",
    ]
    if record.passed:
        lines.append(f"use it with `{key}: {record.variant}` in the configuration")
    return lines
