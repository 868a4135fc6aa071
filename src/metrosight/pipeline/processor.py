"""The per-camera processor: what the frame loop (:mod:`metrosight.pipeline.loop`) drives, whatever the host.

A camera runs face recognition (:class:`~metrosight.pipeline.camera.CameraPipeline`), behaviour analytics
(:class:`~metrosight.pipeline.analytics.AnalyticsPipeline`), or both (:class:`Composite`); each implements
:class:`FrameProcessor`. :func:`build_processor` builds the one a camera needs from everything passed in — models,
the live gallery policy, the camera's outputs (:class:`~metrosight.pipeline.outbox.CameraOutputs`), its run row and
its event-id scope — so that no host sets anything on a processor after building it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from metrosight.config.model import Settings
from metrosight.core.types import Box, Detection, Frame
from metrosight.detect.base import FaceDetector
from metrosight.pipeline.analytics import AnalyticsPipeline, make_analytics_worker, wants_analytics
from metrosight.pipeline.camera import CameraPipeline, CameraStats
from metrosight.pipeline.outbox import CameraOutputs
from metrosight.pipeline.phases import DetectionRequest, EmbedRequest
from metrosight.recognize.embedder import Embedder
from metrosight.recognize.gallery import Matcher


class FrameProcessor(Protocol):
    """Analyses one camera's frames in order; publishes what it finds through the outputs it was built with.

    ``process`` runs every stage on one frame; ``finish`` ends every track (the source ended or reconnected: no
    track carries across). ``camera_stats`` are the run's counters; ``quiescent`` says no track is live (a resume
    point for another worker); ``last_boxes`` are the faces detected in the last frame (blurred in snapshots);
    ``gallery_size`` is the number of entries matched against (0 without face recognition).
    """

    def process(self, frame: Frame) -> object: ...

    def finish(self) -> object: ...

    @property
    def camera_stats(self) -> CameraStats: ...

    @property
    def quiescent(self) -> bool: ...

    @property
    def last_boxes(self) -> list[Box]: ...

    @property
    def gallery_size(self) -> int: ...


class Composite:
    """Two processors fed the same frames (faces and behaviour); counters, snapshot boxes and gallery are the
    ``primary``'s, quiescent when both are."""

    def __init__(self, primary: FrameProcessor, secondary: FrameProcessor) -> None:
        self.primary = primary
        self.secondary = secondary

    def process(self, frame: Frame) -> None:
        self.primary.process(frame)
        self.secondary.process(frame)

    def finish(self) -> None:
        self.primary.finish()
        self.secondary.finish()

    @property
    def camera_stats(self) -> CameraStats:
        return self.primary.camera_stats

    @property
    def quiescent(self) -> bool:
        return self.primary.quiescent and self.secondary.quiescent

    @property
    def last_boxes(self) -> list[Box]:
        return self.primary.last_boxes

    @property
    def gallery_size(self) -> int:
        return self.primary.gallery_size


class FaceComposite(Composite):
    """A :class:`Composite` whose primary is face recognition: its frames can also be analysed in phases with other
    cameras' (:mod:`metrosight.pipeline.batch`); the behaviour part runs on the frame after the face part's last
    phase, as :meth:`Composite.process` runs them."""

    def __init__(self, primary: CameraPipeline, secondary: FrameProcessor) -> None:
        super().__init__(primary, secondary)
        self.faces = primary

    @property
    def detector(self) -> FaceDetector:
        return self.faces.detector

    @property
    def embedder(self) -> Embedder:
        return self.faces.embedder

    def prepare(self, frame: Frame) -> DetectionRequest:
        return self.faces.prepare(frame)

    def after_detection(self, request: DetectionRequest, found: Sequence[Sequence[Detection]]) -> EmbedRequest:
        return self.faces.after_detection(request, found)

    def after_embedding(self, request: EmbedRequest, descriptors: np.ndarray) -> None:
        self.faces.after_embedding(request, descriptors)
        self.secondary.process(request.frame)


class GalleryPolicy(Protocol):
    """A camera's gallery and no-identification state, kept current
    (:class:`~metrosight.services.live_policy.LivePolicy`): ``current`` reads them now, ``poll`` returns them when
    they changed (else None)."""

    def current(self) -> tuple[Matcher, bool]: ...

    def poll(self) -> tuple[Matcher, bool] | None: ...


@dataclass(frozen=True, slots=True)
class FaceParts:
    """What face recognition on one camera needs: the models, the landmarker that refines landmarks on the full
    frame when detection ran downscaled, the live gallery policy and the camera's episode group."""

    detector: FaceDetector
    embedder: Embedder
    landmarker: Callable[[np.ndarray, Box], np.ndarray] | None
    policy: GalleryPolicy
    group: str | None


@dataclass(frozen=True, slots=True)
class Built:
    """A camera's processor, and its behaviour part when analytics run (for their counters)."""

    processor: FrameProcessor
    behaviour: AnalyticsPipeline | None


def build_processor(
    settings: Settings,
    camera_id: str,
    run_id: int | None,
    outputs: CameraOutputs,
    faces: FaceParts | None,
    face_boxes: Callable[[np.ndarray], list[Box]] | None = None,
    scope: str | None = None,
) -> Built:
    """The processor of ``camera_id``: face recognition when ``faces`` is given, behaviour analytics for a camera
    under ``analytics.cameras`` (or always without ``faces``: ``run --analytics-only``), both as a
    :class:`Composite`.

    Args:
        settings: the configuration.
        camera_id: the camera (its analytics zones, events' ids).
        run_id: the run row stamped on alerts and events.
        outputs: where alerts, alert updates, events and event updates go.
        faces: the face models and policy; ``None`` runs behaviour analytics only.
        face_boxes: faces to blur in behaviour snapshots besides heads (a face detector), if any.
        scope: the event-id scope (``camera:scope:…``): the same scope and frames give the same ids (a resumed
            file); ``None`` makes a fresh one.
    """
    pipe: CameraPipeline | None = None
    if faces is not None:
        matcher, allowed = faces.policy.current()
        pipe = CameraPipeline(
            settings,
            faces.detector,
            faces.embedder,
            matcher,
            publish_alert=outputs.alert,
            publish_update=outputs.alert_update,
            run_id=run_id,
            landmarker=faces.landmarker,
            policy=faces.policy.poll,
            event_scope=scope,
            group=faces.group,
            identification_allowed=allowed,
        )
    behaviour = None
    if wants_analytics(settings.analytics, camera_id, faces is None):
        behaviour = make_analytics_worker(
            settings.analytics, camera_id, run_id, outputs.event, outputs.event_update, face_boxes, scope
        )
    if pipe is None:
        if behaviour is None:
            raise ValueError("a camera needs face recognition or behaviour analytics")
        return Built(behaviour, behaviour)
    return Built(pipe if behaviour is None else FaceComposite(pipe, behaviour), behaviour)
