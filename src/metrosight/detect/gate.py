"""Which areas of a frame the face detector searches: detection driven by need (no I/O).

:class:`DetectionGate` decides it frame by frame for one camera:

- **regions**: only the camera's detection regions are ever searched (``cameras[].detection.regions``);
- **full detection** (every region, or the whole frame) on the first frame, after a scene cut or a reconnect
  (:meth:`DetectionGate.reset`), when most of the picture changed at once, and at least every
  ``full_every_seconds`` (a safety refresh: a person standing still is found again);
- **gated** in between, with motion gating on: the padded moving areas (:mod:`metrosight.detect.motion`) and the
  padded predicted boxes of live tracks, merged and cut to the regions; nothing at all when nothing moved and no
  face is tracked. When the areas would cover most of the frame they are searched as one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metrosight.config.detection import CameraDetectionConfig, GatingConfig, RegionXY
from metrosight.config.model import Settings
from metrosight.core.types import Box
from metrosight.detect.areas import intersect, merge, pad, to_pixels
from metrosight.detect.motion import MotionDetector

#: the smallest padding of a moving area, as a share of the frame's shorter side
MIN_PAD = 0.03


@dataclass(frozen=True, slots=True)
class DetectionPlan:
    """Where to search one frame.

    Attributes:
        areas: rectangles to search, frame pixels; ``None`` for the whole frame (no regions, full detection: the
            detector is called as without gating); empty when nothing needs searching (the frame is gated).
        full: every region (or the whole frame) is searched.
        reason: why: ``always`` (gating off), ``first``, ``cut``, ``refresh``, ``global`` (most of the picture
            changed), ``wide`` (the areas cover most of the frame), ``motion`` or ``idle`` (nothing to search).
        share: share of the frame's pixels searched, 0..1.
    """

    areas: tuple[Box, ...] | None
    full: bool
    reason: str
    share: float


class DetectionGate:
    """Plans face detection for one camera's frames.

    Args:
        cfg: motion gating settings (``detection.gating``).
        enabled: motion gating on for this camera (``cameras[].detection.gating``, else ``cfg.enabled``).
        regions: normalised ``(x1, y1, x2, y2)`` rectangles where faces can appear; None for the whole frame.
    """

    def __init__(self, cfg: GatingConfig, enabled: bool, regions: Sequence[RegionXY] | None = None) -> None:
        self.cfg = cfg
        self.enabled = enabled
        self.regions = tuple(regions) if regions else None
        self.motion = (
            MotionDetector(cfg.work_width, cfg.threshold, cfg.background_seconds, cfg.min_area) if enabled else None
        )
        self._last_full: float | None = None

    def reset(self) -> None:
        """The source reconnected or ended: the next frame gets a full detection and a fresh background."""
        self._last_full = None
        if self.motion is not None:
            self.motion.reset()

    def _base(self, width: int, height: int) -> list[Box]:
        """The regions in pixels (not merged: their bounding box could reach outside them), or the whole frame."""
        if self.regions is None:
            return [Box(0.0, 0.0, float(width), float(height))]
        return [to_pixels(r, width, height) for r in self.regions]

    def region_boxes(self, width: int, height: int) -> list[Box] | None:
        """The detection regions in pixels of a ``width`` × ``height`` frame; None when the whole frame is searched
        (where a face can be found at all, e.g. for blurring what was never searched)."""
        return None if self.regions is None else self._base(width, height)

    def _full(self, base: list[Box], width: int, height: int, reason: str, ts: float) -> DetectionPlan:
        self._last_full = ts
        areas = None if self.regions is None else tuple(base)
        return DetectionPlan(areas, True, reason, _share(base, width, height))

    def plan(self, image: np.ndarray, ts: float, tracked: Sequence[Box], cut: bool) -> DetectionPlan:
        """Where to search the frame ``image`` (``(H, W, 3)`` uint8 RGB) at media time ``ts`` (seconds).

        Args:
            image: the frame (the motion detector's input when gating is on).
            ts: its media time, seconds.
            tracked: the predicted boxes of the live face tracks at ``ts``, frame pixels.
            cut: the frame starts a new shot (scene cut).

        Returns:
            The :class:`DetectionPlan`.
        """
        height, width = image.shape[:2]
        base = self._base(width, height)
        if self.motion is None:
            return self._full(base, width, height, "always", ts)
        if cut:
            self.motion.reset()
        moved = self.motion.update(image, ts)
        last = self._last_full  # media time going backwards (a stream restarting its clock) is due at once too
        due = last is None or ts < last or ts - last >= self.cfg.full_every_seconds
        if due or cut or moved.global_change:
            why = (
                "first" if self._last_full is None else "cut" if cut else "global" if moved.global_change else "refresh"
            )
            return self._full(base, width, height, why, ts)
        min_px = MIN_PAD * min(width, height)
        wanted = [pad(b, self.cfg.pad, min_px, width, height) for b in moved.boxes]
        wanted += [pad(b, self.cfg.track_pad, min_px, width, height) for b in tracked]
        areas = [a for w in merge(wanted) for r in base if (a := intersect(w, r)) is not None]
        if not areas:
            return DetectionPlan((), False, "idle", 0.0)
        share = _share(areas, width, height)
        if share > self.cfg.max_share * _share(base, width, height):
            return self._full(base, width, height, "wide", ts)
        return DetectionPlan(tuple(areas), False, "motion", share)


def _share(boxes: Sequence[Box], width: int, height: int) -> float:
    """Share of a ``width`` × ``height`` frame the (non-overlapping) ``boxes`` cover."""
    return min(1.0, sum(b.area for b in boxes) / float(width * height))


def gate_for(settings: Settings, camera_id: str) -> DetectionGate:
    """The detection gate of ``camera_id``: its regions and gating switch from ``cameras[]`` (a camera not listed
    there: the whole frame), the gating settings from ``detection.gating``."""
    cam = settings.camera(camera_id)
    own = cam.detection if cam is not None else CameraDetectionConfig()
    gating = settings.detection.gating
    return DetectionGate(gating, gating.enabled if own.gating is None else own.gating, own.regions)
