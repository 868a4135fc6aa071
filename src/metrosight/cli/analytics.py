"""``metrosight analytics …``: behaviour analytics (no identity) drawn over a camera's view."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from metrosight.analytics.plot import PlotData, median_background, render
from metrosight.cli.common import fail
from metrosight.cli.context import cli_context
from metrosight.core.names import InvalidInput, identifier
from metrosight.ingest.factory import file_source
from metrosight.ingest.source import SourceError, parse_source

analytics_app = typer.Typer(help="Behaviour analytics (no identity): plots of tracks and events.", no_args_is_help=True)


@analytics_app.command("plot")
def plot_cmd(
    ctx: typer.Context,
    source: Annotated[str, typer.Option("--source", help="video file")],
    out_png: Annotated[Path, typer.Option("--out", help="PNG to write")],
    camera: Annotated[str, typer.Option("--camera", help="camera id (selects its zones in the config)")] = "cam0",
    config: Annotated[Path | None, typer.Option("--config", help="YAML configuration file")] = None,
    title: Annotated[str | None, typer.Option("--title")] = None,
) -> None:
    """Run the analytics over a video and draw its person tracks, zones, lines and events over the camera's view.

    The backdrop is the median of frames in which nobody was detected (so no person is shown); nothing is stored:
    tracks exist only in this command's memory.
    """
    # heavy: the analytics pipeline loads the person detector's backend (onnxruntime)
    from metrosight.pipeline.analytics import AnalyticsPipeline, make_person_detector

    c = cli_context(ctx)
    try:
        camera = identifier(camera, "--camera")
    except InvalidInput as exc:
        fail(str(exc))
    settings = c.settings(config)
    spec = parse_source(source)
    if spec.kind != "file":
        fail("analytics plot needs a video file (--source FILE)")
    events: list = []
    updates: dict = {}
    pipe = AnalyticsPipeline(
        settings.analytics,
        camera,
        make_person_detector(settings.analytics),
        events.append,
        lambda u: updates.__setitem__(u.event_id, u),
    )
    pipe.keep_history = True
    samples: list[np.ndarray] = []
    started = time.perf_counter()
    try:
        video = file_source(spec, camera, settings.ingest, settings.ingest.analysis_fps)
        for frame in video.frames():
            pipe.process(frame)
            empty = pipe.last_tracks is None or not pipe.last_tracks.active
            if empty and frame.index % 5 == 0 and len(samples) < 60:  # backdrop only from frames with nobody
                samples.append(frame.image[::2, ::2].copy())
    except SourceError as exc:
        fail(str(exc))
    pipe.finish()
    if pipe.engine is None:
        fail(f"{source}: no frame decoded")
    if not samples:
        fail(f"{source}: no frame without people to draw the view from")
    data = PlotData(
        background=median_background(samples),
        scale=2.0,
        scene=pipe.engine.scene,
        history=pipe.history,
        events=[(e, updates.get(e.event_id)) for e in events],
        title=title or f"{camera}: {Path(source).name}",
    )
    render(data, out_png)
    s = pipe.stats
    c.out.print(
        f"wrote {out_png}: {s.tracks} person tracks, {sum(s.events.values())} event(s) "
        f"in {time.perf_counter() - started:.1f} s",
        highlight=False,
    )
