"""``metrosight run``: watch one source, print alerts and behaviour events as they happen, and a summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from metrosight.cli.common import (
    alert_json,
    alert_line,
    analytics_summary,
    event_json,
    event_line,
    fail,
    require_decoder,
)
from metrosight.cli.context import CliContext, cli_context
from metrosight.cli.models import require_parity
from metrosight.core.names import InvalidInput, identifier
from metrosight.ingest.source import SourceError
from metrosight.recognize.normalize import CohortError
from metrosight.store.db import StoreError

if TYPE_CHECKING:
    from metrosight.bus.payloads import AlertV1, EventV1
    from metrosight.pipeline.single import RunReport
    from metrosight.store.episodes import SightingStored


def run_summary(report: RunReport, camera: str) -> dict[str, object]:
    """The ``"type": "summary"`` object ``run --json`` ends with (frames, faces, tracks, alerts, speed…)."""
    s = report.stats
    summary: dict[str, object] = {
        "type": "summary",
        "camera": camera,
        "status": report.status,
        "frames": s.frames,
        "faces": s.faces,
        "tracks": s.tracks,
        "alerts": report.episodes,
        "sightings": s.alerts,
        "embedded": s.embedded,
        "frames_gated": s.gated,  # motion gating: analysed frames with no face detection
        "detect_share": round(s.detect_pixels / s.frame_pixels, 4) if s.frame_pixels else None,
        "gallery": report.gallery_size,
        "seconds": round(report.seconds, 2),
        "fps": round(report.fps, 2),
        "run_id": report.run_id,
    }
    if report.ingest is not None:  # decode cost: the decoding thread's CPU seconds, frames the decoder skipped
        i = report.ingest
        summary["decode"] = {
            "decoder": i.decoder,
            "cpu_seconds": round(i.decode_seconds, 3),
            "frames_codec_skipped": i.codec_skipped,
        }
    if report.analytics is not None:
        summary["analytics"] = analytics_summary(report.analytics)
    return summary


def _print_summary(c: CliContext, report: RunReport, camera: str, as_json: bool, analytics_only: bool) -> None:
    summary = run_summary(report, camera)
    s = report.stats
    if as_json:
        c.emit(json.dumps(summary))
    elif analytics_only:
        a: dict = summary["analytics"]  # type: ignore[assignment]
        c.out.print(
            f"{camera}: {s.frames} frames, {a['person_tracks']} person tracks, events {a['events']}, "
            f"crossings {a['crossings']}, peak occupancy {a['peak_occupancy']} in {report.seconds:.1f} s "
            f"({report.fps:.1f} frames/s)",
            highlight=False,
        )
    else:
        c.out.print(
            f"{camera}: {s.frames} frames, {s.faces} faces, {s.tracks} tracks, {s.alerts} sighting(s) in "
            f"{report.episodes} alert(s) against {report.gallery_size} active entries in {report.seconds:.1f} s "
            f"({report.fps:.1f} frames/s)",
            highlight=False,
        )
        if report.gallery_size == 0:
            c.out.print("note: no active watchlist entries, so no face was matched (enrol some first)")
        if report.analytics is not None:
            c.out.print(f"analytics: {summary['analytics']}", highlight=False)


def run(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="video file, webcam:N, or a stream URL (rtsp, rtsps, http, https, rtmp, rtmps, udp, rtp); "
            "percent-encode reserved characters of user names and passwords (@ as %40)",
        ),
    ],
    camera: Annotated[str, typer.Option("--camera", help="camera id stamped on alerts")] = "cam0",
    config: Annotated[Path | None, typer.Option("--config", help="YAML configuration file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object a line")] = False,
    analytics_only: Annotated[
        bool, typer.Option("--analytics-only", help="behaviour analytics only (no face model, no identity)")
    ] = False,
    rtsp_transport: Annotated[
        str | None,
        typer.Option(
            "--rtsp-transport",
            help="RTP transport of an rtsp:// source: auto (TCP, then UDP), tcp or udp "
            "(default: the configured camera's, else auto)",
        ),
    ] = None,
) -> None:
    """Watch one source: print alerts as they happen and a summary at the end."""
    c = cli_context(ctx)
    try:
        camera = identifier(camera, "--camera")
    except InvalidInput as exc:
        fail(str(exc))
    # heavy: the single-process host loads the model backends (OpenCV, dlib, onnxruntime)
    from metrosight.outbound.mqtt import problem as mqtt_problem
    from metrosight.outbound.syslog import start_syslog
    from metrosight.pipeline.runtime import Runtime

    rt = c.services(config)
    if (why := mqtt_problem(rt.settings.outbound.mqtt)) is not None:
        fail(why)  # before anything is opened or stored
    require_decoder(rt.settings.ingest)
    require_parity(rt.settings, rt.home.cache)  # a faster model variant without measured parity: one line

    def on_alert(a: AlertV1, crop: str | None, stored: SightingStored | None = None) -> None:
        c.emit(alert_json(a, crop, stored) if as_json else alert_line(a, crop, stored))

    def on_event(e: EventV1, snapshot: str | None) -> None:
        c.emit(event_json(e, snapshot) if as_json else event_line(e, snapshot))

    stop_syslog = start_syslog(rt)  # the audit log to the SIEM, while the run lasts
    try:
        report = Runtime(rt).run(
            source,
            camera,
            on_alert=on_alert,
            analytics_only=analytics_only,
            on_event=on_event,
            rtsp_transport=rtsp_transport,
        )
    except (SourceError, CohortError) as exc:
        fail(str(exc))
    except (StoreError, SQLAlchemyError, OSError) as exc:  # e.g. the run row cannot be written: nothing analysed
        # heavy (the services' models): imported where a failed run needs it
        from metrosight.services.sinks import storage_full

        detail = getattr(exc, "orig", None) or exc  # the driver's one-line reason, without the SQL
        what = "the disk is full" if storage_full(exc) else "cannot write the store"
        fail(f"{what} ({detail}); nothing was analysed: free space and run it again", 1)
    finally:
        stop_syslog()
    _print_summary(c, report, camera, as_json, analytics_only)
    if report.status == "storage-full":
        fail(report.error or "the disk is full", 1)
    if report.error:
        fail(f"{report.error}; alerts found before the break are stored", 1)
