"""Scene cuts on large frames: subsampling before the 64×36 signature keeps the verdicts."""

from __future__ import annotations

import cv2
import numpy as np

from metrosight.track.cuts import SceneCutDetector


def _scene(seed: int, lo: int, hi: int, size: tuple[int, int] = (1080, 1920)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(lo, hi, size=(size[0] // 40, size[1] // 40, 3), dtype=np.uint8)
    return cv2.resize(coarse, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def test_cut_on_1080p_frames_and_on_their_downscaled_copies() -> None:
    a = _scene(0, 0, 90)
    pan = np.roll(a, 40, axis=1)  # the same shot, the camera moved a little
    b = _scene(1, 120, 255)  # another shot
    seq = [a, pan, a, b, b]
    full = SceneCutDetector()
    small = SceneCutDetector()
    assert [full.is_cut(x) for x in seq] == [False, False, False, True, False]
    down = [cv2.resize(x, (1280, 720), interpolation=cv2.INTER_LINEAR) for x in seq]
    assert [small.is_cut(x) for x in down] == [False, False, False, True, False]


def test_signature_of_a_subsampled_frame_matches_the_full_one() -> None:
    a = _scene(2, 0, 255)
    sig = SceneCutDetector.signature(a)
    assert sig.shape == (4, 16)
    ref = cv2.resize(a, (64, 36), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(ref, cv2.COLOR_RGB2GRAY)
    quads = [grey[:18, :32], grey[:18, 32:], grey[18:, :32], grey[18:, 32:]]
    hist = np.stack([np.bincount((q // 16).ravel(), minlength=16) for q in quads]).astype(np.float64)
    hist /= hist.sum(axis=1, keepdims=True)
    assert np.minimum(sig, hist).sum(axis=1).mean() > 0.9  # histogram intersection with the unsubsampled one
