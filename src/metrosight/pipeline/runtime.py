"""The single-process host: ``metrosight run`` runs one camera's pipeline over one source in this process, storing
what it finds through the service layer (:mod:`metrosight.services`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from metrosight.bus.inproc import TOPIC_ALERT_UPDATES, TOPIC_ALERTS, TOPIC_CAMERA_STATE, InProcessBus
from metrosight.bus.payloads import AlertUpdateV1, AlertV1, CameraStateV1
from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.core.names import identifier
from metrosight.core.when import Clock
from metrosight.ingest.factory import live_source
from metrosight.ingest.live import LiveSource
from metrosight.ingest.source import SourceBroken, SourceError, VideoSource, parse_source
from metrosight.ingest.state import StateChange
from metrosight.pipeline.camera import CameraPipeline, CameraStats
from metrosight.services.sinks import RETRY_SECONDS, STORAGE_WAIT_SECONDS, AlertSink, EventSink
from metrosight.services.suite import Services
from metrosight.store.db import StoreError

log = logging.getLogger(__name__)


class Runtime:
    """The single-process host of one installation's services (see :meth:`run`)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.home = services.home
        self.settings = services.settings
        self.clock = services.clock
        self.store = services.store
        self.storage_wait_seconds = STORAGE_WAIT_SECONDS

    @classmethod
    def open(cls, home: Home, settings: Settings, clock: Clock | None = None) -> Runtime:
        """The host of the installation at ``home`` (see :meth:`Services.open`)."""
        return cls(Services.open(home, settings, clock))

    def with_store(self, store: object) -> Runtime:
        """The same host reading and writing through ``store`` (a cache in front of the installation's store)."""
        return Runtime(self.services.with_store(store))  # type: ignore[arg-type]

    # -- video ------------------------------------------------------------------------------------------------
    def camera_pipeline(
        self,
        camera_id: str,
        run_id: int | None,
        publish_alert: Callable[[AlertV1], None],
        publish_update: Callable[[AlertUpdateV1], None],
    ) -> CameraPipeline:
        """The stages of one camera, kept current with approvals, revocations and no-identification windows."""
        from metrosight.detect.landmarks import FivePointLandmarker

        live = self.services.live_policy(camera_id)
        matcher, allowed = live.current()
        pipe = CameraPipeline(
            self.settings,
            self.services.models.detector,
            self.services.models.embedder,
            matcher,
            publish_alert=publish_alert,
            publish_update=publish_update,
            run_id=run_id,
            landmarker=FivePointLandmarker(),
            policy=live.poll,
            group=self.services.installation.camera_group(camera_id),
        )
        pipe.identification_allowed = allowed
        return pipe

    def _finish_run(self, run_id: int, status: str, s: CameraStats, error: str | None) -> None:
        """Close the run row; on a full disk keep trying for :attr:`storage_wait_seconds` (else the next start
        closes it as crashed)."""
        deadline = time.monotonic() + self.storage_wait_seconds
        while True:
            try:
                self.store.finish_run(run_id, status, s.frames, s.faces, s.tracks, s.alerts, error)
                return
            except (StoreError, SQLAlchemyError) as exc:
                if time.monotonic() >= deadline:
                    log.error("cannot close run %d (%s); the next start closes it as crashed", run_id, exc)
                    return
                time.sleep(RETRY_SECONDS)

    def run(
        self,
        source: str,
        camera_id: str,
        on_alert: Callable[..., None] | None = None,
        on_frame: Callable[[CameraStats], None] | None = None,
        bus: InProcessBus | None = None,
        analytics_only: bool = False,
        on_event: Callable[..., None] | None = None,
        rtsp_transport: str | None = None,
    ) -> RunReport:
        """Run the pipeline over one source until it ends. Alerts are stored as they happen.

        With ``analytics_only`` no face model is used: only the behaviour analytics run (people tracking, loitering,
        fast movement, counting). Without it they run alongside face recognition for cameras that have an entry
        under ``analytics.cameras``. Behaviour events are stored as they happen and passed to ``on_event``.

        ``rtsp_transport`` (``auto``, ``tcp``, ``udp``) defaults to that of the configured camera ``camera_id``,
        else ``auto``. The run row, states and messages carry the source without its credentials.

        Raises:
            SourceError: the source cannot be parsed or opened (nothing is stored). InvalidInput: ``camera_id``
            breaks the camera id rule (:func:`metrosight.core.names.identifier`).
        """
        camera_id = identifier(camera_id, "camera id")
        if not analytics_only:  # a gallery of another descriptor model is refused before anything is opened or written
            _ = self.services.models.embedder
        configured = self.settings.camera(camera_id)
        if configured is not None:  # `--camera CAM-1` is the configured camera cam-1: its line, windows, analytics
            camera_id = configured.id
        if rtsp_transport is None:
            rtsp_transport = configured.rtsp_transport if configured is not None else "auto"
        spec = parse_source(source, rtsp_transport)
        bus = bus or InProcessBus()
        video: VideoSource | LiveSource
        if spec.kind == "file":
            video = VideoSource(
                spec, camera_id, self.settings.ingest.analysis_fps, self.settings.ingest.open_timeout_seconds
            )
            frames = video.frames()
        else:  # a live stream: reconnects with backoff, watchdog, newest frame first; gives up once down
            video = live_source(spec, camera_id, self.settings.ingest, keep_trying=False)
            frames = video.frames(on_state=lambda ch: bus.publish(TOPIC_CAMERA_STATE, camera_state_payload(ch)))
        first = next(frames, None)  # opens the source before anything is written
        run_id = self.store.start_run(camera_id, spec.display)  # no camera credentials stored
        sink = AlertSink(self.store, self.home.media, on_alert)
        bus.subscribe(TOPIC_ALERTS, sink.on_alert)  # type: ignore[arg-type]
        bus.subscribe(TOPIC_ALERT_UPDATES, sink.on_update)  # type: ignore[arg-type]
        from metrosight.pipeline import analytics as an

        analytics = None
        if an.wants_analytics(self.settings.analytics, camera_id, analytics_only):
            events = EventSink(self.store, self.home.media, on_event)
            bus.subscribe(an.TOPIC_EVENTS, events.on_event)  # type: ignore[arg-type]
            bus.subscribe(an.TOPIC_EVENT_UPDATES, events.on_update)  # type: ignore[arg-type]
            analytics = an.make_analytics_worker(
                self.settings.analytics,
                camera_id,
                run_id,
                lambda e: bus.publish(an.TOPIC_EVENTS, e),
                lambda u: bus.publish(an.TOPIC_EVENT_UPDATES, u),
                face_boxes=lambda image: [d.box for d in self.services.models.detector.detect(image)],
            )
        pipe = (
            an.AnalyticsOnly(analytics)  # type: ignore[arg-type]
            if analytics_only
            else self.camera_pipeline(
                camera_id,
                run_id,
                publish_alert=lambda a: bus.publish(TOPIC_ALERTS, a),
                publish_update=lambda u: bus.publish(TOPIC_ALERT_UPDATES, u),
            )
        )
        if analytics is not None and not analytics_only:
            pipe = an.Alongside(pipe, analytics)  # type: ignore[assignment]
        segment = 0
        started = time.perf_counter()
        error: str | None = None
        status = "finished"
        try:
            if first is not None:
                pipe.process(first)
                if on_frame:
                    on_frame(pipe.stats)
                for frame in frames:
                    if video.segment != segment:  # reconnected: no track carries across the outage
                        segment = video.segment
                        pipe.finish()
                    pipe.process(frame)
                    sink.retry()  # held alerts are stored as soon as the store can be written again
                    if on_frame:
                        on_frame(pipe.stats)
        except SourceBroken as exc:
            error, status = str(exc), "broken"
        except KeyboardInterrupt:
            error, status = "interrupted by the user", "interrupted"
        finally:
            pipe.finish()
            elapsed = time.perf_counter() - started
            s = pipe.stats
            if not sink.drain(self.storage_wait_seconds):
                held = len(sink.held)
                error = (
                    f"{sink.failure}: {held} alert(s) could not be stored (they were printed above); the run is "
                    "closed as crashed at the next start" + (f" ({error})" if error else "")
                )
                status = "storage-full"
            self._finish_run(run_id, status, s, error)
        stats = analytics.stats if analytics is not None else None
        return RunReport(
            run_id, status, error, pipe.stats, elapsed, len(pipe.matcher.gallery), stats, len(sink.alert_ids)
        )


@dataclass(frozen=True, slots=True)
class RunReport:
    run_id: int
    status: str
    error: str | None
    stats: CameraStats
    seconds: float
    gallery_size: int
    analytics: object | None = None  # AnalyticsStats when the behaviour analytics ran
    episodes: int = 0  # alerts (episodes) the run's sightings were stored in (stats.alerts counts sightings)

    @property
    def fps(self) -> float:
        return self.stats.frames / self.seconds if self.seconds > 0 else 0.0


def camera_state_payload(change: StateChange, worker: int | None = None) -> CameraStateV1:
    """The bus payload of a camera state change."""
    return CameraStateV1(
        camera_id=change.camera_id,
        state=change.state.value,
        previous=change.previous.value if change.previous is not None else None,
        reason=change.reason,
        attempt=change.attempt,
        wall_time=change.wall_time,
        worker=worker,
    )


__all__ = ["Runtime", "RunReport", "StoreError", "SourceError"]
