"""The motion detector: what it calls moving in frames built pixel by pixel."""

from __future__ import annotations

import numpy as np

from metrosight.detect.motion import MotionDetector


def scene(h: int = 360, w: int = 640, seed: int = 0) -> np.ndarray:
    """A textured still background, ``(h, w, 3)`` uint8."""
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 180, size=(h // 20 + 1, w // 20 + 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.repeat(np.repeat(base, 20, axis=0), 20, axis=1)[:h, :w])


def with_blob(image: np.ndarray, x: int, y: int, size: int = 60, value: int = 250) -> np.ndarray:
    out = image.copy()
    out[y : y + size, x : x + size] = value
    return out


def noisy(image: np.ndarray, seed: int, amp: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image.astype(np.int16) + rng.integers(-amp, amp + 1, image.shape), 0, 255).astype(np.uint8)


def test_first_frame_is_a_global_change_then_still_frames_move_nothing():
    md = MotionDetector()
    bg = scene()
    first = md.update(bg, 0.0)
    assert first.global_change and first.boxes == ()
    for i in range(1, 20):  # sensor noise of a few grey levels is not motion
        m = md.update(noisy(bg, i), i / 10)
        assert not m.global_change
        assert m.boxes == (), f"frame {i}: {m.boxes}"


def test_a_moving_blob_gives_its_rectangle_in_frame_pixels():
    md = MotionDetector()
    bg = scene()
    md.update(bg, 0.0)
    md.update(bg, 0.1)
    m = md.update(with_blob(bg, 300, 150), 0.2)
    assert not m.global_change and len(m.boxes) == 1
    b = m.boxes[0]
    # the blob (300..360, 150..210) is inside the box, and the box is not much larger (dilation adds a few pixels
    # of the 160-pixel copy, each 4 frame pixels)
    assert b.x1 <= 300 and b.y1 <= 150 and b.x2 >= 360 and b.y2 >= 210
    assert b.x1 >= 300 - 30 and b.y1 >= 150 - 30 and b.x2 <= 360 + 30 and b.y2 <= 210 + 30
    assert 0 < m.share < 0.1


def test_two_blobs_two_rectangles_largest_first():
    md = MotionDetector()
    bg = scene()
    md.update(bg, 0.0)
    frame = with_blob(with_blob(bg, 40, 40, size=40), 400, 200, size=90)
    m = md.update(frame, 0.1)
    assert len(m.boxes) == 2
    assert m.boxes[0].x1 >= 350 and m.boxes[1].x2 <= 120


def test_a_tiny_change_is_noise():
    md = MotionDetector(min_area=0.001)
    bg = scene()
    md.update(bg, 0.0)
    assert md.update(with_blob(bg, 300, 150, size=4), 0.1).boxes == ()


def test_what_stops_moving_becomes_background():
    md = MotionDetector(background_seconds=0.5)
    bg = scene()
    md.update(bg, 0.0)
    parked = with_blob(bg, 300, 150)
    assert md.update(parked, 0.1).boxes  # it arrives: motion
    for i in range(2, 40):  # it stays: after a few time constants it is scenery
        last = md.update(parked, i / 10)
    assert last.boxes == ()


def test_the_whole_picture_brightening_is_lighting_not_motion():
    md = MotionDetector()
    bg = scene()
    md.update(bg, 0.0)
    brighter = np.clip(bg.astype(np.int16) + 40, 0, 255).astype(np.uint8)
    m = md.update(brighter, 0.1)
    assert not m.global_change and m.boxes == ()
    # and a person entering the brighter scene right after is seen
    m = md.update(with_blob(brighter, 100, 100, value=10), 0.2)
    assert len(m.boxes) == 1 and m.boxes[0].x1 <= 100 <= m.boxes[0].x2


def test_a_change_of_most_of_the_picture_is_global_and_restarts_the_background():
    md = MotionDetector()
    md.update(scene(seed=0), 0.0)
    other = 255 - scene(seed=1)  # another shot (or a lighting change no uniform shift explains)
    m = md.update(other, 0.1)
    assert m.global_change and m.boxes == ()
    assert md.update(other, 0.2).boxes == ()  # the new picture is the background now


def test_reset_makes_the_next_frame_global():
    md = MotionDetector()
    bg = scene()
    md.update(bg, 0.0)
    md.reset()
    assert md.update(bg, 0.1).global_change


def test_moving_fraction_is_the_moving_share_and_one_on_a_global_change():
    # the analytics worker's gate: the same figure update() gives, without rectangles; 1.0 when all must be searched
    md, ref = MotionDetector(), MotionDetector()
    bg = scene()
    assert md.moving_fraction(bg, 0.0) == 1.0 and ref.update(bg, 0.0).global_change
    assert md.moving_fraction(noisy(bg, 1), 0.1) == ref.update(noisy(bg, 1), 0.1).share == 0.0
    moved = with_blob(bg, 300, 150)
    share = md.moving_fraction(moved, 0.2)
    assert share == ref.update(moved, 0.2).share and 0.005 < share < 0.05
    assert md.moving_fraction(255 - scene(seed=1), 0.3) == 1.0  # another shot
