"""The single-process host's entry point: ``metrosight run`` runs one camera over one source in this process
(:class:`~metrosight.pipeline.single.SingleRun` around the frame loop), storing what it finds through the service
layer (:mod:`metrosight.services`). Node and cluster workers build their cameras' processors here too
(:meth:`Runtime.processor`), so every host builds a camera the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from metrosight.bus.inproc import InProcessBus
from metrosight.bus.topics import EPISODES
from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.core.names import identifier
from metrosight.core.types import Box
from metrosight.core.when import Clock
from metrosight.detect.landmarks import FivePointLandmarker
from metrosight.ingest.source import SourceError, parse_source
from metrosight.outbound.hosts import dispatcher_for
from metrosight.pipeline.camera import CameraStats
from metrosight.pipeline.loop import camera_state_payload
from metrosight.pipeline.outbox import CameraOutputs
from metrosight.pipeline.processor import Built, FaceParts, build_processor
from metrosight.pipeline.runs import RunRows
from metrosight.pipeline.single import RunReport, SingleRun
from metrosight.services.live_policy import PolicySource
from metrosight.services.sinks import STORAGE_WAIT_SECONDS, AlertSink, EventSink
from metrosight.services.suite import Services
from metrosight.store.db import StoreError

log = logging.getLogger(__name__)


class Runtime:
    """The hosts' view of one installation's services: builds cameras' processors (:meth:`processor`) and runs one
    camera in this process (:meth:`run`)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.home = services.home
        self.settings = services.settings
        self.clock = services.clock
        self.store = services.store
        self.storage_wait_seconds = STORAGE_WAIT_SECONDS
        self._landmarker: FivePointLandmarker | None = None

    @classmethod
    def open(cls, home: Home, settings: Settings, clock: Clock | None = None) -> Runtime:
        """The host of the installation at ``home`` (see :meth:`Services.open`)."""
        return cls(Services.open(home, settings, clock))

    def with_policy(self, policy: PolicySource) -> Runtime:
        """The same host whose cameras read their policy through ``policy`` (see :meth:`Services.with_policy`)."""
        return Runtime(self.services.with_policy(policy))

    @property
    def landmarker(self) -> FivePointLandmarker:
        """The 5-point landmarker that refines landmarks on the full frame (one per host: its frame loop calls it
        from one thread)."""
        if self._landmarker is None:
            self._landmarker = FivePointLandmarker()
        return self._landmarker

    def warm_up(self) -> None:
        """Load the face models and run each once on blank input, so that a camera's first face is analysed as fast
        as the next (ONNX sessions allocate and the landmark model loads on first use: a live camera would drop the
        frames that arrive meanwhile, about a second's)."""
        models = self.services.models
        models.load()
        blank = np.zeros((360, 640, 3), np.uint8)
        models.detector.detect(blank)
        models.embedder.embed(np.zeros((1, 150, 150, 3), np.uint8))
        self.landmarker(blank, Box(200.0, 100.0, 300.0, 230.0))

    def face_boxes(self, image: np.ndarray) -> list[Box]:
        """Every face the detector finds in ``image`` (blurred in behaviour snapshots)."""
        return [d.box for d in self.services.models.detector.detect(image)]

    # -- cameras ----------------------------------------------------------------------------------------------
    def processor(
        self, camera_id: str, run_id: int | None, outputs: CameraOutputs, scope: str | None = None, faces: bool = True
    ) -> Built:
        """The processor of one camera (:func:`~metrosight.pipeline.processor.build_processor`): face recognition
        kept current with approvals, revocations and no-identification windows (unless not ``faces``: behaviour
        analytics only), and behaviour analytics for a camera under ``analytics.cameras``. ``scope``: the event-id
        scope (None: a fresh one)."""
        parts = None
        if faces:
            parts = FaceParts(
                self.services.models.detector,
                self.services.models.embedder,
                self.landmarker,
                self.services.live_policy(camera_id),
                self.services.installation.camera_group(camera_id),
            )
        return build_processor(self.settings, camera_id, run_id, outputs, parts, self.face_boxes, scope)

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
        """Run the pipeline over one source until it ends (:class:`~metrosight.pipeline.single.SingleRun`). Alerts
        are stored as they happen.

        With ``analytics_only`` no face model is used: only the behaviour analytics run (people tracking, loitering,
        fast movement, counting). Without it they run alongside face recognition for cameras that have an entry
        under ``analytics.cameras``. Behaviour events are stored as they happen and passed to ``on_event``.

        ``rtsp_transport`` (``auto``, ``tcp``, ``udp``) defaults to that of the configured camera ``camera_id``,
        else ``auto``; its ``analysis_fps``, when set, replaces ``ingest.analysis_fps`` as on a node. The run row,
        states and messages carry the source without its credentials.

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
        ingest = self.settings.ingest
        if configured is not None and configured.analysis_fps is not None:  # the camera's own rate, as on a node
            ingest = ingest.model_copy(update={"analysis_fps": configured.analysis_fps})
        host_bus = bus or InProcessBus()
        host = SingleRun(
            ingest,
            RunRows(self.store.runs, self.storage_wait_seconds),
            host_bus,
            AlertSink(self.store, self.home.media, on_alert, lambda e: host_bus.publish(EPISODES, e)),
            EventSink(self.store, self.home.media, on_event),
            lambda cid, run_id, outputs: self.processor(cid, run_id, outputs, faces=not analytics_only),
            self.storage_wait_seconds,
            on_frame,
            lambda: dispatcher_for(self.services, draining=True),
        )
        return host.run(spec, camera_id)


__all__ = ["RunReport", "Runtime", "SourceError", "StoreError", "camera_state_payload"]
