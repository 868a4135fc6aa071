"""``metrosight node``: run every camera of the configuration on this machine until stopped."""

from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer


def node(
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
    from metrosight.cli import _alert_line, _runtime, alert_json, err, fail, out
    from metrosight.pipeline.supervisor import Supervisor, SupervisorError

    rt = _runtime(config)
    _ = rt.models.embedder  # a gallery of another descriptor model is refused (one line) before any worker starts

    def on_alert(a, crop, stored):  # type: ignore[no-untyped-def]
        print(alert_json(a, crop, stored) if as_json else _alert_line(a, crop, stored), flush=True)

    def on_state(p):  # type: ignore[no-untyped-def]
        if as_json:
            print(json.dumps({"type": "camera_state", **p.model_dump()}), flush=True)
        else:
            print(f"CAMERA {p.camera_id}: {p.state} — {p.reason}", flush=True)

    try:
        sup = Supervisor(rt, on_alert=on_alert, on_state=on_state, log_level=logging.getLogger().level)
    except SupervisorError as exc:
        fail(str(exc))

    def stop(signum: int, _frame: object) -> None:
        err.print(f"{signal.Signals(signum).name}: stopping cameras…", highlight=False)
        sup.request_stop()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    last_write = [0.0]

    def tick() -> None:
        if metrics_file is None or time.monotonic() - last_write[0] < 1.0:
            return
        last_write[0] = time.monotonic()
        _write_atomic(metrics_file, sup.metrics.prometheus())

    cams = ", ".join(c.id for c in sup.cameras)
    err.print(f"node: {len(sup.cameras)} camera(s) on {len(sup.workers)} worker(s): {cams}", highlight=False)
    try:
        report = sup.run(duration, tick)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if metrics_file is not None:
        _write_atomic(metrics_file, sup.metrics.prometheus())
    snap = report.snapshot
    if as_json:
        print(json.dumps({"type": "summary", "seconds": round(report.seconds, 2), **snap}), flush=True)
        return
    from rich.table import Table

    table = Table("camera", "state", "analysed", "dropped", "faces", "descriptors", "alerts", "reconnects", "restarts")
    for cid, c in snap["cameras"].items():  # type: ignore[union-attr]
        table.add_row(
            cid,
            c["state"],
            str(c["frames_analysed"]),
            str(c["frames_dropped"]),
            str(c["faces"]),
            str(c["embedded"]),
            str(c["alerts"]),
            str(c["reconnects"]),
            str(c["restarts"]),
        )
    out.print(table)
    p50, p95 = snap["alert_latency_p50_s"], snap["alert_latency_p95_s"]
    lat = f"; alert latency p50 {p50:.2f} s, p95 {p95:.2f} s" if p50 is not None else ""
    out.print(f"{report.alerts} alert(s) stored in {report.seconds:.1f} s; {report.restarts} worker restart(s){lat}")


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
