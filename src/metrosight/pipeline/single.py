"""The single-process host (``metrosight run``): one camera, in this process, until its source ends.

Thin around the frame loop (:mod:`metrosight.pipeline.loop`): it opens the source (a file decoded frame by frame,
or a live stream that reconnects and gives up once down), opens the run row, builds the camera's processor, wires
the in-process bus to the run's alert and event sinks, drives the loop, and closes the run (waiting for a store
that cannot be written, see :class:`AlertSinkLike`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from metrosight.bus.base import Bus
from metrosight.bus.payloads import AlertUpdateV1, AlertV1, EventUpdateV1, EventV1
from metrosight.bus.topics import ALERT_UPDATES, ALERTS, EVENT_UPDATES, EVENTS
from metrosight.config.model import IngestConfig
from metrosight.core.source import SourceSpec
from metrosight.ingest.factory import file_source, live_source
from metrosight.ingest.live import Captured
from metrosight.ingest.state import IngestCounters
from metrosight.outbound.dispatch import Dispatcher
from metrosight.pipeline.analytics import AnalyticsStats
from metrosight.pipeline.camera import CameraStats
from metrosight.pipeline.loop import FrameLoop, IteratorFeed, LoopCamera
from metrosight.pipeline.outbox import BusOutbox, CameraOutputs
from metrosight.pipeline.processor import Built
from metrosight.pipeline.runs import RunRows


class AlertSinkLike(Protocol):
    """Stores alert sightings and updates, holding them while the store cannot be written
    (:class:`~metrosight.services.sinks.AlertSink`)."""

    held: list[AlertV1]
    failure: str | None
    alert_ids: set[int]

    def on_alert(self, alert: AlertV1) -> object: ...

    def on_update(self, update: AlertUpdateV1) -> None: ...

    def retry(self, force: bool = False) -> bool: ...

    def drain(self, wait_seconds: float = ...) -> bool: ...


class EventSinkLike(Protocol):
    """Stores behaviour events (:class:`~metrosight.services.sinks.EventSink`)."""

    def on_event(self, ev: EventV1) -> None: ...

    def on_update(self, upd: EventUpdateV1) -> None: ...


@dataclass(frozen=True, slots=True)
class RunReport:
    """What one run did: its row, how it ended (``finished``, ``broken``, ``interrupted``, ``storage-full``) and
    why, the counters, wall seconds, the entries matched against at the end, the behaviour counters when analytics
    ran, the alerts (episodes) its sightings were stored in (``stats.alerts`` counts sightings), and the source's
    counters (``ingest``: decode CPU seconds, frames the decoder skipped, the decoder)."""

    run_id: int
    status: str
    error: str | None
    stats: CameraStats
    seconds: float
    gallery_size: int
    analytics: AnalyticsStats | None = None
    episodes: int = 0
    ingest: IngestCounters | None = None

    @property
    def fps(self) -> float:
        return self.stats.frames / self.seconds if self.seconds > 0 else 0.0


def open_feed(spec: SourceSpec, camera_id: str, ingest: IngestConfig) -> IteratorFeed:
    """The opened feed of ``spec``: a file decoded in order, or a stream that reconnects with backoff and gives up
    once down; its first frame is read (an empty video gives a feed that is done).

    Raises:
        SourceError: the source cannot be opened (before anything is stored).
    """
    if spec.kind == "file":
        video = file_source(spec, camera_id, ingest, ingest.analysis_fps)
        feed = IteratorFeed(lambda _on_state: video.frames(), lambda: video.segment, decode=video.stats)
    else:
        live = live_source(spec, camera_id, ingest, keep_trying=False)
        feed = IteratorFeed(lambda on_state: live.frames(on_state=on_state), lambda: live.segment, decode=live.counters)
    feed.open()  # opens the source before anything is written
    return feed


class SingleRun:
    """Runs one camera in this process (see the module docstring).

    Args:
        ingest: the ``ingest`` section (analysis rate, timeouts, reconnection).
        rows: the runs table (closing waits for a store that cannot be written).
        bus: the in-process bus the camera publishes on; the sinks are subscribed to it.
        alerts: stores alert sightings and updates.
        events: stores behaviour events (subscribed only when the camera runs analytics).
        build: builds the camera's processor: ``build(camera_id, run_id, outputs)``.
        wait_seconds: how long the end of the run waits for held alerts to be stored.
        on_frame: called with the counters after each frame.
        outbound: opens the outbound dispatcher once the source is open; it is attached to ``bus`` after the sinks
            (an alert is stored before it is offered to the channels) and closed when the run ends.
    """

    def __init__(
        self,
        ingest: IngestConfig,
        rows: RunRows,
        bus: Bus,
        alerts: AlertSinkLike,
        events: EventSinkLike,
        build: Callable[[str, int, CameraOutputs], Built],
        wait_seconds: float,
        on_frame: Callable[[CameraStats], None] | None = None,
        outbound: Callable[[], Dispatcher] | None = None,
    ) -> None:
        self.ingest = ingest
        self.rows = rows
        self.bus = bus
        self.alerts = alerts
        self.events = events
        self.build = build
        self.wait_seconds = wait_seconds
        self.on_frame = on_frame
        self.outbound = outbound

    def run(self, spec: SourceSpec, camera_id: str) -> RunReport:
        """Run ``camera_id`` on ``spec`` until the source ends (or Ctrl-C). Returns the report.

        Raises:
            SourceError: the source cannot be opened (nothing is stored).
        """
        feed = open_feed(spec, camera_id, self.ingest)
        run_id = self.rows.open(camera_id, spec)  # no camera credentials stored
        self.bus.subscribe(ALERTS, self.alerts.on_alert)
        self.bus.subscribe(ALERT_UPDATES, self.alerts.on_update)
        outputs = CameraOutputs(BusOutbox(self.bus))
        built = self.build(camera_id, run_id, outputs)
        if built.behaviour is not None:
            self.bus.subscribe(EVENTS, self.events.on_event)
            self.bus.subscribe(EVENT_UPDATES, self.events.on_update)
        dispatcher = self.outbound() if self.outbound is not None else None
        if dispatcher is not None:
            dispatcher.attach(self.bus)
        cam = LoopCamera(camera_id, run_id, feed, built.processor, outputs)
        loop = FrameLoop(self)
        loop.add(cam)
        started = time.perf_counter()
        status, error = "finished", None
        try:
            loop.run()
        except KeyboardInterrupt:
            status, error = "interrupted", "interrupted by the user"
        finally:
            loop.end(cam)
            elapsed = time.perf_counter() - started
            if feed.error is not None:
                status, error = "broken", str(feed.error)
            if not self.alerts.drain(self.wait_seconds):
                error = (
                    f"{self.alerts.failure}: {len(self.alerts.held)} alert(s) could not be stored (they were printed "
                    "above); the run is closed as crashed at the next start" + (f" ({error})" if error else "")
                )
                status = "storage-full"
            self.rows.close(run_id, status, cam.counts, error)
            if dispatcher is not None:
                dispatcher.close()
        stats = built.processor.camera_stats
        behaviour = built.behaviour.stats if built.behaviour is not None else None
        return RunReport(
            run_id,
            status,
            error,
            stats,
            elapsed,
            built.processor.gallery_size,
            behaviour,
            len(self.alerts.alert_ids),
            feed.counters,
        )

    # -- the loop's hooks -------------------------------------------------------------------------------------
    def between_rounds(self) -> bool:
        return True  # the run ends with its source (or Ctrl-C)

    def after_frame(self, cam: LoopCamera, cap: Captured) -> None:
        self.alerts.retry()  # held alerts are stored as soon as the store can be written again
        if self.on_frame is not None:
            self.on_frame(cam.processor.camera_stats)

    def ended(self, cam: LoopCamera) -> None:
        pass  # the run is closed by run(), after the held alerts are drained

    def idle(self) -> None:
        time.sleep(0.01)
