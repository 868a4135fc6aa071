"""CenterFace's network outputs to boxes, scores and landmarks, and its boxes to dlib's convention (pure numpy)."""

from __future__ import annotations

import numpy as np

from metrosight.core.types import Box
from metrosight.detect.base import nms_boxes
from metrosight.detect.landmarks import nose_offset_ratio

_STRIDE = 4  # the output grid's stride, input pixels

# CenterFace box (x1, y1, w, h) -> dlib-style square box: x1 += ox * w, y1 += oy * h, side = sw * w (medians over the
# 43 faces of dlib's annotated photos). dlib's 5-point predictor was trained on such boxes.
_TO_DLIB = (-0.103, 0.127, 1.109)


def decode(
    heatmap: np.ndarray,
    log_size: np.ndarray,
    offset: np.ndarray,
    landmarks: np.ndarray,
    threshold: float,
    nms_threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes and CenterFace's own landmarks from one image's network outputs, in network-input pixels.

    Args:
        heatmap: ``(h, w)`` face-centre scores in [0, 1] on the stride-4 grid.
        log_size: ``(2, h, w)`` log of (height, width) / 4 at each cell.
        offset: ``(2, h, w)`` sub-cell (y, x) offset of the centre.
        landmarks: ``(10, h, w)`` five (y, x) points as fractions of the box's height and width from its top-left
            corner, in the order: eye on the image's left, the other eye, nose tip, mouth corners.
        threshold: minimum heatmap score of a face.
        nms_threshold: IoU above which a lower-scored overlapping box is dropped.

    Returns:
        ``(boxes (N, 4) float32 x1 y1 x2 y2, scores (N,) float32, points (N, 5, 2) float32 x y)``, best score
        first.
    """
    ys, xs = np.nonzero(heatmap > threshold)
    if ys.size == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
    h = np.exp(log_size[0, ys, xs]) * _STRIDE
    w = np.exp(log_size[1, ys, xs]) * _STRIDE
    cy = (ys + offset[0, ys, xs] + 0.5) * _STRIDE
    cx = (xs + offset[1, ys, xs] + 0.5) * _STRIDE
    x1, y1 = cx - w / 2, cy - h / 2
    boxes = np.stack([x1, y1, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    scores = heatmap[ys, xs].astype(np.float32)
    lm = landmarks[:, ys, xs].T.reshape(-1, 5, 2)  # (n, 5, (y, x))
    points = np.stack([x1[:, None] + lm[:, :, 1] * w[:, None], y1[:, None] + lm[:, :, 0] * h[:, None]], axis=2)
    keep = nms_boxes(boxes, scores, nms_threshold)
    return boxes[keep], scores[keep], points[keep].astype(np.float32)


def yaw_from_points(points: np.ndarray) -> float:
    """How far a face is turned, from CenterFace's eye centres and nose tip: the nose tip's offset from the eyes'
    midpoint along the eye axis, in eye distances (0 frontal, growing as the head turns; the units of
    :func:`metrosight.recognize.quality.yaw_ratio`, ~1.1–1.2× its value on near-frontal LFW faces).

    Args:
        points: ``(5, 2)`` CenterFace landmarks (eyes, nose tip, mouth corners), pixels.
    """
    return nose_offset_ratio(points[0], points[1], points[2])


def dlib_style_box(box: Box) -> Box:
    """The dlib-convention square box (brow to chin) for a CenterFace box."""
    ox, oy, sw = _TO_DLIB
    x, y = box.x1 + ox * box.width, box.y1 + oy * box.height
    return Box(x, y, x + sw * box.width, y + sw * box.width)
