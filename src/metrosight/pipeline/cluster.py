"""The scale-out worker (``metrosight worker``): claims cameras through Redis leases and publishes to Redis Streams.

Any number of workers, on any machines, share one configuration (the ``cameras:`` list), one Redis and one
PostgreSQL. Each worker:

1. announces itself (``<prefix>:worker:<name>``, renewed with its leases) and waits ``settle_seconds`` so that
   workers starting together see each other;
2. claims cameras nobody holds (``SET NX PX``) up to its fair share, ``ceil(cameras / live workers)`` (and
   ``max_cameras``); a dead worker's leases expire after ``lease_seconds`` and the others' shares grow to take its
   cameras;
3. runs each claimed camera's pipeline in one analysis loop (one core per worker process: start one worker per
   core), with the installation's gallery read from PostgreSQL and kept current by
   :class:`~metrosight.services.live_policy.LivePolicy` (approvals, revocations, expiries, windows: within
   ``privacy.policy_refresh_seconds``);
4. publishes alerts, alert updates, behaviour events and camera states to Redis Streams — nothing is written to
   the database here except the run rows; a consumer (``metrosight consume`` or ``serve --bus``) stores them.

Failover of a **file** camera loses and duplicates nothing: the camera's progress in Redis holds its event-id
scope and its checkpoint — the last frame after which the camera was quiescent (no live track) with every alert
before it already accepted by Redis. Another worker resumes after the checkpoint with the same scope; frames,
tracks and decisions repeat identically, so re-raised alerts carry the same event ids and the store keeps one of
each. The scope is derived from the camera, the path, the size and the modification time of the file, so even a
Redis that lost its data gives the same ids (the file is then read again from the start). A **live** camera
resumes at the live edge on its new worker: what happened while nobody held it is not seen.

A worker that cannot renew a lease (another worker holds it) stops that camera at once. The heartbeat runs in
its own thread but renews only while the analysis loop makes progress, so a hung worker loses its cameras too.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from metrosight.bus.base import Bus
from metrosight.bus.leases import Leases, Progress
from metrosight.bus.payloads import AlertV1
from metrosight.config.model import CameraConfig
from metrosight.core.names import InvalidInput, distinct_identifiers
from metrosight.ingest.factory import file_source, live_source
from metrosight.ingest.live import Captured
from metrosight.ingest.source import parse_source
from metrosight.pipeline.consumer import SharedPolicyReads
from metrosight.pipeline.loop import Feed, FrameLoop, IteratorFeed, LoopCamera
from metrosight.pipeline.outbox import BusOutbox, CameraOutputs
from metrosight.pipeline.runs import RunRows
from metrosight.pipeline.runtime import Runtime

log = logging.getLogger(__name__)


class ClusterError(Exception):
    """The worker cannot start (no cameras, duplicate ids, a bad source); the message names what to fix."""


@dataclass(frozen=True, slots=True)
class ClusterOptions:
    """How a worker shares the cameras.

    Attributes:
        lease_seconds: a lease (and a worker's presence) lasts this long without renewal; a dead worker's cameras
            move within it.
        max_cameras: at most this many cameras on this worker (None: its fair share only).
        progress_seconds: how often (wall clock) a file camera's checkpoint is written to Redis.
        settle_seconds: wait after announcing, before the first claim (None: a third of ``lease_seconds``).
        realtime: read file sources at their own frame rate, like cameras (tests, demos, load tests).
        until_done: exit once every configured camera is a finished file (batch jobs, tests).
    """

    lease_seconds: float = 10.0
    max_cameras: int | None = None
    progress_seconds: float = 1.0
    settle_seconds: float | None = None
    realtime: bool = False
    until_done: bool = False


@dataclass(slots=True)
class WorkerReport:
    """What a worker did: cameras finished and lost, frames analysed, alerts published."""

    finished: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    frames: int = 0
    alerts: int = 0
    seconds: float = 0.0


def file_scope(camera_id: str, source: str) -> str:
    """The event-id scope of one pass over a file: the same for the same camera and file contents' identity."""
    p = Path(source)
    try:
        st = p.stat()
        ident = f"{camera_id}|{p.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    except OSError:
        ident = f"{camera_id}|{source}"
    return hashlib.sha1(ident.encode()).hexdigest()[:12]


def fair_share(cameras: int, live_workers: int, max_cameras: int | None) -> int:
    """How many cameras one worker should hold."""
    share = math.ceil(cameras / max(1, live_workers))
    return share if max_cameras is None else min(share, max_cameras)


class _Camera:
    """One claimed camera on this worker: its place in the loop, and a file's progress (checkpoint)."""

    def __init__(self, cfg: CameraConfig, kind: str, unit: LoopCamera, progress: Progress | None) -> None:
        self.cfg = cfg
        self.kind = kind
        self.unit = unit
        self.progress = progress
        self.resume_after = progress.checkpoint if progress is not None else -1
        self.checkpoint = (self.resume_after, progress.checkpoint_ts if progress is not None else 0.0)
        self.next_save = 0.0
        self.outcome: tuple[str, str | None] | None = None  # how it was stopped (None: its stream ended)


class ClusterWorker:
    """Claims, runs and gives up cameras; see the module docstring.

    Args:
        runtime: the installation (its store is the shared PostgreSQL; models load once per worker).
        bus: where alerts and events go (a :class:`~metrosight.bus.redis_streams.RedisStreamsBus`).
        leases: this worker's leases in the same Redis.
        cameras: the cameras of the deployment (default: ``settings.cameras``).
        options: lease and progress settings.
        on_alert: called with each alert this worker published (logging, tests).
    """

    def __init__(
        self,
        runtime: Runtime,
        bus: Bus,
        leases: Leases,
        cameras: list[CameraConfig] | None = None,
        options: ClusterOptions | None = None,
        on_alert: Callable[[AlertV1], None] | None = None,
    ) -> None:
        self.rt = runtime
        self.bus = bus
        self.leases = leases
        self.options = options or ClusterOptions()
        self.cameras = list(cameras if cameras is not None else runtime.settings.cameras)
        if not self.cameras:
            raise ClusterError("no cameras configured: add a `cameras:` list (id, source) to the config file")
        try:  # the configuration's rule, for a list of cameras given here too
            distinct_identifiers([c.id for c in self.cameras], "camera id")
        except InvalidInput as exc:
            raise ClusterError(str(exc)) from None
        self._specs = {}  # each source parsed once; its display form is what is shown, logged and stored
        for c in self.cameras:
            try:
                self._specs[c.id] = parse_source(c.source, c.rtsp_transport)
            except Exception as exc:  # noqa: BLE001 - re-raised with the camera id
                raise ClusterError(f"camera {c.id}: {exc}") from None
        self._kinds = {cid: spec.kind for cid, spec in self._specs.items()}
        self.on_alert = on_alert
        self.rows = RunRows(runtime.store.runs)
        self.outbox = BusOutbox(bus, on_alert=self._published)
        self.loop = FrameLoop(self, until_all_ended=False, batch=runtime.settings.inference.batch_cameras)
        self._stop = threading.Event()
        self._next_claim = 0.0
        # policy reads from the leases' Redis (mirrored there by the consumers) and a per-process cache
        ttl = min(0.25, runtime.settings.privacy.policy_refresh_seconds / 4)
        reads = SharedPolicyReads(runtime.store.policy, runtime.store.windows, leases.client, leases.prefix, ttl)
        self.rt = runtime.with_policy(reads)
        self.running: dict[str, _Camera] = {}
        self.report = WorkerReport()
        self._lock = threading.Lock()
        self._lost: set[str] = set()
        self._alive_at = time.monotonic()
        self._loading = True
        self._retry_at: dict[str, float] = {}
        self._cursor = 0
        self._prune_at = 0.0
        # each worker tries cameras in its own order, so that workers starting together rarely collide
        self._order = sorted(self.cameras, key=lambda c: hashlib.sha1(f"{leases.owner}|{c.id}".encode()).digest())

    def _published(self, alert: AlertV1) -> None:
        self.report.alerts += 1
        if self.on_alert is not None:
            self.on_alert(alert)

    # -- heartbeat --------------------------------------------------------------------------------------------
    def _heartbeat(self, stop: threading.Event) -> None:
        every = self.options.lease_seconds / 3
        while not stop.wait(every):
            # a hung loop (not a slow frame on a busy machine) gives its cameras up
            if not self._loading and time.monotonic() - self._alive_at > 3 * self.options.lease_seconds:
                log.error(
                    "the analysis loop has not progressed for %.0f s: not renewing leases",
                    time.monotonic() - self._alive_at,
                )
                continue
            try:
                self.leases.announce()
                with self._lock:
                    held = list(self.running)
                for cid in held:
                    if not self.leases.renew(cid):
                        log.warning("lease of camera %s lost to %s; stopping it", cid, self.leases.holder(cid))
                        with self._lock:
                            self._lost.add(cid)
            except Exception as exc:  # noqa: BLE001 - Redis down: leases lapse on their own, the loop goes on
                log.warning("heartbeat failed: %s", exc)

    # -- the loop ---------------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> WorkerReport:
        """Work until ``stop`` is set (or, with ``until_done``, until every camera is a finished file)."""
        started = time.monotonic()
        self._stop = stop
        hb_stop = threading.Event()
        self.leases.announce()
        hb = threading.Thread(target=self._heartbeat, args=(hb_stop,), name="lease-heartbeat", daemon=True)
        hb.start()
        try:
            self.rt.warm_up()  # load the models and run them once before claiming anything
            self._loading = False
            settle = self.options.settle_seconds
            stop.wait(self.options.lease_seconds / 3 if settle is None else settle)
            self._alive_at = time.monotonic()
            self.loop.run()
        finally:
            hb_stop.set()
            for cam in list(self.running.values()):
                if cam.kind == "file":
                    self._save(cam, done=False)  # the newest checkpoint, so the next worker repeats little
                self._stop_camera(cam, "interrupted", "the worker stopped")
            try:
                self.leases.retire()
            except Exception as exc:  # noqa: BLE001
                log.warning("cannot retire from Redis: %s", exc)
            hb.join(2)
        self.report.seconds = time.monotonic() - started
        return self.report

    def between_rounds(self) -> bool:
        """The loop's hook: drop lost cameras, claim more now and then; False once stopped (or done)."""
        if self._stop.is_set():
            return False
        self._alive_at = time.monotonic()
        self._drop_lost()
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + min(1.0, self.options.lease_seconds / 5)
            self._claim_more()
            if self.options.until_done and not self.running and self._all_done():
                return False
        return True

    def idle(self) -> None:
        self._stop.wait(0.02 if self.running else 0.2)

    def _all_done(self) -> bool:
        for c in self.cameras:
            if self._kinds[c.id] != "file":
                return False
            p = self.leases.progress(c.id)
            if p is None or not p.done or p.source != c.source:
                return False
        return True

    def _claim_more(self) -> None:
        try:
            live = self.leases.live_count()
            if self._prune_at <= time.monotonic():  # now and then, drop dead workers from the set
                self._prune_at = time.monotonic() + 30.0
                live = len(self.leases.live_workers())
        except Exception as exc:  # noqa: BLE001 - Redis down: try again later
            log.warning("cannot count workers: %s", exc)
            return
        cap = fair_share(len(self.cameras), live, self.options.max_cameras)
        if len(self.running) >= cap:
            return
        now = time.monotonic()
        # look at a bounded number of candidates a round, in this worker's own order, going round the list
        budget = max(16, 4 * (cap - len(self.running)))
        n = len(self._order)
        start = self._cursor
        for k in range(min(budget, n)):
            c = self._order[(start + k) % n]
            self._cursor = (start + k + 1) % n
            if len(self.running) >= cap:
                return
            if c.id in self.running or self._retry_at.get(c.id, 0.0) > now:
                continue
            kind = self._kinds[c.id]
            prog = self.leases.progress(c.id) if kind == "file" else None
            if prog is not None and prog.done and prog.source == c.source:
                continue
            if not self.leases.claim(c.id):
                continue
            if kind == "file":  # re-read under the lease: it may have finished meanwhile
                prog = self.leases.progress(c.id)
                if prog is not None and prog.done and prog.source == c.source:
                    self.leases.release(c.id)
                    continue
            try:
                self._start_camera(c, kind, prog)
            except Exception as exc:  # noqa: BLE001 - the camera is retried later, by any worker
                log.error(
                    "camera %s cannot start: %s; retrying in %.0f s",
                    c.id,
                    self._specs[c.id].redact(str(exc)),
                    self.options.lease_seconds,
                )
                self._retry_at[c.id] = now + self.options.lease_seconds
                self.leases.release(c.id)

    def _start_camera(self, c: CameraConfig, kind: str, prog: Progress | None) -> None:
        settings = self.rt.settings
        fps = c.analysis_fps or settings.ingest.analysis_fps
        scope = None  # a live camera: fresh event ids
        if kind == "file":
            if prog is None or prog.source != c.source:
                prog = Progress(source=c.source, token=file_scope(c.id, c.source))
                self.leases.save_progress(c.id, prog)
            scope = prog.token
        else:
            prog = None
        spec = self._specs[c.id]
        run_id = self.rows.open(c.id, spec)  # no camera credentials stored
        outputs = CameraOutputs(self.outbox)
        built = self.rt.processor(c.id, run_id, outputs, scope=scope)
        feed: Feed
        if kind == "file":
            video = file_source(spec, c.id, settings.ingest, fps)
            resume = prog.checkpoint if prog is not None else -1
            feed = IteratorFeed(
                lambda _on_state: video.frames(),
                resume_after=resume,
                realtime=self.options.realtime,
                decode=video.stats,
            )
        else:
            feed = live_source(spec, c.id, settings.ingest, fps, keep_trying=True).start()
        cam = _Camera(c, kind, LoopCamera(c.id, run_id, feed, built.processor, outputs), prog)
        with self._lock:
            self.running[c.id] = cam
        self.loop.add(cam.unit)
        where = f" after frame {cam.resume_after} ({cam.checkpoint[1]:.2f} s)" if cam.resume_after >= 0 else ""
        log.warning("worker %s runs camera %s (%s)%s", self.leases.owner, c.id, spec.display, where)

    def after_frame(self, unit: LoopCamera, cap: Captured) -> None:
        """The loop's hook: count the frame; a file's checkpoint moves on at every quiescent frame and is saved to
        Redis every ``progress_seconds``."""
        self.report.frames += 1
        cam = self.running.get(unit.camera_id)
        if cam is None or cam.kind != "file":
            return
        if unit.processor.quiescent:
            cam.checkpoint = (cap.frame.index, cap.frame.ts)
        now = time.monotonic()
        if now >= cam.next_save:
            cam.next_save = now + self.options.progress_seconds
            self._save(cam, done=False)

    def ended(self, unit: LoopCamera) -> None:
        """The loop's hook: a camera ended — its stream (a file's end is saved as done), or stopped by this worker
        (:meth:`_stop_camera`). Closes its run and releases its lease (unless lost)."""
        self.loop.remove(unit)
        with self._lock:
            cam = self.running.pop(unit.camera_id, None)
        if cam is None:
            return
        error = str(unit.feed.error) if unit.feed.error is not None else None
        if cam.outcome is not None:
            status, error = cam.outcome
        elif cam.kind == "file":
            cam.checkpoint = (unit.last_index, cam.checkpoint[1])
            if self._save(cam, done=True):
                self.report.finished.append(cam.cfg.id)
            if error:
                log.error("camera %s: %s", cam.cfg.id, error)
            status = "broken" if error else "finished"
        else:
            status, error = "broken", error or "the stream ended"
        self.rows.close(unit.run_id or 0, status, unit.counts, error)
        if status != "lost":
            try:
                self.leases.release(cam.cfg.id)
            except Exception as exc:  # noqa: BLE001
                log.warning("cannot release %s: %s", cam.cfg.id, exc)

    def _save(self, cam: _Camera, done: bool) -> bool:
        if cam.progress is None:
            return False
        p = Progress(
            source=cam.progress.source,
            token=cam.progress.token,
            checkpoint=cam.checkpoint[0],
            checkpoint_ts=cam.checkpoint[1],
            frame=cam.unit.last_index,
            done=done,
        )
        try:
            ok = self.leases.save_progress(cam.cfg.id, p)
        except Exception as exc:  # noqa: BLE001 - Redis down: the checkpoint is written next time
            log.warning("cannot save the progress of %s: %s", cam.cfg.id, exc)
            return False
        if not ok:
            with self._lock:
                self._lost.add(cam.cfg.id)
        return ok

    def _stop_camera(self, cam: _Camera, status: str, error: str) -> None:
        """Stop ``cam`` before its stream ended: ``interrupted`` (a live camera's tracks end; a file's checkpoint
        stands, whoever resumes it re-raises what follows) or ``lost`` (another worker holds it: nothing more is
        published)."""
        cam.outcome = (status, error)
        self.loop.end(cam.unit, finish=cam.kind != "file" and status != "lost")

    def _drop_lost(self) -> None:
        with self._lock:
            lost, self._lost = self._lost, set()
        for cid in lost:
            cam = self.running.get(cid)
            if cam is not None:
                self.report.lost.append(cid)
                self._stop_camera(cam, "lost", "another worker holds the camera's lease")


def worker_name() -> str:
    """``host-pid-random``: unique even when a pid is reused."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
