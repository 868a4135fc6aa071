"""Redaction: blur faces that must not be stored."""

from __future__ import annotations

import numpy as np

from metrosight.core.types import Box


def blur_boxes(image: np.ndarray, boxes: list[Box], grow: float = 0.15) -> np.ndarray:
    """A copy of ``image`` (``(H, W, 3)`` uint8) with every box (pixels, grown by ``grow`` × its size) blurred
    beyond recognition (pixelated, then Gaussian-smoothed)."""
    import cv2  # OpenCV: heavy, loaded on first use

    out = image.copy()
    h, w = out.shape[:2]
    for b in boxes:
        gx, gy = b.width * grow, b.height * grow
        x1, y1, x2, y2 = (int(round(v)) for v in Box(b.x1 - gx, b.y1 - gy, b.x2 + gx, b.y2 + gy).clip(w, h).as_tuple())
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        region = out[y1:y2, x1:x2]
        small = cv2.resize(region, (max(1, (x2 - x1) // 12), max(1, (y2 - y1) // 12)), interpolation=cv2.INTER_AREA)
        region = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
        k = max(3, ((x2 - x1) // 4) | 1)
        out[y1:y2, x1:x2] = cv2.GaussianBlur(region, (k, k), 0)
    return out


def redacted_crop(
    image: np.ndarray, region: Box, keep: Box, others: list[Box], searched: list[Box] | None = None
) -> np.ndarray:
    """The ``region`` of ``image`` with every face in ``others`` that overlaps it blurred, except ``keep``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB frame.
        region: the crop, in frame pixels.
        keep: the face that stays visible (the matched person).
        others: all other face boxes in the frame.
        searched: the only parts of the frame faces are ever looked for in (a camera's detection regions, frame
            pixels), or None for the whole frame: the rest of the crop is blurred as well, since a face there was
            never detected and so cannot be blurred on its own.
    """
    x1, y1, x2, y2 = (int(round(v)) for v in region.as_tuple())
    crop = image[y1:y2, x1:x2]
    shifted = [
        Box(b.x1 - x1, b.y1 - y1, b.x2 - x1, b.y2 - y1)
        for b in others
        if b is not keep and b.iou(keep) < 0.5 and b.x2 > x1 and b.y2 > y1 and b.x1 < x2 and b.y1 < y2
    ]
    out = blur_boxes(crop, shifted) if shifted else crop.copy()
    if searched is None or not out.size:
        return out
    visible = np.zeros(out.shape[:2], dtype=bool)
    for a in [*searched, keep]:
        ax1, ay1 = max(0, int(np.floor(a.x1)) - x1), max(0, int(np.floor(a.y1)) - y1)
        ax2, ay2 = int(np.ceil(a.x2)) - x1, int(np.ceil(a.y2)) - y1
        if ax2 > ax1 and ay2 > ay1:
            visible[ay1:ay2, ax1:ax2] = True
    if visible.all():
        return out
    hidden = blur_boxes(out, [Box(0.0, 0.0, float(out.shape[1]), float(out.shape[0]))], grow=0.0)
    return np.where(visible[..., None], out, hidden)
