"""Faces in still photos: the checks an enrolment photo must pass, and probes for identification."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metrosight.core.types import Detection
from metrosight.detect.base import FaceDetector
from metrosight.recognize.align import align
from metrosight.recognize.embedder import Embedder
from metrosight.recognize.quality import Quality, assess


BACKGROUND_RATIO = 0.5  # a face under half the height of the photo's largest face is background


class PhotoRefused(Exception):
    """An enrolment photo is unusable; the message says why (no face, several faces, or the face is cut by the
    edge of the photo, too small, too blurred, turned away or covered)."""


@dataclass(frozen=True, slots=True)
class PhotoFace:
    """One face of a photo with its descriptor ``(128,)`` float32 and quality."""

    detection: Detection
    descriptor: np.ndarray
    quality: Quality


def faces_in_photo(
    image: np.ndarray,
    detector: FaceDetector,
    embedder: Embedder,
    min_face_px: int,
    min_blur_var: float,
) -> tuple[list[PhotoFace], list[tuple[Detection, Quality]]]:
    """Detect, align, assess and embed every face of a photo.

    Returns:
        ``(usable, rejected)``: usable faces with descriptors, and faces that failed a quality check.
    """
    usable: list[tuple[Detection, np.ndarray, Quality]] = []
    rejected: list[tuple[Detection, Quality]] = []
    for det in detector.detect(image):
        if det.landmarks is None:
            continue
        chip = align(image, det.box, det.landmarks)
        q = assess(
            det.box, chip, det.landmarks, min_face_px, min_blur_var, detector_yaw=det.yaw,
            image_size=(int(image.shape[1]), int(image.shape[0])),
        )
        if q.problem is not None:
            rejected.append((det, q))
        else:
            usable.append((det, chip, q))
    if not usable:
        return [], rejected
    desc = embedder.embed(np.stack([c for _, c, _ in usable]))
    return [PhotoFace(d, v, q) for (d, _, q), v in zip(usable, desc, strict=True)], rejected


def enrolment_face(
    image: np.ndarray, detector: FaceDetector, embedder: Embedder, min_face_px: int, min_blur_var: float
) -> PhotoFace:
    """The one face of an enrolment photo.

    Faces less than half as tall as the largest face are background and ignored.

    Raises:
        PhotoRefused: no face, more than one face, or the only face is cut by the edge of the photo, too small, too
            blurred, turned away or covered (mask, hand).
    """
    usable, rejected = faces_in_photo(image, detector, embedder, min_face_px, min_blur_var)
    # Faces much smaller than the main one (people far in the background) do not make the photo ambiguous.
    largest = max([f.detection.box.height for f in usable] + [d.box.height for d, _ in rejected], default=0.0)
    usable = [f for f in usable if f.detection.box.height >= BACKGROUND_RATIO * largest]
    rejected = [(d, q) for d, q in rejected if d.box.height >= BACKGROUND_RATIO * largest]
    total = len(usable) + len(rejected)
    if total == 0:
        raise PhotoRefused("no face found")
    if total > 1:
        raise PhotoRefused(f"{total} faces found; an enrolment photo must show exactly one person")
    if rejected:
        raise PhotoRefused(rejected[0][1].problem or "face unusable")
    return usable[0]
