"""A node's worker process: runs a few cameras on one core; frames never leave it.

Each camera has a decode thread (:class:`~metrosight.ingest.live.LiveSource`) that keeps only its newest frame;
one analysis loop takes the cameras' newest frames in turn and runs the stages on them. The models are loaded once
per worker and shared by its cameras. What leaves the process, over its pipe to the supervisor: camera states,
alerts (with the decode time of the frame that raised them), alert updates, counters, and a summary per camera when
it stops. Nothing is stored here; the supervisor stores.

SIGTERM (or the supervisor's stop event) ends the loop cleanly: every camera ends its tracks (final decisions,
alert updates), sends its summary, and the process exits 0.

Messages are tuples ``(kind, …)``: ``("ready", worker)``, ``("state", CameraStateV1)``,
``("alert", AlertV1, frame_wall)``, ``("update", AlertUpdateV1)``, ``("stats", CameraStatsV1)``,
``("event", EventV1)`` and ``("event_update", EventUpdateV1)`` (behaviour analytics, for cameras listed under
``analytics.cameras``),
``("snapshot", CameraSnapshotV1)`` (every ``SNAPSHOT_SECONDS``: the frame downscaled, every detected face blurred),
``("finished", camera_id, status, error, frames, faces, tracks, alerts)``, ``("fatal", worker, message)``,
``("bye", worker)``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from metrosight.core.source import SourceSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerCamera:
    """One camera of a worker: its id, parsed source (the parent's: parsed once), analysis rate and the store's
    run row for this worker's life."""

    camera_id: str
    source: SourceSpec
    analysis_fps: float | None
    run_id: int | None


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """Everything a worker process needs (picklable: it crosses a spawn).

    Attributes:
        worker: the worker's number in the node.
        home: the installation's home directory.
        settings: the validated settings as JSON-able data.
        cameras: the cameras this worker runs.
        core: the CPU core to pin the process to, or ``None``.
        log_level: the parent's logging level.
    """

    worker: int
    home: str
    settings: dict[str, Any]
    cameras: tuple[WorkerCamera, ...]
    core: int | None = None
    log_level: int = logging.WARNING
    env: dict[str, str] = field(default_factory=dict)


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def worker_main(spec: WorkerSpec, conn: Connection, stop: Any) -> None:
    """The worker process's entry point (``multiprocessing`` spawn target)."""
    os.environ.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **spec.env})
    logging.basicConfig(level=spec.log_level, format=f"%(levelname)s worker-{spec.worker} %(name)s: %(message)s")
    local_stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the supervisor, which stops us in order
    signal.signal(signal.SIGTERM, lambda *_: local_stop.set())
    if spec.core is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {spec.core})
        except OSError as exc:
            log.warning("cannot pin worker %d to core %d: %s", spec.worker, spec.core, exc)
    send_lock = threading.Lock()

    def send(*msg: object) -> None:
        with send_lock:
            conn.send(msg)

    try:
        _serve(spec, send, stop, local_stop)
    except Exception as exc:
        log.exception("worker %d failed", spec.worker)
        try:
            send("fatal", spec.worker, f"{type(exc).__name__}: {exc}")
        except OSError:
            pass
        raise SystemExit(1) from None
    finally:
        try:
            send("bye", spec.worker)
            conn.close()
        except OSError:
            pass


class _Camera:
    def __init__(self, cam: WorkerCamera, src: Any, pipe: Any) -> None:
        self.cfg = cam
        self.src = src
        self.pipe = pipe
        self.segment = 0
        self.frame_wall: float | None = None
        self.finished = False
        self.next_snapshot = 0.0


def _serve(spec: WorkerSpec, send: Any, stop: Any, local_stop: threading.Event) -> None:
    import cv2

    from metrosight.config.home import Home
    from metrosight.config.model import Settings
    from metrosight.ingest.factory import live_source
    from metrosight.pipeline import analytics as an
    from metrosight.pipeline.runtime import Runtime, camera_state_payload

    cv2.setNumThreads(1)
    settings = Settings.model_validate(spec.settings)
    rt = Runtime.open(Home(Path(spec.home)), settings)
    rt.services.models.load()  # load the models before the cameras start
    wake = threading.Event()
    cams: list[_Camera] = []
    for wc in spec.cameras:
        holder: dict[str, _Camera] = {}

        def publish_alert(alert: Any, _h: dict[str, _Camera] = holder) -> None:
            send("alert", alert, _h["cam"].frame_wall)

        def publish_update(update: Any) -> None:
            send("update", update)

        pipe: Any = rt.camera_pipeline(wc.camera_id, wc.run_id, publish_alert, publish_update)
        if an.wants_analytics(settings.analytics, wc.camera_id, False):  # as `run`: cameras under analytics.cameras
            analytics = an.make_analytics_worker(
                settings.analytics,
                wc.camera_id,
                wc.run_id,
                lambda e: send("event", e),
                lambda u: send("event_update", u),
                face_boxes=lambda image: [d.box for d in rt.services.models.detector.detect(image)],
            )
            pipe = an.Alongside(pipe, analytics)
        src = live_source(wc.source, wc.camera_id, settings.ingest, wc.analysis_fps, True, wake)
        cam = _Camera(wc, src, pipe)
        holder["cam"] = cam
        cams.append(cam)
    send("ready", spec.worker)
    for cam in cams:
        cam.src.start()

    interval = settings.node.stats_interval_seconds
    next_stats = time.monotonic() + interval
    turn = 0
    while not (stop.is_set() or local_stop.is_set()):
        wake.clear()
        progressed = False
        n = len(cams)
        for k in range(n):  # round-robin start, so no camera is always served first
            cam = cams[(turn + k) % n]
            if cam.finished:
                continue
            for change in cam.src.poll_states():
                send("state", camera_state_payload(change, spec.worker))
            cap = cam.src.take()
            if cap is not None:
                if cap.segment != cam.segment:  # reconnected: no track carries across the outage
                    cam.segment = cap.segment
                    cam.pipe.finish()
                cam.frame_wall = cap.wall
                cam.pipe.process(cap.frame)
                progressed = True
                if time.monotonic() >= cam.next_snapshot:
                    cam.next_snapshot = time.monotonic() + SNAPSHOT_SECONDS
                    send("snapshot", _snapshot(cam, cap.frame.image, cap.wall))
            elif cam.src.done:  # a file ended, or a camera gave up
                cam.finished = True
                _finish(cam, spec, send)
        turn += 1
        if all(c.finished for c in cams):
            break
        now = time.monotonic()
        if now >= next_stats:
            next_stats = now + interval
            for cam in cams:
                send("stats", _stats(cam, spec.worker))
        if not progressed:
            wake.wait(0.2)
    for cam in cams:  # shutdown: stop decoding, end tracks, report
        cam.src.stop(join_timeout=1.0)
    for cam in cams:
        if not cam.finished:
            cam.finished = True
            _finish(cam, spec, send)


def _finish(cam: _Camera, spec: WorkerSpec, send: Any) -> None:
    from metrosight.pipeline.runtime import camera_state_payload

    cam.src.stop(join_timeout=1.0)
    cam.pipe.finish()
    for change in cam.src.poll_states():
        send("state", camera_state_payload(change, spec.worker))
    send("stats", _stats(cam, spec.worker))
    s = cam.pipe.stats
    err = cam.src.error
    status = "broken" if err is not None else "finished"
    send(
        "finished",
        cam.cfg.camera_id,
        status,
        str(err) if err else None,
        s.frames,
        s.faces,
        s.tracks,
        s.alerts,
    )


def _stats(cam: _Camera, worker: int) -> Any:
    from metrosight.bus.payloads import CameraStatsV1

    c = cam.src.counters
    s = cam.pipe.stats
    return CameraStatsV1(
        camera_id=cam.cfg.camera_id,
        worker=worker,
        state=str(cam.src.state or "starting"),
        frames_decoded=c.decoded,
        frames_skipped=c.skipped,
        frames_dropped=c.dropped,
        frames_analysed=s.frames,
        faces=s.faces,
        embedded=s.embedded,
        tracks=s.tracks,
        alerts=s.alerts,
        reconnects=c.reconnects,
        stalls=c.stalls,
        failed_attempts=c.failed_attempts,
        last_frame_wall=c.last_frame_wall,
        worker_cpu_seconds=_cpu_seconds(),
        wall_time=time.time(),
        stage_seconds=dict(s.stage_seconds),
        stage_buckets={k: list(v) for k, v in getattr(s, "stage_hist", {}).items()},
    )


SNAPSHOT_SECONDS = 2.0  # how often a camera sends its redacted snapshot to the supervisor
SNAPSHOT_WIDTH = 320  # pixels: small enough that a face the detector missed is not identifiable


def _snapshot(cam: _Camera, image: Any, wall: float | None) -> Any:
    """The frame downscaled to ``SNAPSHOT_WIDTH`` with every face the pipeline detected in it blurred."""
    import cv2

    from metrosight.bus.payloads import CameraSnapshotV1
    from metrosight.pipeline.camera import encode_jpeg
    from metrosight.policy.redact import blur_boxes

    blurred = blur_boxes(image, list(getattr(cam.pipe, "last_boxes", [])))
    h, w = blurred.shape[:2]
    if w > SNAPSHOT_WIDTH:
        blurred = cv2.resize(
            blurred, (SNAPSHOT_WIDTH, max(1, round(h * SNAPSHOT_WIDTH / w))), interpolation=cv2.INTER_AREA
        )
    return CameraSnapshotV1(camera_id=cam.cfg.camera_id, jpeg=encode_jpeg(blurred, 80), wall_time=wall or time.time())
