"""A node's worker process: runs a few cameras on one core; frames never leave it.

Each camera has a decode thread (:class:`~metrosight.ingest.live.LiveSource`) that keeps only its newest frame;
one analysis loop takes the cameras' newest frames in turn and runs the stages on them. The models are loaded once
per worker and shared by its cameras. What leaves the process, over its pipe to the supervisor: camera states,
alerts (with the decode time of the frame that raised them), alert updates, counters, and a summary per camera when
it stops. Nothing is stored here; the supervisor stores.

SIGTERM (or the supervisor's stop event) ends the loop cleanly: every camera ends its tracks (final decisions,
alert updates), sends its summary, and the process exits 0.

The cameras run in the frame loop shared by every host (:mod:`metrosight.pipeline.loop`). Messages are the typed
union :data:`~metrosight.pipeline.messages.WorkerMessage`: ``Ready``, then per camera ``StateChanged``,
``AlertRaised`` (with the decode time of the frame that raised it), ``AlertUpdated``, ``EventRaised`` and
``EventUpdated`` (behaviour analytics, for cameras under ``analytics.cameras``), ``StatsReported`` (every
``node.stats_interval_seconds``), ``SnapshotTaken`` (every ``SNAPSHOT_SECONDS``: the frame downscaled, every
detected face blurred) and ``CameraFinished``; ``Fatal`` when the worker fails; ``Bye`` last.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from metrosight.bus.payloads import CameraSnapshotV1
from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.core.source import SourceSpec
from metrosight.ingest.factory import live_source
from metrosight.ingest.live import Captured
from metrosight.pipeline.camera import encode_jpeg
from metrosight.pipeline.loop import FrameLoop, LoopCamera, stats_payload
from metrosight.pipeline.messages import Bye, CameraFinished, Fatal, Ready, WorkerMessage
from metrosight.pipeline.outbox import CameraOutputs, PipeOutbox
from metrosight.pipeline.runtime import Runtime
from metrosight.policy.redact import blur_boxes

log = logging.getLogger(__name__)


class StopFlag(Protocol):
    """A stop event: ``threading.Event`` or the supervisor's ``multiprocessing`` event shared between processes."""

    def is_set(self) -> bool: ...


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


def worker_main(spec: WorkerSpec, conn: Connection, stop: StopFlag) -> None:
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

    def send(msg: WorkerMessage) -> None:
        with send_lock:
            conn.send(msg)

    try:
        NodeWorker(spec, send, stop, local_stop).serve()
    except Exception as exc:
        log.exception("worker %d failed", spec.worker)
        with contextlib.suppress(OSError):
            send(Fatal(spec.worker, f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from None
    finally:
        try:
            send(Bye(spec.worker))
            conn.close()
        except OSError:
            pass


class NodeWorker:
    """The worker's cameras in one frame loop (:class:`~metrosight.pipeline.loop.FrameLoop`); what they produce
    goes over the pipe (:class:`~metrosight.pipeline.outbox.PipeOutbox`).

    Args:
        spec: the worker's cameras and settings.
        send: sends one message to the supervisor.
        stop: the supervisor's stop event (shared between processes).
        local_stop: set on SIGTERM.
    """

    def __init__(
        self, spec: WorkerSpec, send: Callable[[WorkerMessage], None], stop: StopFlag, local_stop: StopFlag
    ) -> None:
        self.spec = spec
        self.send = send
        self.stop = stop
        self.local_stop = local_stop
        self.settings = Settings.model_validate(spec.settings)
        self.outbox = PipeOutbox(send)
        self.wake = threading.Event()
        self.loop = FrameLoop(self, worker=spec.worker, batch=self.settings.inference.batch_cameras)
        self.next_snapshot: dict[str, float] = {}
        self.next_stats = 0.0

    def serve(self) -> None:
        """Load the models, start the cameras, run the loop until stopped or every camera ended; then end every
        camera (tracks ended, summaries sent)."""
        cv2.setNumThreads(1)
        rt = Runtime.open(Home(Path(self.spec.home)), self.settings)
        rt.warm_up()  # load the models and run them once before the cameras start: no frame waits for a load
        sources = []
        for wc in self.spec.cameras:
            outputs = CameraOutputs(self.outbox)
            built = rt.processor(wc.camera_id, wc.run_id, outputs)
            src = live_source(wc.source, wc.camera_id, self.settings.ingest, wc.analysis_fps, True, self.wake)
            self.loop.add(LoopCamera(wc.camera_id, wc.run_id, src, built.processor, outputs))
            self.next_snapshot[wc.camera_id] = 0.0
            sources.append(src)
        self.send(Ready(self.spec.worker))
        for src in sources:
            src.start()
        self.next_stats = time.monotonic() + self.settings.node.stats_interval_seconds
        self.loop.run()
        self.loop.end_all()  # shutdown: stop decoding, end tracks, report

    # -- the loop's hooks -------------------------------------------------------------------------------------
    def between_rounds(self) -> bool:
        if self.stop.is_set() or self.local_stop.is_set():
            return False
        now = time.monotonic()
        if now >= self.next_stats:
            self.next_stats = now + self.settings.node.stats_interval_seconds
            for cam in self.loop.cameras:
                self.outbox.stats(stats_payload(cam, self.spec.worker))
        self.wake.clear()
        return True

    def after_frame(self, cam: LoopCamera, cap: Captured) -> None:
        if time.monotonic() >= self.next_snapshot[cam.camera_id]:
            self.next_snapshot[cam.camera_id] = time.monotonic() + SNAPSHOT_SECONDS
            self.outbox.snapshot(snapshot(cam, cap.frame.image, cap.wall))

    def ended(self, cam: LoopCamera) -> None:
        self.outbox.stats(stats_payload(cam, self.spec.worker))
        err = cam.feed.error
        status = "broken" if err is not None else "finished"
        self.send(CameraFinished(cam.camera_id, status, str(err) if err else None, cam.counts))

    def idle(self) -> None:
        self.wake.wait(0.2)


SNAPSHOT_SECONDS = 2.0  # how often a camera sends its redacted snapshot to the supervisor
SNAPSHOT_WIDTH = 320  # pixels: small enough that a face the detector missed is not identifiable


def snapshot(cam: LoopCamera, image: np.ndarray, wall: float | None) -> CameraSnapshotV1:
    """The frame downscaled to ``SNAPSHOT_WIDTH`` with every face the processor detected in it blurred."""
    blurred = blur_boxes(image, list(cam.processor.last_boxes))
    h, w = blurred.shape[:2]
    if w > SNAPSHOT_WIDTH:
        blurred = cv2.resize(
            blurred, (SNAPSHOT_WIDTH, max(1, round(h * SNAPSHOT_WIDTH / w))), interpolation=cv2.INTER_AREA
        )
    return CameraSnapshotV1(camera_id=cam.camera_id, jpeg=encode_jpeg(blurred, 80), wall_time=wall or time.time())
