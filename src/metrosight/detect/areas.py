"""Face detection on parts of a frame: rectangles of the frame (detection regions, moving areas, predicted face
boxes) are cut out and scaled as the whole frame would have been scaled for the detector, so a face looks to the
network as it would in the whole frame; the faces found are then mapped back to frame pixels by the caller
(:class:`~metrosight.pipeline.phases.DetectionArea`) and their landmarks recomputed on the full-resolution frame
from :func:`landmark_box`. No I/O.

A face whose box reaches an edge of its area that is not an edge of the frame is *cut by the area*
(:func:`drop_cut_landmarks`): it is kept (tracked, blurred in snapshots) but loses its landmarks, so it is never
aligned, embedded or taken as a best shot — the same rule as a face cut by the frame's edge
(:func:`metrosight.recognize.quality.cut_by_edge`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from metrosight.core.types import Box, Detection
from metrosight.detect.base import FaceDetector

#: a face box this close (pixels of the detector's input) to an inner edge of its area counts as cut by it
EDGE_TOLERANCE = 2.0
#: smallest side of an area, pixels of the detector's input: smaller areas are grown about their centre
MIN_SIDE = 64
#: where areas overlap (overlapping regions), a face found in both is one face above this IoU
SAME_FACE_IOU = 0.3


@runtime_checkable
class ScalingFaceDetector(FaceDetector, Protocol):
    """A detector that scales frames itself (``scales_input``, e.g. CenterFace) and says how, so that a crop can be
    scaled the same way first, and which box its landmarks are computed from."""

    def working_scale(self, width: int, height: int) -> float:
        """The factor (≤ 1) by which a whole ``width`` × ``height`` frame is scaled for the network."""
        ...

    def landmark_box(self, box: Box) -> Box:
        """The box (frame pixels) the 5-point landmarker is given for a face with this detector's ``box``."""
        ...


def to_pixels(region: Sequence[float], width: int, height: int) -> Box:
    """A normalised ``(x1, y1, x2, y2)`` (0..1) as a box of whole pixels of a ``width`` × ``height`` frame."""
    x1, y1, x2, y2 = region
    eps = 1e-6  # 0.55 × 360 is 198.00000000000003 in floating point: still pixel 198
    return Box(
        float(np.floor(x1 * width + eps)),
        float(np.floor(y1 * height + eps)),
        float(np.ceil(x2 * width - eps)),
        float(np.ceil(y2 * height - eps)),
    )


def pad(box: Box, fraction: float, min_px: float, width: int, height: int) -> Box:
    """``box`` widened on every side by ``fraction`` of its larger side (at least ``min_px`` pixels), clipped to
    the frame."""
    p = max(fraction * max(box.width, box.height), min_px)
    return Box(box.x1 - p, box.y1 - p, box.x2 + p, box.y2 + p).clip(width, height)


def intersect(a: Box, b: Box) -> Box | None:
    """The overlap of ``a`` and ``b``, or None when it is empty."""
    box = Box(max(a.x1, b.x1), max(a.y1, b.y1), min(a.x2, b.x2), min(a.y2, b.y2))
    return box if box.width > 0 and box.height > 0 else None


def _touch(a: Box, b: Box) -> bool:
    return a.x1 <= b.x2 and b.x1 <= a.x2 and a.y1 <= b.y2 and b.y1 <= a.y2


def merge(boxes: Sequence[Box]) -> list[Box]:
    """Overlapping (or touching) boxes replaced by their bounding box, until no two overlap; in no set order."""
    out = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                if _touch(a, b):
                    out[i] = Box(min(a.x1, b.x1), min(a.y1, b.y1), max(a.x2, b.x2), max(a.y2, b.y2))
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    return out


def outside(boxes: Sequence[Box], areas: Sequence[Box]) -> list[Box]:
    """The ``boxes`` that overlap none of ``areas`` (faces of an earlier frame where this one was not searched)."""
    return [b for b in boxes if all(intersect(b, a) is None for a in areas)]


def grow(box: Box, min_side: float, width: int, height: int) -> Box:
    """``box`` grown about its centre to at least ``min_side`` pixels a side (within the frame), with its edges
    rounded outwards to whole pixels."""
    cx, cy = box.center
    w, h = max(box.width, min(min_side, width)), max(box.height, min(min_side, height))
    x1 = min(max(0.0, cx - w / 2), width - w)
    y1 = min(max(0.0, cy - h / 2), height - h)
    return Box(
        float(np.floor(x1)),
        float(np.floor(y1)),
        float(min(width, np.ceil(x1 + w))),
        float(min(height, np.ceil(y1 + h))),
    )


def frame_scale(detector: FaceDetector, width: int, height: int, max_width: int) -> float:
    """The factor a whole ``width`` × ``height`` frame is searched at: the detector's own for one that scales
    frames itself (:class:`ScalingFaceDetector`; 1 for one that does not say), else ``max_width / width`` for
    frames wider than ``max_width`` (``detection.max_width``), else 1."""
    if isinstance(detector, ScalingFaceDetector):
        return detector.working_scale(width, height)
    if detector.scales_input:
        return 1.0
    return min(1.0, max_width / width)


def grid_step(scale: float, most: int = 64) -> int:
    """The smallest whole number of frame pixels ``n`` (≤ ``most``) that ``scale`` maps to whole pixels: a crop that
    starts at a multiple of ``n`` is resampled on the same pixel grid as the whole frame (its pixels are those of the
    scaled whole frame, not a shifted resampling); 1 when there is none."""
    for n in range(1, most + 1):
        if abs(n * scale - round(n * scale)) < 1e-6:
            return n
    return 1


def _on_grid(window: Box, n: int, width: int, height: int) -> Box:
    """``window`` (whole pixels) widened so that its corners lie on multiples of ``n`` (or the frame's edges)."""
    x1, y1 = n * int(window.x1 // n), n * int(window.y1 // n)
    x2 = min(width, x1 + n * int(np.ceil((window.x2 - x1) / n)))
    y2 = min(height, y1 + n * int(np.ceil((window.y2 - y1) / n)))
    return Box(float(x1), float(y1), float(x2), float(y2))


def crops(image: np.ndarray, windows: Sequence[Box], scale: float) -> list[tuple[np.ndarray, Box, float]]:
    """The images the detector is given for ``windows`` of ``image``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB frame.
        windows: areas to search, frame pixels.
        scale: the factor the whole frame would be searched at (:func:`frame_scale`).

    Returns:
        Per window ``(crop, window, frame pixels per crop pixel)``: the window grown to :data:`MIN_SIDE` detector
        pixels, rounded outwards to the scale's pixel grid (:func:`grid_step`), cut out and scaled by ``scale``.
    """
    import cv2  # OpenCV: heavy, loaded on first use

    h, w = image.shape[:2]
    n = grid_step(scale) if scale < 1.0 else 1
    out = []
    for win in windows:
        window = _on_grid(grow(win, MIN_SIDE / scale, w, h), n, w, h)
        x1, y1, x2, y2 = (int(v) for v in window.as_tuple())
        crop = image[y1:y2, x1:x2]
        if scale < 1.0:
            size = (max(1, round((x2 - x1) * scale)), max(1, round((y2 - y1) * scale)))
            # as for a whole frame: area averaging only when shrinking 2× or more (bilinear is ~5× cheaper)
            interp = cv2.INTER_AREA if scale <= 0.5 else cv2.INTER_LINEAR
            crop = cv2.resize(crop, size, interpolation=interp)
        out.append((np.ascontiguousarray(crop), window, 1.0 / scale if scale < 1.0 else 1.0))
    return out


def landmark_box(detector: FaceDetector, box: Box) -> Box:
    """The box the landmarker is given for a face the ``detector`` found with ``box`` (frame pixels)."""
    return detector.landmark_box(box) if isinstance(detector, ScalingFaceDetector) else box


def cut_by_window(box: Box, window: Box, width: int, height: int, tol: float) -> bool:
    """Whether ``box`` reaches an edge of ``window`` (within ``tol`` pixels) that is not an edge of the
    ``width`` × ``height`` frame (an edge within ``tol`` of the frame's is the frame's)."""
    return (
        (window.x1 > tol and box.x1 <= window.x1 + tol)
        or (window.y1 > tol and box.y1 <= window.y1 + tol)
        or (window.x2 < width - tol and box.x2 >= window.x2 - tol)
        or (window.y2 < height - tol and box.y2 >= window.y2 - tol)
    )


def drop_cut_landmarks(dets: Sequence[Detection], window: Box, size: tuple[int, int], tol: float) -> list[Detection]:
    """``dets`` (frame pixels) with the landmarks of each face cut by an inner edge of ``window`` removed (never a
    best shot); ``size`` is the frame's ``(width, height)``, ``tol`` the edge tolerance in frame pixels."""
    w, h = size
    return [
        Detection(d.box, d.score, None, d.kind, d.yaw) if cut_by_window(d.box, window, w, h, tol) else d for d in dets
    ]


def dedupe(dets: Sequence[Detection]) -> list[Detection]:
    """One detection a face where areas overlapped: of faces overlapping above :data:`SAME_FACE_IOU`, the whole one
    (with landmarks) with the best score; order kept otherwise."""
    ranked = sorted(range(len(dets)), key=lambda i: (dets[i].landmarks is None, -dets[i].score))
    kept: list[int] = []
    for i in ranked:
        if all(dets[i].box.iou(dets[k].box) <= SAME_FACE_IOU for k in kept):
            kept.append(i)
    return [dets[i] for i in sorted(kept)]
