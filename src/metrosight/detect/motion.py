"""A cheap per-camera motion detector: where in the frame something moved (numpy and OpenCV, no I/O).

Each frame is shrunk to a small grey copy (``work_width`` pixels wide), blurred, and compared
with a running background (an exponential average whose time constant is ``background_seconds`` of media time).
Pixels that differ by more than ``threshold`` grey levels are motion; the mask is dilated and its connected
components above ``min_area`` become the moving rectangles, in the frame's pixels.

Lighting: a change that brightens or darkens the whole picture (lamps switched on, automatic exposure) shifts
every pixel's difference by the same amount; that shift (the median difference) is taken off before
thresholding, so it is not motion. A change that still leaves most of the picture different (a scene cut, a
non-uniform lighting change) is reported as :attr:`Motion.global_change`, and the background restarts from the
current frame: the caller then searches the whole frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from metrosight.core.types import Box

#: share of the picture that, once moving, makes the change global (not worth boxes: search everything)
GLOBAL_SHARE = 0.4


@dataclass(frozen=True, slots=True)
class Motion:
    """What moved in one frame.

    Attributes:
        boxes: the moving rectangles, frame pixels (``x2``/``y2`` exclusive), largest first.
        share: the share of the picture that moved, 0..1.
        global_change: most of the picture changed (the first frame, a cut, a lighting change the median shift
            does not explain): the caller should search the whole frame.
    """

    boxes: tuple[Box, ...]
    share: float
    global_change: bool


class MotionDetector:
    """Moving areas of one camera's frames, against a running background.

    Args:
        work_width: width of the grey copy compared, pixels (its height keeps the frame's aspect).
        threshold: grey-level difference (0..255) from the background that counts as motion.
        background_seconds: time constant of the background average, media seconds.
        min_area: connected components smaller than this share of the picture are dropped (noise).
    """

    def __init__(
        self,
        work_width: int = 160,
        threshold: int = 18,
        background_seconds: float = 1.5,
        min_area: float = 0.0005,
    ) -> None:
        if work_width < 8:
            raise ValueError(f"work_width must be at least 8 pixels, got {work_width}")
        if not 0 < threshold < 256:
            raise ValueError(f"threshold must be in 1..255, got {threshold}")
        if background_seconds <= 0:
            raise ValueError(f"background_seconds must be positive, got {background_seconds}")
        self.work_width = int(work_width)
        self.threshold = float(threshold)
        self.background_seconds = float(background_seconds)
        self.min_area = float(min_area)
        self._background: np.ndarray | None = None
        self._last_ts: float | None = None

    def reset(self) -> None:
        """Forget the background (a reconnect or a cut): the next frame is a global change."""
        self._background = None
        self._last_ts = None

    def grey(self, image: np.ndarray) -> np.ndarray:
        """The blurred grey copy of ``image`` (``(H, W, 3)`` uint8 RGB) that is compared: ``(h, work_width)``
        float32, h keeping the aspect ratio."""
        import cv2  # OpenCV: heavy, loaded on first use

        h, w = image.shape[:2]
        small_w = min(self.work_width, w)
        small_h = max(1, round(h * small_w / w))
        step = max(1, min(w // (2 * small_w), h // (2 * small_h)))  # subsample first: ≥ 4 samples a pixel remain
        small = cv2.resize(image[::step, ::step], (small_w, small_h), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        return cv2.GaussianBlur(grey, (3, 3), 0).astype(np.float32)

    def update(self, image: np.ndarray, ts: float) -> Motion:
        """Compare ``image`` with the background, then fold it into the background.

        Args:
            image: ``(H, W, 3)`` uint8 RGB frame.
            ts: its media time, seconds (sets how much of it enters the background).

        Returns:
            The :class:`Motion` of this frame; the first frame after construction or :meth:`reset` is a global
            change with no boxes.
        """
        mask, share = self._compare(image, ts)
        if mask is None:
            return Motion((), share, True)
        return Motion(self._boxes(mask, image.shape[1], image.shape[0]), share, False)

    def moving_fraction(self, image: np.ndarray, ts: float) -> float:
        """The share (0..1) of ``image`` (``(H, W, 3)`` uint8 RGB, media time ``ts`` in seconds) that moved, as
        :meth:`update` finds it without the rectangles; a global change (the first frame, a cut, a lighting change
        the median shift does not explain) is 1.0. Used by the analytics worker to skip person detection."""
        mask, share = self._compare(image, ts)
        return 1.0 if mask is None else share

    def _compare(self, image: np.ndarray, ts: float) -> tuple[np.ndarray | None, float]:
        """The motion mask of ``image`` (uint8 0/1 on the grey copy) and its moving share, folding the frame into
        the background; the mask is ``None`` on a global change (the background then restarts from this frame)."""
        grey = self.grey(image)
        bg, last = self._background, self._last_ts
        self._last_ts = ts
        if bg is None or bg.shape != grey.shape or last is None:
            self._background = grey
            return None, 1.0
        diff = grey - bg
        shift = float(np.median(diff))
        diff -= shift  # a uniform brightening or darkening is lighting, not motion
        mask = (np.abs(diff) > self.threshold).astype(np.uint8)
        share = float(mask.mean())
        if share > GLOBAL_SHARE:
            self._background = grey
            return None, share
        alpha = 1.0 - math.exp(-max(0.0, ts - last) / self.background_seconds) if ts > last else 0.0
        # the background follows the frame slowly; the lighting shift is absorbed at once through the median
        self._background = (1.0 - alpha) * (bg + shift) + alpha * grey
        return mask, share

    def _boxes(self, mask: np.ndarray, width: int, height: int) -> tuple[Box, ...]:
        """The dilated mask's connected components with at least ``min_area`` of moving pixels, in frame pixels,
        largest first."""
        import cv2  # OpenCV: heavy, loaded on first use

        if not mask.any():
            return ()
        grown = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=2)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
        moving = np.bincount(labels[mask > 0], minlength=n)  # moving pixels of each blob, before dilation
        sh, sw = mask.shape
        fx, fy = width / sw, height / sh
        min_px = self.min_area * sw * sh
        found = []
        for i, (x, y, w, h, _) in enumerate(stats[1:n].tolist(), start=1):
            area = int(moving[i])
            if area < min_px:
                continue
            found.append((area, Box(x * fx, y * fy, min(width, (x + w) * fx), min(height, (y + h) * fy))))
        found.sort(key=lambda t: -t[0])
        return tuple(b for _, b in found)
