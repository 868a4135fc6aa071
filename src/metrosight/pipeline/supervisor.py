"""The node supervisor: the configured cameras in worker processes across the machine's cores.

Cameras are spread round-robin over ``node.workers`` processes (default: one per usable core, at most one per
camera), each pinned to a core. Frames stay in the workers; what comes back over each worker's own pipe (a killed
worker cannot corrupt the others' channels) is stored here through the same :class:`AlertSink` as ``metrosight
run``, published on the in-process bus and counted in :class:`NodeMetrics`.

A worker that dies is restarted, at most ``node.max_restarts`` times per ``node.restart_window_seconds``: beyond
that its restart waits until the window allows it (its cameras are reported ``down`` meanwhile). Each worker life
has its own run rows; a crashed life's rows end with status ``crashed``.

:meth:`Supervisor.request_stop` (the CLI calls it on SIGTERM/SIGINT) stops the workers in order: each ends its
tracks and sends its last alerts and summaries; the supervisor stores everything that arrives until every pipe is
closed, then finishes the runs. A worker that does not finish within ``node.shutdown_timeout_seconds`` is killed.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, Literal

from metrosight.bus.inproc import InProcessBus
from metrosight.bus.payloads import AlertV1, CameraStateV1, CameraStatsV1
from metrosight.bus.topics import (
    ALERT_UPDATES,
    ALERTS,
    CAMERA_SNAPSHOT,
    CAMERA_STATE,
    CAMERA_STATS,
    EPISODES,
    EVENT_UPDATES,
    EVENTS,
)
from metrosight.config.model import CameraConfig
from metrosight.core.names import InvalidInput, distinct_identifiers
from metrosight.ingest.source import parse_source
from metrosight.outbound.hosts import dispatcher_for
from metrosight.pipeline.messages import (
    AlertRaised,
    AlertUpdated,
    Bye,
    CameraFinished,
    EventRaised,
    EventUpdated,
    Fatal,
    Ready,
    SnapshotTaken,
    StateChanged,
    StatsReported,
    WorkerMessage,
)
from metrosight.pipeline.metrics import NodeMetrics
from metrosight.pipeline.runs import RunCounts, RunRows
from metrosight.pipeline.worker import WorkerCamera, WorkerSpec, worker_main
from metrosight.services.sinks import STORAGE_WAIT_SECONDS, AlertSink, EventSink
from metrosight.services.suite import Services
from metrosight.store.db import StoreError

log = logging.getLogger(__name__)


class SupervisorError(Exception):
    """The node cannot start (no cameras, a bad source); the message names what to fix."""


def usable_cores() -> list[int]:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def assign(cameras: list[CameraConfig], workers: int) -> list[list[CameraConfig]]:
    """Spread cameras round-robin over ``workers`` groups (none empty)."""
    workers = max(1, min(workers, len(cameras)))
    groups: list[list[CameraConfig]] = [[] for _ in range(workers)]
    for i, cam in enumerate(cameras):
        groups[i % workers].append(cam)
    return groups


@dataclass(slots=True)
class RestartLimiter:
    """At most ``max_restarts`` restarts in any ``window`` seconds; :meth:`next_allowed` says when the next may
    happen."""

    max_restarts: int
    window: float
    times: deque[float] = field(default_factory=deque)

    def next_allowed(self, now: float) -> float:
        """When the next restart may happen (``now`` if at once; ``inf`` if restarts are disabled)."""
        if self.max_restarts <= 0:
            return float("inf")
        while self.times and now - self.times[0] >= self.window:
            self.times.popleft()
        if len(self.times) < self.max_restarts:
            return now
        return self.times[0] + self.window

    def record(self, now: float) -> None:
        self.times.append(now)


@dataclass(slots=True)
class _Worker:
    index: int
    cameras: list[CameraConfig]
    core: int | None
    limiter: RestartLimiter
    proc: BaseProcess | None = None
    conn: Connection | None = None
    runs: dict[str, int] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    last_stats: dict[str, CameraStatsV1] = field(default_factory=dict)
    generation: int = 0
    restart_at: float | None = None
    ready: bool = False


@dataclass(frozen=True, slots=True)
class NodeReport:
    """What a node run did: seconds, per-camera metrics snapshot, alerts stored, worker restarts."""

    seconds: float
    snapshot: dict[str, Any]
    alerts: int
    restarts: int


class Supervisor:
    """Runs ``cameras`` on worker processes and stores what they report.

    Args:
        runtime: the installation's services (its store receives alerts and runs; its home and settings go to the
            workers).
        cameras: the cameras to run (default: ``settings.cameras``).
        on_alert: called with each stored alert and its crop path (and its stored sighting, when it takes three
            arguments: see :class:`~metrosight.services.sinks.AlertSink`).
        on_state: called with each camera state change.
        on_event: called with each stored behaviour event and its snapshot path.
        bus: the bus to publish on (default: a new in-process bus).
        log_level: the workers' logging level.
    """

    def __init__(
        self,
        runtime: Services,
        cameras: list[CameraConfig] | None = None,
        on_alert: Callable[..., None] | None = None,
        on_state: Callable[[CameraStateV1], None] | None = None,
        bus: InProcessBus | None = None,
        log_level: int = logging.WARNING,
        on_event: Callable[..., None] | None = None,
    ) -> None:
        self.rt = runtime
        self.settings = runtime.settings
        self.cameras = list(cameras if cameras is not None else self.settings.cameras)
        if not self.cameras:
            raise SupervisorError("no cameras configured: add a `cameras:` list (id, source) to the config file")
        try:  # the configuration's rule, for a list of cameras given here too
            distinct_identifiers([c.id for c in self.cameras], "camera id")
        except InvalidInput as exc:
            raise SupervisorError(str(exc)) from None
        self.specs = {}  # each source parsed once; its display form is what is shown and stored
        for c in self.cameras:  # a bad source fails now, with its camera named, not in a worker
            try:
                self.specs[c.id] = parse_source(c.source, c.rtsp_transport)
            except Exception as exc:  # noqa: BLE001 - re-raised with the camera id
                raise SupervisorError(f"camera {c.id}: {exc}") from None
        self.on_state_cb = on_state
        self.bus = bus or InProcessBus()
        self.metrics = NodeMetrics(home=self.rt.home.root)
        self.log_level = log_level
        self._ctx = mp.get_context("spawn")
        self._stop_event = self._ctx.Event()
        self._stopping = threading.Event()
        self.dispatching = threading.Event()  # set once the outbound dispatcher listens on the bus
        self.rows = RunRows(self.rt.store.runs)
        self.sink = AlertSink(self.rt.store, self.rt.home.media, on_alert, lambda e: self.bus.publish(EPISODES, e))
        self.bus.subscribe(ALERTS, self._store_alert)
        self.bus.subscribe(ALERT_UPDATES, self.sink.on_update)
        self.events = EventSink(self.rt.store, self.rt.home.media, on_event)
        self.bus.subscribe(EVENTS, self.events.on_event)
        self.bus.subscribe(EVENT_UPDATES, self.events.on_update)
        self.bus.subscribe(CAMERA_STATE, self.metrics.on_state)
        self.bus.subscribe(CAMERA_STATS, self.metrics.on_stats)
        node = self.settings.node
        cores = usable_cores()
        n = node.workers or len(cores)
        self.workers = [
            _Worker(
                i,
                group,
                cores[i % len(cores)] if node.pin_cores else None,
                RestartLimiter(node.max_restarts, node.restart_window_seconds),
            )
            for i, group in enumerate(assign(self.cameras, n))
        ]
        self._frame_wall: float | None = None

    # -- control ----------------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop in order (safe from a signal handler)."""
        self._stopping.set()

    def worker_pids(self) -> dict[int, int]:
        """Worker number → process id of the live workers."""
        return {
            w.index: w.proc.pid
            for w in self.workers
            if w.proc is not None and w.proc.pid is not None and w.proc.is_alive()
        }

    # -- the loop ---------------------------------------------------------------------------------------------
    def run(self, duration: float | None = None, tick: Callable[[], None] | None = None) -> NodeReport:
        """Start the workers and serve them until :meth:`request_stop`, ``duration`` seconds, or every camera
        ended (files). ``tick`` is called about five times a second (e.g. to write a metrics file). Returns the
        node's report."""
        dispatcher = dispatcher_for(self.rt)  # after the sinks: an alert is stored before it is offered
        dispatcher.attach(self.bus)
        self.dispatching.set()  # what else publishes on the bus (the service's alarm clock) may start
        started = time.monotonic()
        for w in self.workers:
            self._start(w)
        try:
            while not self._stopping.is_set():
                if duration is not None and time.monotonic() - started >= duration:
                    break
                self._pump(0.2)
                self.sink.retry()  # alerts held while the store could not be written (full disk) go in now
                self._check_workers()
                if tick is not None:
                    tick()
                if all(w.proc is None and w.restart_at is None for w in self.workers):
                    break  # every camera ended
        finally:
            self._shutdown()
            if not self.sink.drain(STORAGE_WAIT_SECONDS):
                log.error(
                    "%s: %d alert(s) printed by the node could not be stored", self.sink.failure, len(self.sink.held)
                )
            dispatcher.close()
        snap = self.metrics.snapshot()
        return NodeReport(time.monotonic() - started, snap, self.metrics.alerts_stored, self.metrics.worker_restarts)

    def _start(self, w: _Worker) -> None:
        w.generation += 1
        w.runs = {c.id: self.rows.open(c.id, self.specs[c.id]) for c in w.cameras}
        w.finished = set()
        w.last_stats = {}
        w.ready = False
        fps_default = self.settings.ingest.analysis_fps
        spec = WorkerSpec(
            worker=w.index,
            home=str(self.rt.home.root),
            settings=self.settings.model_dump(mode="json"),
            cameras=tuple(
                WorkerCamera(c.id, self.specs[c.id], c.analysis_fps or fps_default, w.runs[c.id]) for c in w.cameras
            ),
            core=w.core,
            log_level=self.log_level,
        )
        parent, child = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(
            target=worker_main,
            args=(spec, child, self._stop_event),
            name=f"metrosight-worker-{w.index}",
            daemon=False,
        )
        proc.start()
        child.close()
        w.proc, w.conn, w.restart_at = proc, parent, None
        log.info("worker %d (pid %d, core %s): %s", w.index, proc.pid, w.core, ", ".join(c.id for c in w.cameras))

    def _pump(self, timeout: float) -> None:
        conns = [w.conn for w in self.workers if w.conn is not None]
        if not conns:
            time.sleep(timeout)
            return
        for conn in wait(conns, timeout):
            w = next(x for x in self.workers if x.conn is conn)
            self._drain(w)

    def _drain(self, w: _Worker) -> None:
        if w.conn is None:
            return
        try:
            while w.conn.poll():
                self._handle(w, w.conn.recv())
        except (EOFError, OSError):
            w.conn.close()
            w.conn = None

    def _handle(self, w: _Worker, msg: WorkerMessage) -> None:
        match msg:
            case AlertRaised(alert, frame_wall):
                self._frame_wall = frame_wall
                self.bus.publish(ALERTS, alert)
            case AlertUpdated(update):
                self.bus.publish(ALERT_UPDATES, update)
            case EventRaised(event):
                self.bus.publish(EVENTS, event)
            case EventUpdated(update):
                self.bus.publish(EVENT_UPDATES, update)
            case StateChanged(state):
                self._publish_state(state)
            case StatsReported(stats):
                w.last_stats[stats.camera_id] = stats
                self.bus.publish(CAMERA_STATS, stats)
            case CameraFinished(cid, status, error, counts):
                if cid in w.runs and cid not in w.finished:
                    w.finished.add(cid)
                    self.rows.close(w.runs[cid], status, counts, error)
            case SnapshotTaken(snapshot):  # a redacted frame for the operator UI (kept in memory only)
                self.bus.publish(CAMERA_SNAPSHOT, snapshot)
            case Ready():
                w.ready = True
            case Fatal(_, message):
                log.error("worker %d failed: %s", w.index, message)
            case Bye():
                pass
            case _:
                log.warning("worker %d sent an unknown message %r", w.index, type(msg).__name__)

    def _publish_state(self, p: CameraStateV1) -> None:
        self.bus.publish(CAMERA_STATE, p)
        self._store_state(p)
        if self.on_state_cb is not None:
            self.on_state_cb(p)

    def _store_state(self, p: CameraStateV1) -> None:
        """Keep the camera's history: an event of kind ``camera_state`` (``start_ts`` is Unix time here, not media
        time: a camera that is down has no media time). A store error is logged, never fatal to the node."""
        run_id = next((w.runs.get(p.camera_id) for w in self.workers if p.camera_id in w.runs), None)
        try:
            self.rt.store.events.save(
                f"{p.camera_id}:state:{int(p.wall_time * 1e6)}:{p.state}",
                p.camera_id,
                "camera_state",
                p.wall_time,
                data={
                    "state": p.state,
                    "previous": p.previous,
                    "reason": p.reason[:1000],
                    "attempt": p.attempt,
                    "worker": p.worker,
                    "clock": "unix",
                },
                run_id=run_id,
            )
        except StoreError as exc:
            log.error("cannot store the state change of camera %s (%s): %s", p.camera_id, p.state, exc)

    def _store_alert(self, alert: AlertV1) -> None:
        self.sink.on_alert(alert)
        self.metrics.on_alert_stored(self._frame_wall, time.time())
        self._frame_wall = None

    def _check_workers(self) -> None:
        now = time.monotonic()
        for w in self.workers:
            if w.proc is not None and not w.proc.is_alive():
                if w.conn is not None:
                    self._drain(w)  # what it sent before dying is still stored
                code = w.proc.exitcode
                w.proc.join()
                w.proc = None
                if w.conn is not None:
                    w.conn.close()
                    w.conn = None
                self._close_runs(w, "crashed", f"worker process exited with code {code}")
                if len(w.finished) == len(w.cameras) and code == 0:
                    continue  # its cameras ended (files): nothing to restart
                when = w.limiter.next_allowed(now)
                w.restart_at = when
                why = f"worker {w.index} exited with code {code}"
                state: Literal["reconnecting", "down"] = "reconnecting" if when <= now else "down"
                if when == float("inf"):
                    why += "; restarts are disabled (node.max_restarts = 0)"
                elif when > now:
                    why += (
                        f"; restart-rate limit ({w.limiter.max_restarts} per {w.limiter.window:g} s) reached, "
                        f"next restart in {when - now:.0f} s"
                    )
                log.error("%s (cameras %s)", why, ", ".join(c.id for c in w.cameras))
                for c in w.cameras:
                    self._publish_state(
                        CameraStateV1(
                            camera_id=c.id,
                            state=state,
                            reason=why,
                            attempt=0,
                            wall_time=time.time(),
                            worker=w.index,
                        )
                    )
            if w.proc is None and w.restart_at is not None and now >= w.restart_at and not self._stopping.is_set():
                w.limiter.record(now)
                self.metrics.on_worker_restart(w.index, [c.id for c in w.cameras])
                self._start(w)

    def _close_runs(self, w: _Worker, status: str, error: str) -> None:
        for cid, run_id in w.runs.items():
            if cid in w.finished:
                continue
            w.finished.add(cid)
            st = w.last_stats.get(cid)
            counts = RunCounts(st.frames_analysed, st.faces, st.tracks, st.alerts) if st else RunCounts()
            self.rows.close(run_id, status, counts, error)

    def _shutdown(self) -> None:
        """Stop every worker in order; store all they send; kill those that overrun the timeout."""
        self._stop_event.set()
        deadline = time.monotonic() + self.settings.node.shutdown_timeout_seconds
        while any(w.conn is not None for w in self.workers) and time.monotonic() < deadline:
            self._pump(0.2)
            for w in self.workers:  # a worker that died without closing its pipe
                if w.proc is not None and not w.proc.is_alive() and w.conn is not None:
                    self._drain(w)
                    if w.conn is not None:
                        w.conn.close()
                        w.conn = None
        for w in self.workers:
            if w.proc is None:
                continue
            w.proc.join(max(0.0, deadline - time.monotonic()) + 1.0)
            if w.proc.is_alive():
                log.error(
                    "worker %d did not stop within %g s; killing it",
                    w.index,
                    self.settings.node.shutdown_timeout_seconds,
                )
                w.proc.kill()
                w.proc.join(5)
                self._close_runs(w, "killed", "did not stop in time at shutdown")
            else:
                self._close_runs(w, "interrupted", "the node stopped before the camera reported")
            w.proc = None
            w.restart_at = None
