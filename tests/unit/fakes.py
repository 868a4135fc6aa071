"""Fakes for unit tests: a scripted face detector and a colour-keyed embedder.

A "person" is painted into a synthetic frame as a noisy patch of one dominant colour; the fake embedder maps a chip
to a descriptor from the chip's mean colour, so the same person gives near-identical descriptors and different
colours give dissimilar ones. No model is loaded.
"""

from __future__ import annotations

import numpy as np

from metrosight.core.types import Box, Detection, Frame

COLOURS = {"red": (220, 30, 30), "green": (30, 220, 30), "blue": (30, 30, 220)}


def landmarks_for(box: Box) -> np.ndarray:
    """Plausible frontal 5-point landmarks inside ``box`` (dlib order)."""
    w, h = box.width, box.height
    x, y = box.x1, box.y1
    return np.array(
        [
            [x + 0.75 * w, y + 0.38 * h],
            [x + 0.60 * w, y + 0.38 * h],
            [x + 0.25 * w, y + 0.38 * h],
            [x + 0.40 * w, y + 0.38 * h],
            [x + 0.50 * w, y + 0.62 * h],
        ],
        dtype=np.float32,
    )


def paint_frame(
    index: int, people: list[tuple[str, Box]], size: tuple[int, int] = (480, 640), fps: float = 10.0
) -> Frame:
    rng = np.random.default_rng(index)
    img = rng.integers(100, 140, size=(*size, 3), dtype=np.uint8)
    for colour, b in people:
        x1, y1, x2, y2 = (int(v) for v in b.as_tuple())
        patch = np.array(COLOURS[colour], dtype=np.int16) + rng.integers(-25, 25, size=(y2 - y1, x2 - x1, 3))
        img[y1:y2, x1:x2] = np.clip(patch, 0, 255).astype(np.uint8)
        # a mouth: the dark line between the lips, below the centre of the chip the embedder reads (a face
        # without one looks covered to the quality check)
        my = y1 + int(0.76 * (y2 - y1))
        img[my : my + max(1, (y2 - y1) // 40), x1 + int(0.35 * (x2 - x1)) : x1 + int(0.65 * (x2 - x1))] //= 4
    img[0, 0] = (index % 256, index // 256, 0)  # the scripted detector reads the frame index here
    return Frame(image=img, ts=index / fps, index=index, camera_id="cam-test")


class ScriptedDetector:
    """Returns the boxes scripted for each frame index."""

    name = "scripted"
    scales_input = False  # give it frames downscaled to detection.max_width

    def __init__(self, script: dict[int, list[Box]]) -> None:
        self.script = script
        self.calls = 0

    def detect(self, image: np.ndarray) -> list[Detection]:
        self.calls += 1
        index = int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])
        return [Detection(b, 1.0, landmarks_for(b)) for b in self.script.get(index, [])]


class ColourEmbedder:
    """Descriptor = unit vector from the mean colour of the chip's centre, padded to 128."""

    name = "colour"
    model_id = "dlib_resnet_v1"  # stands in for the default model: its templates are stored under that id
    dim = 128

    def __init__(self) -> None:
        self.calls = 0
        self.faces = 0

    def embed(self, chips: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.faces += len(chips)
        out = np.zeros((len(chips), 128), dtype=np.float32)
        for i, c in enumerate(chips):
            centre = c[50:100, 50:100].reshape(-1, 3).mean(axis=0) - 120.0
            out[i, :3] = centre
            out[i, 3] = 1.0
        return out

    def of_colour(self, colour: str) -> np.ndarray:
        v = np.zeros(128, dtype=np.float32)
        v[:3] = np.array(COLOURS[colour], dtype=np.float32) - 120.0
        v[3] = 1.0
        return v
