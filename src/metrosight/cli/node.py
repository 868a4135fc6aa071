"""``metrosight node``: run every camera of the configuration on this machine until stopped."""

from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from metrosight.cli.common import alert_json, alert_line, fail, require_decoder
from metrosight.cli.context import CliContext, cli_context
from metrosight.cli.models import require_parity

if TYPE_CHECKING:
    from metrosight.bus.payloads import AlertV1, CameraStateV1
    from metrosight.pipeline.supervisor import NodeReport
    from metrosight.store.episodes import SightingStored


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (a reader sees the old file or the new one, never a part)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _print_report(c: CliContext, report: NodeReport, as_json: bool) -> None:
    snap = report.snapshot
    if as_json:
        c.emit(json.dumps({"type": "summary", "seconds": round(report.seconds, 2), **snap}))
        return
    table = Table("camera", "state", "analysed", "dropped", "faces", "descriptors", "alerts", "reconnects", "restarts")
    for cid, cam in snap["cameras"].items():
        table.add_row(
            cid,
            cam["state"],
            str(cam["frames_analysed"]),
            str(cam["frames_dropped"]),
            str(cam["faces"]),
            str(cam["embedded"]),
            str(cam["alerts"]),
            str(cam["reconnects"]),
            str(cam["restarts"]),
        )
    c.out.print(table)
    p50, p95 = snap["alert_latency_p50_s"], snap["alert_latency_p95_s"]
    lat = f"; alert latency p50 {p50:.2f} s, p95 {p95:.2f} s" if p50 is not None else ""
    c.out.print(f"{report.alerts} alert(s) stored in {report.seconds:.1f} s; {report.restarts} worker restart(s){lat}")


def node(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML configuration file with a `cameras:` list")
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option("--duration", min=0.1, help="stop after this many seconds (default: run until stopped)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object a line")] = False,
    metrics_file: Annotated[
        Path | None, typer.Option("--metrics-file", help="keep the Prometheus-format metrics in this file")
    ] = None,
) -> None:
    """Run the configured cameras in worker processes across this machine's cores: reconnects dropped streams,
    restarts crashed workers, stores alerts; prints alerts and camera states. SIGTERM or Ctrl-C stop it cleanly."""
    # heavy: the supervisor loads the model backends (OpenCV, dlib, onnxruntime)
    from metrosight.outbound.mqtt import problem as mqtt_problem
    from metrosight.outbound.syslog import start_syslog
    from metrosight.pipeline.supervisor import Supervisor, SupervisorError

    c = cli_context(ctx)
    rt = c.services(config)
    if (why := mqtt_problem(rt.settings.outbound.mqtt)) is not None:
        fail(why)  # before anything is opened or stored
    require_decoder(rt.settings.ingest)
    require_parity(rt.settings, rt.home.cache)  # a faster model variant without measured parity: one line
    _ = rt.models.embedder  # a gallery of another descriptor model is refused (one line) before any worker starts

    def on_alert(a: AlertV1, crop: str | None, stored: SightingStored | None = None) -> None:
        c.emit(alert_json(a, crop, stored) if as_json else alert_line(a, crop, stored))

    def on_state(p: CameraStateV1) -> None:
        c.emit(
            json.dumps({"type": "camera_state", **p.model_dump()})
            if as_json
            else f"CAMERA {p.camera_id}: {p.state} — {p.reason}"
        )

    try:
        sup = Supervisor(rt, on_alert=on_alert, on_state=on_state, log_level=logging.getLogger().level)
    except SupervisorError as exc:
        fail(str(exc))

    def stop(signum: int, _frame: FrameType | None) -> None:
        c.err.print(f"{signal.Signals(signum).name}: stopping cameras…", highlight=False)
        sup.request_stop()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    last_write = [0.0]

    def tick() -> None:
        if metrics_file is None or time.monotonic() - last_write[0] < 1.0:
            return
        last_write[0] = time.monotonic()
        write_atomic(metrics_file, sup.metrics.prometheus())

    cams = ", ".join(cam.id for cam in sup.cameras)
    c.err.print(f"node: {len(sup.cameras)} camera(s) on {len(sup.workers)} worker(s): {cams}", highlight=False)
    stop_syslog = start_syslog(rt)  # the audit log to the SIEM, while the node runs
    try:
        report = sup.run(duration, tick)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        stop_syslog()
    if metrics_file is not None:
        write_atomic(metrics_file, sup.metrics.prometheus())
    _print_report(c, report, as_json)
