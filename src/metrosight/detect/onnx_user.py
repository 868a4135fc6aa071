"""A user-supplied YuNet ONNX face detector, run by OpenCV's ``cv2.FaceDetectorYN``.

metrosight ships no YuNet weights (no registry package carries them); this backend lets a user point at a YuNet
ONNX file they obtained themselves. Landmarks come from dlib's 5-point predictor on YuNet's box, so they follow
dlib's order and conventions like every other backend.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from metrosight.core.types import Box, Detection
from metrosight.detect.base import DetectorError, check_image
from metrosight.detect.landmarks import FivePointLandmarker

logger = logging.getLogger(__name__)

# YuNet box (x, y, w, h) -> dlib-style square box: x += ox * w, y += oy * h, side = sw * w (medians over the 43
# faces of dlib's annotated photos). dlib's 5-point predictor was trained on such boxes; fed YuNet's own (taller)
# boxes its points are ~2× less accurate.
_TO_DLIB = (-0.09, 0.14, 1.11)


class YuNetOnnxDetector:
    """OpenCV YuNet from an ONNX file given by path (loaded on first use, re-sized to each frame's size).

    Args:
        model_path: path of a YuNet ``.onnx`` (e.g. ``face_detection_yunet_2023mar.onnx``).
        score_threshold: minimum face score in [0, 1].
        nms_threshold: IoU above which overlapping boxes are suppressed.
        landmarks: also compute dlib 5-point landmarks for each face.
        dlib_boxes: return boxes in dlib's convention (square, brow to chin) instead of YuNet's own; the
            landmarks are always computed on the dlib-style box.

    Raises:
        DetectorError: when ``model_path`` does not exist (checked at construction) or is not a YuNet model
            (checked when first loaded).
    """

    name = "yunet-onnx"
    scales_input = False  # give it frames downscaled to detection.max_width

    def __init__(
        self,
        model_path: str | Path,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        landmarks: bool = True,
        dlib_boxes: bool = True,
    ) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise DetectorError(f"YuNet ONNX model not found: {self.model_path}")
        if not 0.0 <= score_threshold <= 1.0:
            raise DetectorError(f"score_threshold must be in [0, 1], got {score_threshold}")
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.dlib_boxes = bool(dlib_boxes)
        self._landmarker = FivePointLandmarker() if landmarks else None
        self._net: Any = None
        self._size: tuple[int, int] | None = None

    def _load(self, width: int, height: int) -> Any:
        import cv2  # OpenCV: heavy, loaded on first use

        if self._net is None:
            try:
                self._net = cv2.FaceDetectorYN.create(
                    str(self.model_path), "", (width, height), self.score_threshold, self.nms_threshold, 5000
                )
            except cv2.error as exc:
                raise DetectorError(f"not a YuNet ONNX model: {self.model_path} ({exc.msg.strip()})") from exc
            self._size = (width, height)
        if self._size != (width, height):
            self._net.setInputSize((width, height))
            self._size = (width, height)
        return self._net

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in ``image`` (``(H, W, 3)`` uint8 RGB); see :class:`~metrosight.detect.base.FaceDetector`."""
        import cv2  # OpenCV: heavy, loaded on first use

        image = check_image(image)
        h, w = image.shape[:2]
        net = self._load(w, h)
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        try:
            _, faces = net.detect(bgr)
        except cv2.error as exc:
            raise DetectorError(f"YuNet model {self.model_path} failed to run: {exc.msg.strip()}") from exc
        out: list[Detection] = []
        if faces is None:
            return out
        for row in faces:
            x, y, bw, bh = (float(v) for v in row[:4])
            ox, oy, sw = _TO_DLIB
            dx, dy = x + ox * bw, y + oy * bh
            dbox = Box(dx, dy, dx + sw * bw, dy + sw * bw).clip(w, h)
            box = dbox if self.dlib_boxes else Box(x, y, x + bw, y + bh).clip(w, h)
            if box.area <= 0 or dbox.area <= 0:
                continue
            lm = self._landmarker(image, dbox) if self._landmarker is not None else None
            out.append(Detection(box=box, score=float(row[14]), landmarks=lm))
        return out
