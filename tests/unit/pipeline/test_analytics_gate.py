"""The analytics worker's motion gate (detect/motion.py): which frames the person detector sees."""

from __future__ import annotations

import numpy as np

from metrosight.config.model import AnalyticsConfig
from metrosight.core.types import Box, Detection, Frame
from metrosight.detect.motion import MotionDetector
from metrosight.pipeline.analytics import AnalyticsPipeline, make_analytics_worker


def _scene(h: int = 240, w: int = 320) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.integers(60, 180, size=(h // 20, w // 20, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.repeat(np.repeat(base, 20, axis=0), 20, axis=1))


class CountingDetector:
    """Finds nobody; records the media time of each frame it is asked about."""

    def __init__(self) -> None:
        self.seen: list[float] = []
        self.ts = 0.0

    def detect(self, image: np.ndarray) -> list[Detection]:
        self.seen.append(self.ts)
        return []


def _run(frames: list[np.ndarray], fps: float = 10.0) -> list[float]:
    det = CountingDetector()
    cfg = AnalyticsConfig(refresh_seconds=100.0)
    pipe = AnalyticsPipeline(cfg, "cam", det, lambda e: None, motion_gate=MotionDetector())
    for i, img in enumerate(frames):
        det.ts = i / fps
        pipe.process(Frame(image=img, ts=i / fps, index=i, camera_id="cam"))
    return det.seen


def test_still_view_is_searched_once_and_someone_entering_is_searched():
    bg = _scene()
    frames = [bg.copy() for _ in range(10)]
    walker = bg.copy()
    walker[100:160, 150:180] = 250  # a person-sized bright area appears at frame 10
    frames += [walker, walker.copy()]
    seen = _run(frames)
    assert seen[0] == 0.0  # the first frame: no background yet, search everything
    assert all(ts >= 1.0 for ts in seen[1:]), seen  # the still frames 1..9 are skipped
    assert 1.0 in seen  # the frame in which someone appears is searched


def test_the_worker_the_cli_builds_gates_with_the_motion_detector():
    pipe = make_analytics_worker(AnalyticsConfig(), "cam", None, lambda e: None, lambda u: None, None)
    assert isinstance(pipe.gate, MotionDetector)


def test_a_live_track_keeps_detection_running_without_motion():
    bg = _scene()

    class OneStill(CountingDetector):
        def detect(self, image: np.ndarray) -> list[Detection]:
            super().detect(image)
            return [Detection(Box(100, 60, 140, 200), 1.0, kind="person")]

    det = OneStill()
    pipe = AnalyticsPipeline(
        AnalyticsConfig(refresh_seconds=100.0), "cam", det, lambda e: None, motion_gate=MotionDetector()
    )
    there = bg.copy()
    there[60:200, 100:140] = 250  # someone arrives at frame 1 (motion: searched, the track is confirmed) ...
    for i in range(8):
        det.ts = i / 10
        pipe.process(Frame(image=(bg if i == 0 else there).copy(), ts=i / 10, index=i, camera_id="cam"))
    assert len(det.seen) == 8  # ... and stands still: searched every frame, not lost to the gate
