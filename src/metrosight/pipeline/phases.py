"""The values passed between the phases of a camera's frame (:class:`~metrosight.pipeline.camera.CameraPipeline`).

A frame goes through three phases, so that a worker can run the model calls of several cameras together
(:mod:`metrosight.pipeline.batch`):

1. ``prepare(frame)`` → :class:`DetectionRequest`: which images to run the face detector on;
2. the caller runs the detector on every :class:`DetectionArea` (one call for all cameras' areas, or one a frame);
3. ``after_detection(request, detections)`` → :class:`EmbedRequest`: the chips to embed (it embeds the rare face
   a track resumed on itself, one chip, to check it is the same person: :mod:`metrosight.pipeline.continuity`);
4. the caller runs the embedder on :attr:`EmbedRequest.chips` (one call for all cameras' chips, or one a frame);
5. ``after_embedding(request, descriptors)`` → the alerts raised at the frame (already published).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from metrosight.bus.payloads import AlertV1
from metrosight.core.types import Box, Detection, FaceSample, Frame, TrackState

CHIP_SHAPE = (150, 150, 3)  # an aligned face chip (dlib's get_face_chip, size 150)


@dataclass(frozen=True, slots=True)
class DetectionArea:
    """One image to detect faces in, and where it lies in the frame.

    A point ``(x, y)`` of :attr:`image` is ``(offset[0] + x * scale, offset[1] + y * scale)`` in frame pixels.

    Attributes:
        image: ``(h, w, 3)`` uint8 RGB: the whole frame, the frame downscaled, or a crop of it (e.g. where something
            moved).
        offset: ``(x, y)`` of the image's top-left corner, in frame pixels.
        scale: frame pixels per image pixel (``> 0``; 1 for a full-resolution view, 1.5 for 1920 → 1280).
        window: for a crop, the rectangle of the frame it shows (frame pixels): a face reaching one of its edges
            that is not an edge of the frame is cut by it (never a best shot); None for the whole frame.
    """

    image: np.ndarray
    offset: tuple[float, float] = (0.0, 0.0)
    scale: float = 1.0
    window: Box | None = None

    @property
    def identity(self) -> bool:
        """Whether image pixels are frame pixels (no offset, no scaling)."""
        return self.offset == (0.0, 0.0) and self.scale == 1.0

    def to_frame(self, dets: Sequence[Detection]) -> list[Detection]:
        """``dets`` (boxes and landmarks in :attr:`image` pixels) in frame pixels."""
        if self.identity:
            return list(dets)
        dx, dy = self.offset
        out = []
        for d in dets:
            s = d.scaled(self.scale) if self.scale != 1.0 else d
            b = s.box
            box = Box(b.x1 + dx, b.y1 + dy, b.x2 + dx, b.y2 + dy)
            lm = None if s.landmarks is None else s.landmarks + np.array([dx, dy], dtype=np.float32)
            out.append(Detection(box, s.score, lm, s.kind, s.yaw))
        return out


@dataclass(frozen=True, slots=True)
class DetectionRequest:
    """What one camera's frame needs detected.

    Attributes:
        frame: the frame.
        areas: the images to run the face detector on (none: nothing to detect at this frame, motion gating);
            their detections together are the frame's faces.
        cut: the frame starts a new shot (scene cut: every track ends before this frame's faces are tracked).
        seconds: wall time spent deciding where to search and making the areas' images (scene cut, motion,
            downscaling, cropping), counted as detection time.
    """

    frame: Frame
    areas: tuple[DetectionArea, ...]
    cut: bool = False
    seconds: float = 0.0


@dataclass(slots=True)
class EmbedRequest:
    """What one camera's frame needs embedded, and what its last phase needs besides the descriptors.

    Attributes:
        frame: the frame.
        samples: the faces picked for recognition, one chip each (in embedding order).
        active: the live tracks after this frame.
        ended: ids of the tracks that ended at this frame.
        raised: alerts already raised at this frame (tracks ended by a scene cut).
    """

    frame: Frame
    samples: list[FaceSample] = field(default_factory=list)
    active: tuple[TrackState, ...] = ()
    ended: tuple[int, ...] = ()
    raised: list[AlertV1] = field(default_factory=list)

    @property
    def chips(self) -> np.ndarray:
        """``(N, 150, 150, 3)`` uint8 RGB aligned chips of :attr:`samples` (``N`` may be 0)."""
        if not self.samples:
            return np.zeros((0, *CHIP_SHAPE), np.uint8)
        return np.stack([s.chip for s in self.samples])
