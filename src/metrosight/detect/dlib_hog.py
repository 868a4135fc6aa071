"""dlib's HOG + linear SVM frontal face detector.

Accurate on frontal faces of 40 px and more at ``upsample=1`` but slow (~400 ms a 720p frame on one core); kept as
a reference and for still photos. Weights are built into dlib.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from metrosight.core.types import Box, Detection
from metrosight.detect.base import DetectorError, check_image, clipped_detection
from metrosight.detect.landmarks import FivePointLandmarker

logger = logging.getLogger(__name__)


class HogFaceDetector:
    """dlib HOG face detector (``dlib.get_frontal_face_detector``), loaded on first use.

    Args:
        upsample: how many times dlib doubles the image before detecting (0: faces of 80 px and up; 1: 40 px).
        landmarks: also compute dlib 5-point landmarks for each face.
        score_threshold: keep detections whose SVM score is at least this (dlib's own default is 0).
    """

    name = "hog"
    scales_input = False  # give it frames downscaled to detection.max_width

    def __init__(self, upsample: int = 1, landmarks: bool = True, score_threshold: float = 0.0) -> None:
        if upsample < 0:
            raise DetectorError(f"upsample must be >= 0, got {upsample}")
        self.upsample = int(upsample)
        self.score_threshold = float(score_threshold)
        self._landmarker = FivePointLandmarker() if landmarks else None
        self._detector: Any = None

    def _load(self) -> Any:
        if self._detector is None:
            import dlib  # dlib: heavy optional backend, loaded on first use

            self._detector = dlib.get_frontal_face_detector()
        return self._detector

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in ``image`` (``(H, W, 3)`` uint8 RGB); see :class:`~metrosight.detect.base.FaceDetector`."""
        image = check_image(image)
        detector = self._load()
        rects, scores, _ = detector.run(image, self.upsample, self.score_threshold)
        out: list[Detection] = []
        for rect, score in zip(rects, scores, strict=True):
            box = Box(float(rect.left()), float(rect.top()), float(rect.right() + 1), float(rect.bottom() + 1))
            det = clipped_detection(image, box, score, self._landmarker)
            if det is not None:
                out.append(det)
        return out
