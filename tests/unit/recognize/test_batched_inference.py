"""Batched inference gives what one-at-a-time inference gives, with the real models: descriptors of a batch of
aligned faces equal each face's own (within 1e-5), and CenterFace on a batch of frames finds the faces it finds in
each frame alone; the batch is one inference call."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from metrosight.core.onnx_session import InferenceOptions, Session
from metrosight.core.types import Box, Detection
from metrosight.detect.base import detect_batch
from metrosight.detect.centerface_onnx import CenterFaceDetector
from metrosight.recognize.align import align
from metrosight.recognize.embedder_onnx import OnnxResNetEmbedder

SAMPLE = Path(__file__).resolve().parents[3] / "src" / "metrosight" / "sample"


def rgb(name: str) -> np.ndarray:
    bgr = cv2.imread(str(SAMPLE / name))
    assert bgr is not None, name
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def clip_frames(n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(SAMPLE / "short_hamilton_clip.mp4"))
    frames: list[np.ndarray] = []
    while len(frames) < n:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames[::4]


class CountingSession:
    """Counts the inference calls of a real session."""

    def __init__(self, inner: Session) -> None:
        self.inner, self.calls = inner, 0

    def run(self, names: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.calls += 1
        return self.inner.run(names, feed)


@pytest.fixture(scope="module")
def real_chips() -> np.ndarray:
    det = CenterFaceDetector()
    chips = []
    for name in ("obama.jpg", "biden.jpg", "lin-manuel-miranda-still.png"):
        image = rgb(name)
        chips += [align(image, d.box, d.landmarks) for d in det.detect(image) if d.landmarks is not None]
    for frame in clip_frames(40):
        chips += [align(frame, d.box, d.landmarks) for d in det.detect(frame) if d.landmarks is not None]
    assert len(chips) >= 8
    return np.stack(chips)


def test_batched_descriptors_equal_per_face_descriptors(real_chips: np.ndarray, tmp_path: Path) -> None:
    emb = OnnxResNetEmbedder(tmp_path, inference=InferenceOptions(max_batch=128))
    per_face = np.concatenate([emb.embed(c[None]) for c in real_chips])
    emb._session = CountingSession(emb._get_session())  # type: ignore[assignment]
    batched = emb.embed(real_chips)
    assert emb._session.calls == 1  # type: ignore[union-attr]
    assert batched.shape == per_face.shape == (len(real_chips), 128)
    assert np.abs(batched - per_face).max() <= 1e-5
    small = OnnxResNetEmbedder(tmp_path, inference=InferenceOptions(max_batch=3))
    assert np.abs(small.embed(real_chips) - per_face).max() <= 1e-5  # split into batches of 3: the same


def test_batched_detection_finds_what_each_frame_alone_finds() -> None:
    frames = clip_frames(40) + [rgb("obama.jpg"), rgb("biden.jpg")]  # two sizes: two groups
    det = CenterFaceDetector(inference=InferenceOptions(max_batch=8))
    alone = [det.detect(f) for f in frames]
    det._session = CountingSession(det._load())
    together = detect_batch(det, frames)
    sizes = {det._network_input(f)[0].shape for f in frames}
    n_clip = len(frames) - 2
    assert det._session.calls == -(-n_clip // 8) + len(sizes) - 1  # clip frames in batches of 8, photos alone
    assert sum(map(len, alone)) >= 10
    for a, b in zip(alone, together, strict=True):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert np.allclose(x.box.as_tuple(), y.box.as_tuple(), atol=0.05)
            assert abs(x.score - y.score) < 1e-4


def test_detectors_without_a_batched_path_are_run_frame_by_frame() -> None:
    class One:
        """A detector that finds one face the size of the frame."""

        name = "one"
        scales_input = False

        def detect(self, image: np.ndarray) -> list[Detection]:
            h, w = image.shape[:2]
            return [Detection(Box(0, 0, w, h), 1.0)]

    frames = [np.zeros((4, 6, 3), np.uint8), np.zeros((8, 2, 3), np.uint8)]
    found = detect_batch(One(), frames)
    assert [[d.box.as_tuple() for d in f] for f in found] == [[(0, 0, 6, 4)], [(0, 0, 2, 8)]]
