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
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metrosight.bus.base import (
    TOPIC_ALERT_UPDATES,
    TOPIC_ALERTS,
    TOPIC_CAMERA_STATE,
    TOPIC_EVENT_UPDATES,
    TOPIC_EVENTS,
    Bus,
)
from metrosight.bus.leases import Leases, Progress
from metrosight.bus.payloads import AlertV1
from metrosight.config.model import CameraConfig
from metrosight.core.types import Frame

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


class SharedPolicyReads:
    """The store as a worker's cameras see it: the policy reads each camera's
    :class:`~metrosight.services.live_policy.LivePolicy` makes every refresh period are served from Redis and a
    per-process cache instead of the database.

    - ``gallery_version``: the mirrored version in Redis (:class:`~metrosight.pipeline.consumer.PolicyMirror`),
      read at most every ``ttl`` seconds; the database's when no mirror runs (the key expired).
    - ``expire_due``: done by the mirror (0 here); by this process when no mirror runs.
    - ``identification_allowed``: evaluated against the no-identification windows, re-read from the database only
      when the gallery version changed (adding or removing a window bumps it).

    Everything else goes to the real store.
    """

    def __init__(self, store: Any, client: Any, prefix: str, ttl: float) -> None:
        from metrosight.pipeline.consumer import gallery_version_key

        self._store = store
        self._client = client
        self._key = gallery_version_key(prefix)
        self._ttl = ttl
        self._version: tuple[float, int, bool] | None = None  # (checked at, version, mirrored)
        self._windows: tuple[int, list[Any]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _current(self) -> tuple[int, bool]:
        now = time.monotonic()
        if self._version is not None and now - self._version[0] < self._ttl:
            return self._version[1], self._version[2]
        raw = None
        try:
            raw = self._client.get(self._key)
        except Exception as exc:  # noqa: BLE001 - Redis down: the database answers
            log.debug("gallery version from Redis: %s", exc)
        if raw is not None:
            version, mirrored = int(raw), True
        else:
            version, mirrored = int(self._store.gallery_version()), False
        self._version = (now, version, mirrored)
        return version, mirrored

    def gallery_version(self) -> int:
        return self._current()[0]

    def expire_due(self, now: Any = None) -> int:
        if now is None and self._current()[1]:
            return 0  # the mirror retires expired entries and bumps the version
        return int(self._store.expire_due(now))

    def identification_allowed(self, camera_id: str | None, line: str | None, now: Any = None) -> bool:
        from datetime import UTC, datetime

        from metrosight.policy.rules import aware, in_scope

        version = self._current()[0]
        if self._windows is None or self._windows[0] != version:
            self._windows = (version, list(self._store.windows()))
        now = now or datetime.now(UTC)
        for w in self._windows[1]:
            if aware(w.starts_at) <= now < aware(w.ends_at) and in_scope(w.scope, camera_id, line):
                return False
        return True


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
    """One claimed camera on this worker."""

    def __init__(self, cfg: CameraConfig, kind: str, pipe: Any, run_id: int, progress: Progress | None) -> None:
        self.cfg = cfg
        self.kind = kind
        self.pipe = pipe
        self.run_id = run_id
        self.progress = progress
        self.frames: Iterator[Frame] | None = None
        self.live: Any = None
        self.segment = 0
        self.resume_after = progress.checkpoint if progress is not None else -1
        self.checkpoint = (self.resume_after, progress.checkpoint_ts if progress is not None else 0.0)
        self.last_frame = -1
        self.next_save = 0.0
        self.started_wall = time.monotonic()
        self.first_ts: float | None = None
        self.analytics: Any = None
        self.pending: Frame | None = None


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
        runtime: Any,
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
        from metrosight.core.names import InvalidInput, distinct_identifiers

        try:  # the configuration's rule, for a list of cameras given here too
            distinct_identifiers([c.id for c in self.cameras], "camera id")
        except InvalidInput as exc:
            raise ClusterError(str(exc)) from None
        from metrosight.ingest.source import parse_source

        self._specs = {}  # each source parsed once; its display form is what is shown, logged and stored
        for c in self.cameras:
            try:
                self._specs[c.id] = parse_source(c.source, c.rtsp_transport)
            except Exception as exc:  # noqa: BLE001 - re-raised with the camera id
                raise ClusterError(f"camera {c.id}: {exc}") from None
        self._kinds = {cid: spec.kind for cid, spec in self._specs.items()}
        self.on_alert = on_alert
        client = getattr(bus, "client", None)
        if client is not None:  # policy reads from Redis (mirrored by the consumers) and a per-process cache
            ttl = min(0.25, runtime.settings.privacy.policy_refresh_seconds / 4)
            self.rt = runtime.with_store(SharedPolicyReads(runtime.store, client, leases.prefix, ttl))
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
        hb_stop = threading.Event()
        self.leases.announce()
        hb = threading.Thread(target=self._heartbeat, args=(hb_stop,), name="lease-heartbeat", daemon=True)
        hb.start()
        try:
            self.rt.services.models.load()  # load the models before claiming anything
            self._loading = False
            settle = self.options.settle_seconds
            stop.wait(self.options.lease_seconds / 3 if settle is None else settle)
            self._alive_at = time.monotonic()
            next_claim = 0.0
            while not stop.is_set():
                self._alive_at = time.monotonic()
                self._drop_lost()
                now = time.monotonic()
                if now >= next_claim:
                    next_claim = now + min(1.0, self.options.lease_seconds / 5)
                    self._claim_more()
                    if self.options.until_done and not self.running and self._all_done():
                        break
                progressed = False
                for cam in list(self.running.values()):
                    progressed |= self._step(cam)
                if not progressed:
                    stop.wait(0.02 if self.running else 0.2)
        finally:
            hb_stop.set()
            for cam in list(self.running.values()):
                if cam.kind == "file":
                    self._save(cam, done=False)  # the newest checkpoint, so the next worker repeats little
                self._stop_camera(cam, "interrupted", "the worker stopped", release=True)
            try:
                self.leases.retire()
            except Exception as exc:  # noqa: BLE001
                log.warning("cannot retire from Redis: %s", exc)
            hb.join(2)
        self.report.seconds = time.monotonic() - started
        return self.report

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
        from metrosight.ingest.source import VideoSource
        from metrosight.pipeline import analytics as an

        settings = self.rt.settings
        fps = c.analysis_fps or settings.ingest.analysis_fps
        if kind == "file":
            if prog is None or prog.source != c.source:
                prog = Progress(source=c.source, token=file_scope(c.id, c.source))
                self.leases.save_progress(c.id, prog)
            scope = prog.token
        else:
            prog = None
            scope = uuid.uuid4().hex[:12]
        spec = self._specs[c.id]
        run_id = self.rt.store.start_run(c.id, spec.display)  # no camera credentials stored
        cam_holder: dict[str, _Camera] = {}

        def publish_alert(a: AlertV1) -> None:
            self.bus.publish(TOPIC_ALERTS, a)
            self.report.alerts += 1
            if self.on_alert is not None:
                self.on_alert(a)

        pipe = self.rt.camera_pipeline(c.id, run_id, publish_alert, lambda u: self.bus.publish(TOPIC_ALERT_UPDATES, u))
        pipe.event_scope = scope
        analytics = None
        if an.wants_analytics(settings.analytics, c.id, False):
            analytics = an.make_analytics_worker(
                settings.analytics,
                c.id,
                run_id,
                lambda e: self.bus.publish(TOPIC_EVENTS, e),
                lambda u: self.bus.publish(TOPIC_EVENT_UPDATES, u),
                face_boxes=lambda image: [d.box for d in self.rt.services.models.detector.detect(image)],
            )
            analytics._token = scope
            pipe = an.Alongside(pipe, analytics)
        cam = _Camera(c, kind, pipe, run_id, prog)
        cam.analytics = analytics
        cam_holder["cam"] = cam
        if kind == "file":
            cam.frames = VideoSource(spec, c.id, fps, settings.ingest.open_timeout_seconds).frames()
        else:
            from metrosight.ingest.factory import live_source

            cam.live = live_source(spec, c.id, settings.ingest, fps, keep_trying=True).start()
        with self._lock:
            self.running[c.id] = cam
        where = f" after frame {cam.resume_after} ({cam.checkpoint[1]:.2f} s)" if cam.resume_after >= 0 else ""
        log.warning("worker %s runs camera %s (%s)%s", self.leases.owner, c.id, spec.display, where)

    def _quiescent(self, cam: _Camera) -> bool:
        if not cam.pipe.quiescent:
            return False
        a = cam.analytics
        return a is None or a.last_tracks is None or not a.last_tracks.active

    def _step(self, cam: _Camera) -> bool:
        """Analyse one frame of ``cam`` if one is due. Returns whether anything was done."""
        from metrosight.ingest.source import SourceBroken, SourceError
        from metrosight.pipeline.runtime import camera_state_payload

        if cam.kind != "file":
            for change in cam.live.poll_states():
                self.bus.publish(TOPIC_CAMERA_STATE, camera_state_payload(change))
            cap = cam.live.take()
            if cap is None:
                if cam.live.done:
                    self._stop_camera(cam, "broken", str(cam.live.error or "the stream ended"), release=True)
                return False
            if cap.segment != cam.segment:  # reconnected: no track carries across the outage
                cam.segment = cap.segment
                cam.pipe.finish()
            cam.pipe.process(cap.frame)
            self.report.frames += 1
            return True
        assert cam.frames is not None
        try:
            frame = cam.pending if cam.pending is not None else next(cam.frames)
            cam.pending = None
        except StopIteration:
            self._finish_file(cam, "finished", None)
            return True
        except SourceBroken as exc:
            self._finish_file(cam, "broken", str(exc))
            return True
        except SourceError as exc:
            self._finish_file(cam, "broken", str(exc))
            return True
        if frame.index <= cam.resume_after:
            return True  # analysed before the failover; decoded only to keep the frame selection identical
        if self.options.realtime:
            if cam.first_ts is None:
                cam.first_ts, cam.started_wall = frame.ts, time.monotonic()
            if (frame.ts - cam.first_ts) > (time.monotonic() - cam.started_wall):
                cam.pending = frame  # not due yet: like a camera, the file delivers frames at its own rate
                return False
        cam.pipe.process(frame)
        self.report.frames += 1
        cam.last_frame = frame.index
        if self._quiescent(cam):
            cam.checkpoint = (frame.index, frame.ts)
        now = time.monotonic()
        if now >= cam.next_save:
            cam.next_save = now + self.options.progress_seconds
            self._save(cam, done=False)
        return True

    def _save(self, cam: _Camera, done: bool) -> bool:
        assert cam.progress is not None
        p = Progress(
            source=cam.progress.source,
            token=cam.progress.token,
            checkpoint=cam.checkpoint[0],
            checkpoint_ts=cam.checkpoint[1],
            frame=cam.last_frame,
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

    def _finish_file(self, cam: _Camera, status: str, error: str | None) -> None:
        cam.pipe.finish()  # final decisions and alert updates are published before the camera is marked done
        cam.checkpoint = (cam.last_frame, cam.checkpoint[1])
        if self._save(cam, done=True):
            self.report.finished.append(cam.cfg.id)
        if error:
            log.error("camera %s: %s", cam.cfg.id, error)
        self._stop_camera(cam, status, error, release=True, finished=True)

    def _stop_camera(self, cam: _Camera, status: str, error: str | None, release: bool, finished: bool = False) -> None:
        with self._lock:
            self.running.pop(cam.cfg.id, None)
        if cam.live is not None:
            cam.live.stop(join_timeout=1.0)
            if status != "lost":
                cam.pipe.finish()
        elif not finished and status != "lost":
            pass  # a file interrupted mid-way: its checkpoint stands; whoever resumes re-raises what follows
        s = cam.pipe.stats
        try:
            self.rt.store.finish_run(cam.run_id, status, s.frames, s.faces, s.tracks, s.alerts, error)
        except Exception as exc:  # noqa: BLE001 - the database is down: the run row stays "running"
            log.warning("cannot close run %s of %s: %s", cam.run_id, cam.cfg.id, exc)
        if release:
            try:
                self.leases.release(cam.cfg.id)
            except Exception as exc:  # noqa: BLE001
                log.warning("cannot release %s: %s", cam.cfg.id, exc)

    def _drop_lost(self) -> None:
        with self._lock:
            lost, self._lost = self._lost, set()
        for cid in lost:
            cam = self.running.get(cid)
            if cam is not None:
                self.report.lost.append(cid)
                self._stop_camera(cam, "lost", "another worker holds the camera's lease", release=False)


def worker_name() -> str:
    """``host-pid-random``: unique even when a pid is reused."""
    import socket

    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
