"""Person detection (OpenCV 4.x HOG people detectors); motion gating is :mod:`metrosight.detect.motion`.

Both HOG detectors ship inside ``opencv-python-headless`` 4.x (OpenCV 5 dropped ``HOGDescriptor``): Dalal-Triggs'
64×128 "default" people SVM and the 48×96 Daimler pedestrian SVM. Measured on the intel one-by-one video (people
seen from behind, 768×432) the Daimler detector at a quarter of the resolution finds a person in every frame in
which someone stands at the table (858/858) with no detection in the 313 empty frames, in 8.6 ms a frame; the
default detector at 0.4 of the resolution finds 670/858 in 21 ms (``bench/analytics.py`` reproduces the table).

The frame is padded (edge pixels replicated) before detection, so people cut by the frame's edge still fit the
detection window; HOG windows include a margin around the person, which is removed from the returned boxes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np

from metrosight.core.types import Box, Detection
from metrosight.detect.base import DetectorError, check_image

log = logging.getLogger(__name__)

# (window size, person box inside the window as fractions x1, y1, x2, y2)
_MODELS: Final[Mapping[str, tuple[tuple[int, int], tuple[float, float, float, float]]]] = MappingProxyType(
    {
        "daimler": ((48, 96), (0.2, 0.1, 0.8, 0.9)),
        "default": ((64, 128), (0.22, 0.12, 0.78, 0.88)),
    }
)


@dataclass(frozen=True, slots=True)
class HogParams:
    """Parameters of :class:`HogPersonDetector` (see ``config.model.PersonDetectorConfig``)."""

    model: str = "daimler"
    scale: float = 0.25
    hit_threshold: float = 0.0
    pyramid_step: float = 1.1
    pad_fraction: float = 0.25


class HogPersonDetector:
    """OpenCV's HOG + linear SVM people detector.

    Args:
        params: model (``"daimler"`` or ``"default"``), the image scale detection runs at, the SVM score a window
            must reach, the pyramid step, and the padding added around the frame (fraction of its height).

    Raises:
        DetectorError: unknown model or a bad parameter.
    """

    name = "hog-person"

    def __init__(self, params: HogParams = HogParams()) -> None:
        import cv2  # OpenCV: heavy, loaded on first use

        if params.model not in _MODELS:
            raise DetectorError(f"unknown HOG person model {params.model!r}; expected one of {sorted(_MODELS)}")
        if not 0.05 <= params.scale <= 2.0:
            raise DetectorError(f"person detector scale must be in [0.05, 2], got {params.scale}")
        if not hasattr(cv2, "HOGDescriptor"):
            raise DetectorError("this OpenCV has no HOGDescriptor (OpenCV 5 removed it): install opencv 4.x")
        self.params = params
        (w, h), self._inner = _MODELS[params.model]
        if params.model == "daimler":
            self._hog = cv2.HOGDescriptor((w, h), (16, 16), (8, 8), (8, 8), 9)
            self._hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDaimlerPeopleDetector(), np.float32))
        else:
            self._hog = cv2.HOGDescriptor()
            self._hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), np.float32))

    def detect(self, image: np.ndarray) -> list[Detection]:
        """People in ``image`` (``(H, W, 3)`` uint8 RGB): boxes in its pixels, clipped to it, ``kind="person"``."""
        import cv2  # OpenCV: heavy, loaded on first use

        image = check_image(image)
        p = self.params
        h, w = image.shape[:2]
        small = cv2.resize(
            image, (max(1, round(w * p.scale)), max(1, round(h * p.scale))), interpolation=cv2.INTER_AREA
        )
        pad = round(p.pad_fraction * small.shape[0])
        if pad:
            small = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        rects, weights = self._hog.detectMultiScale(
            small, hitThreshold=p.hit_threshold, winStride=(8, 8), padding=(0, 0), scale=p.pyramid_step
        )
        fx1, fy1, fx2, fy2 = self._inner
        out = []
        for (x, y, ww, hh), score in zip(np.asarray(rects).reshape(-1, 4), np.ravel(weights), strict=True):
            box = Box(
                (x + fx1 * ww - pad) / p.scale,
                (y + fy1 * hh - pad) / p.scale,
                (x + fx2 * ww - pad) / p.scale,
                (y + fy2 * hh - pad) / p.scale,
            ).clip(w, h)
            if box.width >= 4 and box.height >= 8:
                out.append(Detection(box=box, score=float(score), kind="person"))
        return out
