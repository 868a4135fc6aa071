"""Face alignment: 5-point landmarks → a 150×150 chip exactly as dlib's ``get_face_chip`` makes it.

The descriptor network was trained on such chips, so both embedder backends take them as input.
"""

from __future__ import annotations

import numpy as np

from metrosight.core.types import Box

CHIP_SIZE = 150
CHIP_PADDING = 0.25


class AlignmentError(Exception):
    """Landmarks are missing or malformed."""


def align(image: np.ndarray, box: Box, landmarks: np.ndarray | None) -> np.ndarray:
    """Cut the aligned face chip.

    Args:
        image: ``(H, W, 3)`` uint8 RGB frame.
        box: the face box in pixels.
        landmarks: ``(5, 2)`` pixel coordinates in dlib's 5-point order.

    Returns:
        ``(150, 150, 3)`` uint8 RGB chip.

    Raises:
        AlignmentError: ``landmarks`` is None or not ``(5, 2)``.
    """
    import dlib  # local: heavy import, and no model loading at import time

    if landmarks is None or np.shape(landmarks) != (5, 2):
        raise AlignmentError(
            f"need (5, 2) landmarks to align a face, got {None if landmarks is None else np.shape(landmarks)}"
        )
    rect = dlib.rectangle(int(round(box.x1)), int(round(box.y1)), int(round(box.x2)) - 1, int(round(box.y2)) - 1)
    points = dlib.points()
    for x, y in np.asarray(landmarks, dtype=np.float64):
        points.append(dlib.point(int(round(x)), int(round(y))))
    shape = dlib.full_object_detection(rect, points)
    chip = dlib.get_face_chip(np.ascontiguousarray(image), shape, size=CHIP_SIZE, padding=CHIP_PADDING)
    return np.asarray(chip, dtype=np.uint8)


def context_crop(image: np.ndarray, box: Box, margin: float = 0.6, max_side: int = 256) -> tuple[np.ndarray, Box]:
    """A crop of the face with ``margin`` × box size of context on each side, at most ``max_side`` pixels.

    Returns:
        The crop (uint8 RGB, a copy) and the region of the frame it covers.
    """
    import cv2  # OpenCV: heavy, loaded on first use

    h, w = image.shape[:2]
    mx, my = box.width * margin, box.height * margin
    region = Box(box.x1 - mx, box.y1 - my, box.x2 + mx, box.y2 + my).clip(w, h)
    x1, y1, x2, y2 = (int(round(v)) for v in region.as_tuple())
    crop = image[y1:y2, x1:x2].copy()
    side = max(crop.shape[:2]) if crop.size else 0
    if side > max_side:
        scale = max_side / side
        crop = cv2.resize(crop, (max(1, int(crop.shape[1] * scale)), max(1, int(crop.shape[0] * scale))))
    return crop, Box(float(x1), float(y1), float(x2), float(y2))
