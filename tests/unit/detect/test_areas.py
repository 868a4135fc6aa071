"""Detection on parts of a frame: rectangles, crops searched at the frame's scale, faces mapped back to frame pixels
(through the pipeline's DetectionArea), faces cut by a crop's edge."""

from __future__ import annotations

import numpy as np
import pytest

from metrosight.core.types import Box, Detection
from metrosight.detect.areas import (
    ScalingFaceDetector,
    crops,
    dedupe,
    drop_cut_landmarks,
    frame_scale,
    intersect,
    landmark_box,
    merge,
    outside,
    pad,
    to_pixels,
)
from metrosight.pipeline.phases import DetectionArea
from tests.conftest import require_data


class BrightBlobDetector:
    """Finds the box of bright (>= 200) pixels of the image it is given, in that image's pixels, with landmarks at
    its corners (so a test sees where they were mapped)."""

    name = "blob"
    scales_input = False

    def detect(self, image: np.ndarray) -> list[Detection]:
        ys, xs = np.nonzero(image[:, :, 0] >= 200)
        if ys.size == 0:
            return []
        box = Box(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        lm = np.array([[box.x1, box.y1]] * 4 + [[box.x2, box.y2]], np.float32)
        return [Detection(box, 0.9, lm)]


def frame_with(box: tuple[int, int, int, int], h: int = 400, w: int = 800) -> np.ndarray:
    img = np.full((h, w, 3), 50, np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = 255
    return img


def search(image: np.ndarray, windows: list[Box], scale: float) -> list[Detection]:
    """What the camera pipeline does with the crops: detect, map back, drop landmarks of cut faces, dedupe."""
    det = BrightBlobDetector()
    h, w = image.shape[:2]
    out: list[Detection] = []
    for crop, window, s in crops(image, windows, scale):
        area = DetectionArea(crop, (window.x1, window.y1), s, window)
        out += drop_cut_landmarks(area.to_frame(det.detect(crop)), window, (w, h), 2.0 * s)
    return dedupe(out)


def test_rectangles():
    assert to_pixels((0.25, 0.1, 0.5, 0.55), 640, 360) == Box(160, 36, 320, 198)
    assert pad(Box(100, 100, 140, 180), 0.5, 10, 640, 360) == Box(60, 60, 180, 220)
    assert pad(Box(0, 0, 10, 10), 0.0, 20, 640, 360) == Box(0, 0, 30, 30)  # at least min_px, clipped to the frame
    assert intersect(Box(0, 0, 10, 10), Box(5, 5, 20, 20)) == Box(5, 5, 10, 10)
    assert intersect(Box(0, 0, 10, 10), Box(10, 0, 20, 10)) is None
    merged = merge([Box(0, 0, 10, 10), Box(5, 5, 20, 20), Box(100, 100, 110, 110), Box(18, 18, 30, 30)])
    assert sorted(b.as_tuple() for b in merged) == [(0, 0, 30, 30), (100, 100, 110, 110)]
    assert outside([Box(0, 0, 10, 10), Box(50, 50, 60, 60)], [Box(40, 40, 100, 100)]) == [Box(0, 0, 10, 10)]


def test_a_face_found_in_a_crop_is_mapped_back_to_frame_pixels():
    img = frame_with((500, 200, 560, 280))
    [(crop, window, s)] = crops(img, [Box(400.3, 100, 700, 380)], 1.0)
    assert crop.shape == (280, 300, 3) and window == Box(400, 100, 700, 380) and s == 1.0  # whole pixels
    dets = search(img, [Box(400, 100, 700, 380)], 1.0)
    assert len(dets) == 1 and dets[0].box == Box(500, 200, 560, 280)
    assert dets[0].landmarks is not None and tuple(dets[0].landmarks[0]) == (500, 200)


def test_a_crop_is_searched_at_the_scale_of_the_whole_frame():
    img = frame_with((500, 200, 560, 280))
    scale = frame_scale(BrightBlobDetector(), 800, 400, max_width=400)  # the whole frame would be halved
    assert scale == 0.5
    [(crop, _, s)] = crops(img, [Box(400, 100, 700, 380)], scale)
    assert crop.shape == (140, 150, 3) and s == 2.0
    b = search(img, [Box(400, 100, 700, 380)], scale)[0].box
    assert abs(b.x1 - 500) <= 2 and abs(b.y1 - 200) <= 2 and abs(b.x2 - 560) <= 2 and abs(b.y2 - 280) <= 2


def test_a_face_cut_by_a_crop_edge_is_kept_without_landmarks_and_the_frame_edge_is_not_a_crop_edge():
    img = frame_with((500, 200, 560, 280))
    cut = search(img, [Box(400, 100, 530, 380)], 1.0)  # the crop ends inside the face
    assert len(cut) == 1 and cut[0].box.x2 == 530 and cut[0].landmarks is None
    whole = search(frame_with((0, 200, 60, 280)), [Box(0, 100, 300, 380)], 1.0)  # the crop's left edge is the frame's
    assert len(whole) == 1 and whole[0].landmarks is not None


def test_small_crops_are_grown_and_overlapping_crops_report_a_face_once():
    img = frame_with((500, 200, 560, 280))
    [(crop, window, _)] = crops(img, [Box(510, 210, 520, 220)], 1.0)  # grown to 64 px about its centre
    assert crop.shape[:2] == (64, 64) and window.center == (515, 215)
    assert [d.landmarks for d in search(img, [Box(510, 210, 520, 220)], 1.0)] == [None]  # still cuts the face
    both = search(img, [Box(400, 100, 700, 380), Box(450, 150, 650, 350)], 1.0)
    assert len(both) == 1 and both[0].landmarks is not None
    # a face cut in one crop and whole in the other: the whole one is kept
    mixed = search(img, [Box(400, 100, 530, 380), Box(450, 150, 650, 350)], 1.0)
    assert len(mixed) == 1 and mixed[0].landmarks is not None and mixed[0].box.x2 == 560


def test_centerface_says_how_it_scales_and_which_box_it_takes_landmarks_from():
    from metrosight.detect.centerface_onnx import CenterFaceDetector, dlib_style_box

    det = CenterFaceDetector()
    assert isinstance(det, ScalingFaceDetector) and not isinstance(BrightBlobDetector(), ScalingFaceDetector)
    assert frame_scale(det, 1920, 1080, 1280) == pytest.approx(512 / 1920)
    assert frame_scale(det, 480, 270, 1280) == 1.0
    b = Box(100, 100, 160, 180)
    assert landmark_box(det, b) == dlib_style_box(b) and landmark_box(BrightBlobDetector(), b) == b


@pytest.mark.integration
def test_centerface_finds_the_same_face_in_a_crop_as_in_the_whole_frame():
    import cv2

    from metrosight.detect.centerface_onnx import CenterFaceDetector
    from metrosight.detect.landmarks import FivePointLandmarker

    path = require_data("face_recognition_examples", "examples", "obama.jpg")
    photo = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    frame = np.zeros((1080, 1920, 3), np.uint8)  # the portrait pasted into an HD frame, off centre
    ph, pw = photo.shape[:2]
    s = 500 / max(ph, pw)
    small = cv2.resize(photo, (round(pw * s), round(ph * s)))
    frame[300 : 300 + small.shape[0], 900 : 900 + small.shape[1]] = small
    det = CenterFaceDetector()
    full = det.detect(frame)
    scale = frame_scale(det, 1920, 1080, 1280)
    [(crop, window, fs)] = crops(frame, [Box(800, 200, 1500, 900)], scale)
    area = DetectionArea(crop, (window.x1, window.y1), fs, window)
    win = area.to_frame(det.detect(crop))
    assert len(full) == len(win) == 1
    a, b = full[0], win[0]
    assert a.box.iou(b.box) > 0.9 and a.landmarks is not None
    lm = FivePointLandmarker()(frame, landmark_box(det, b.box))  # what the pipeline recomputes on the frame
    assert np.abs(a.landmarks - lm).max() < 4.0  # pixels of the HD frame


def test_a_crop_is_resampled_on_the_whole_frames_pixel_grid():
    from metrosight.detect.areas import grid_step

    assert grid_step(512 / 1920) == 15 and grid_step(512 / 768) == 3 and grid_step(0.5) == 2 and grid_step(1.0) == 1
    assert grid_step(512 / 826) == 1  # no small grid: any start
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(432, 768, 3), dtype=np.uint8)
    import cv2

    scale = 512 / 768
    whole = cv2.resize(img, (512, 288), interpolation=cv2.INTER_LINEAR)
    [(crop, window, _)] = crops(img, [Box(101, 50, 400, 300)], scale)
    assert window.x1 % 3 == 0 and window.y1 % 3 == 0 and window.x1 <= 101 and window.x2 >= 400
    x0, y0 = int(window.x1 * scale), int(window.y1 * scale)
    inner = whole[y0 + 1 : y0 + crop.shape[0] - 1, x0 + 1 : x0 + crop.shape[1] - 1]
    assert np.array_equal(crop[1:-1, 1:-1], inner)  # the same pixels as the scaled whole frame (edges aside)
