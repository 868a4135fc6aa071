"""The face-detector interface every backend implements.

A detector takes one RGB frame and returns the faces in it. Boxes are in the pixels of that frame; landmarks, when
computed, are the five points of dlib's ``shape_predictor_5_face_landmarks`` in dlib's order, so that the
recogniser can align them with ``dlib.get_face_chip``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from metrosight.core.types import Box, Detection


class DetectorError(RuntimeError):
    """A detector could not be built or could not run (missing model file, bad input, unknown backend)."""


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces in one frame.

    Attributes:
        name: short backend name, the ``kind`` of :data:`metrosight.detect.registry.FACE_DETECTORS`.
        scales_input: True for a backend that chooses its own working resolution: callers then give it
            full-resolution frames instead of downscaling them first (``detection.max_width``).
    """

    name: str
    scales_input: bool

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in ``image``.

        Args:
            image: ``(H, W, 3)`` uint8 RGB pixels.

        Returns:
            One :class:`~metrosight.core.types.Detection` a face: box in ``image`` pixels, a backend-specific score
            (higher is more confident), and ``(5, 2)`` float32 landmarks in dlib 5-point order or ``None``.
        """
        ...


@runtime_checkable
class BatchFaceDetector(FaceDetector, Protocol):
    """A face detector that also takes several frames in one inference call (frames of several cameras)."""

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Faces in each of ``images`` (``(H, W, 3)`` uint8 RGB), as :meth:`detect` gives them, in order."""
        ...


def detect_batch(detector: FaceDetector, images: Sequence[np.ndarray]) -> list[list[Detection]]:
    """Faces in each of ``images``: batched inference where the backend has it (:class:`BatchFaceDetector`), one
    frame at a time otherwise.

    Args:
        detector: any face detector.
        images: ``(H, W, 3)`` uint8 RGB frames.

    Returns:
        One list of detections a frame, in order.
    """
    if isinstance(detector, BatchFaceDetector):
        return detector.detect_batch(images)
    return [detector.detect(im) for im in images]


@runtime_checkable
class PersonDetector(Protocol):
    """Finds people in one frame (no identity).

    Attributes:
        name: short backend name.
    """

    name: str

    def detect(self, image: np.ndarray) -> list[Detection]:
        """People in ``image`` (``(H, W, 3)`` uint8 RGB): boxes in its pixels, ``kind="person"``."""
        ...


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate a frame given to ``detect``.

    Args:
        image: expected ``(H, W, 3)`` uint8 RGB.

    Returns:
        ``image`` as a C-contiguous array (a copy only when it was not contiguous).

    Raises:
        DetectorError: when the array has the wrong dtype or shape.
    """
    if not isinstance(image, np.ndarray):
        raise DetectorError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DetectorError(f"image must be (H, W, 3) uint8 RGB, got shape {image.shape} dtype {image.dtype}")
    return np.ascontiguousarray(image)


def clipped_detection(
    image: np.ndarray,
    box: Box,
    score: float,
    landmarker: Callable[[np.ndarray, Box], np.ndarray] | None,
) -> Detection | None:
    """A detection with ``box`` clipped to ``image`` (``(H, W, 3)``) and, when a landmarker is given, its 5-point
    landmarks on the clipped box; ``None`` when nothing of the box is inside the image."""
    h, w = image.shape[:2]
    box = box.clip(w, h)
    if box.area <= 0:
        return None
    lm = landmarker(image, box) if landmarker is not None else None
    return Detection(box=box, score=float(score), landmarks=lm)


def nms_boxes(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first.

    Args:
        boxes: ``(N, 4)`` float x1 y1 x2 y2 (exclusive right/bottom edges).
        scores: ``(N,)`` higher is better.
        threshold: IoU above which the lower-scored of two boxes is dropped.
    """
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    import cv2  # OpenCV: heavy, loaded on first use

    rects = np.concatenate([boxes[:, :2], boxes[:, 2:4] - boxes[:, :2]], axis=1).astype(np.float64)
    keep = cv2.dnn.NMSBoxes(rects, scores.astype(np.float32), 0.0, float(threshold))  # type: ignore[arg-type]
    return np.asarray(keep, dtype=np.int64).reshape(-1)
