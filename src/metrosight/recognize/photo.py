"""Faces in still photos: the checks an enrolment photo must pass, and probes for identification.

An enrolment photo may show other people: the subject's face is taken when it is *clearly dominant*
(:func:`dominant_face`), otherwise the photo is refused with its faces numbered (left to right) and the operator
chooses one by its number. Measured in ``bench/enrol_dominance.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metrosight.core.types import Box, Detection
from metrosight.detect.base import FaceDetector
from metrosight.recognize.align import align
from metrosight.recognize.embedder import Embedder
from metrosight.recognize.jitter import embed_still, jitters
from metrosight.recognize.quality import Quality, assess, cut_by_edge

#: a whole face under this share of the largest whole face's height is background: it never competes
BACKGROUND_RATIO = 0.5
#: a whole face at least this share of the largest whole face's height makes the photo ambiguous, wherever it is
#: (on LFW fold 1 the faces other than the subject that are this large are the cases where the largest whole
#: face is not the subject: 0.88–1.0 of its height; see ``bench/enrol_dominance.py``)
DOMINANCE_RATIO = 0.8
#: a face smaller than the candidate, or one that cannot be recognised (and is not clearly larger), stands aside when
#: it is at least this share of the candidate's height further from the photo's centre (a safety margin, not fitted:
#: LFW centres every photo on its subject, so no margin takes a wrong face there; see ``bench/enrol_dominance.py``)
CENTRE_MARGIN = 0.5
#: default yaw limit of a photo's face (``photos.max_yaw_ratio``)
MAX_YAW_RATIO = 0.45


@dataclass(frozen=True, slots=True)
class FoundFace:
    """A face found in a photo, numbered for the operator to choose one.

    Attributes:
        number: 1 for the leftmost face, counting to the right (by the box centre).
        box: the face box in the decoded photo's pixels.
        problem: why this face cannot be enrolled (``None`` when it can).
    """

    number: int
    box: Box
    problem: str | None

    def describe(self, scale: float = 1.0) -> str:
        """``face 2: x 120–180, y 40–115 (75 px high)`` and the problem, if any: pixels of the decoded photo times
        ``scale`` (the photo file's pixels per decoded pixel, for a photo decoded at reduced size)."""
        x1, y1, x2, y2 = (v * scale for v in self.box.as_tuple())
        text = f"face {self.number}: x {x1:.0f}–{x2:.0f}, y {y1:.0f}–{y2:.0f} ({y2 - y1:.0f} px high)"
        return text + (f", {self.problem}" if self.problem else "")


class PhotoRefused(Exception):
    """An enrolment photo is unusable; the message says why (no face, several faces of which none is clearly the
    subject, or the face is cut by the edge of the photo, too small, too blurred, turned away or covered).

    Attributes:
        faces: the photo's faces, numbered, when it has more than one (the operator may choose one of them).
    """

    def __init__(self, message: str, faces: Sequence[FoundFace] = ()) -> None:
        super().__init__(message)
        self.faces = tuple(faces)


@dataclass(frozen=True, slots=True)
class PhotoFace:
    """One face of a photo with its descriptor ``(128,)`` float32 and quality.

    Attributes:
        number: the face's number among the photo's faces (1 = leftmost), as a refusal would number it.
        found: how many faces the photo has (with landmarks).
        others: when the face was taken without the operator choosing it from a photo with several, the other
            usable faces as ``(number, descriptor)``: held in memory for the enrolment's cross-check
            (:func:`metrosight.recognize.consistency.closer_face`), never stored.
    """

    detection: Detection
    descriptor: np.ndarray
    quality: Quality
    number: int = 1
    found: int = 1
    others: tuple[tuple[int, np.ndarray], ...] = ()


def _assessed(
    image: np.ndarray, detector: FaceDetector, min_face_px: int, min_blur_var: float, max_yaw_ratio: float
) -> list[tuple[Detection, np.ndarray, Quality]]:
    """Every face with landmarks, aligned and assessed, left to right (by box centre)."""
    size = (int(image.shape[1]), int(image.shape[0]))
    out = []
    for det in detector.detect(image):
        if det.landmarks is None:
            continue
        chip = align(image, det.box, det.landmarks)
        q = assess(
            det.box,
            chip,
            det.landmarks,
            min_face_px,
            min_blur_var,
            max_yaw_ratio,
            detector_yaw=det.yaw,
            image_size=size,
        )
        out.append((det, chip, q))
    out.sort(key=lambda t: (t[0].box.center[0], t[0].box.center[1]))
    return out


def faces_in_photo(
    image: np.ndarray,
    detector: FaceDetector,
    embedder: Embedder,
    min_face_px: int,
    min_blur_var: float,
    max_yaw_ratio: float = MAX_YAW_RATIO,
    jitter: bool = False,
) -> tuple[list[PhotoFace], list[tuple[Detection, Quality]]]:
    """Detect, align, assess and embed every face of a photo (limits: ``photos.min_face_px``, ``min_blur_var``,
    ``max_yaw_ratio`` of the configuration; ``jitter``: ``photos.jitter``, see :mod:`metrosight.recognize.jitter`).

    Returns:
        ``(usable, rejected)``: usable faces with descriptors, and faces that failed a quality check.
    """
    faces = _assessed(image, detector, min_face_px, min_blur_var, max_yaw_ratio)
    usable = [(d, c, q) for d, c, q in faces if q.problem is None]
    rejected = [(d, q) for d, _, q in faces if q.problem is not None]
    if not usable:
        return [], rejected
    if jitters(len(usable), jitter):
        desc = embed_still(image, [(d.box, d.landmarks) for d, _, _ in usable], embedder, jitter=True)
    else:
        desc = embedder.embed(np.stack([c for _, c, _ in usable]))
    return [PhotoFace(d, v, q) for (d, _, q), v in zip(usable, desc, strict=True)], rejected


def dominant_face(
    boxes: Sequence[Box],
    cut: Sequence[bool],
    image_size: tuple[int, int],
    usable: Sequence[bool] | None = None,
) -> int | None:
    """The index of the photo's subject when one face clearly dominates, else None.

    The candidate is the most central whole face (not cut by the edge of the photo) among those at least
    :data:`BACKGROUND_RATIO` of the largest whole face's height. It dominates when every other whole face stands
    aside: under :data:`BACKGROUND_RATIO` of its height (background); under :data:`DOMINANCE_RATIO` of its height and
    further from the photo's centre; smaller than it and at least :data:`CENTRE_MARGIN` of its height further from
    the centre; or a face that cannot be recognised (``usable`` False: turned away, blurred, covered, too small)
    at least that much further from the centre and under 1 / :data:`DOMINANCE_RATIO` of its height (a clearly larger
    one is more likely the subject's, turned or masked, than the central face: the photo is refused). Faces cut by
    the edge never dominate; one competes (the photo is ambiguous: the cut face is likely the subject's, the whole
    one a bystander) when it is at least :data:`DOMINANCE_RATIO` of the candidate's height and nearer the centre, or
    twice its height anywhere.

    Args:
        boxes: face boxes, pixels.
        cut: for each box, whether the face is cut by the edge of the photo.
        image_size: ``(width, height)``, pixels.
        usable: for each box, whether the face passes the photo checks (None: every face counts as usable).
    """
    whole = [i for i in range(len(boxes)) if not cut[i]]
    if not whole:
        return None
    cx, cy = image_size[0] / 2.0, image_size[1] / 2.0

    def off_centre(i: int) -> float:
        return math.hypot(boxes[i].center[0] - cx, boxes[i].center[1] - cy)

    largest = max(boxes[i].height for i in whole)
    s = min((i for i in whole if boxes[i].height >= BACKGROUND_RATIO * largest), key=off_centre)
    height = max(boxes[s].height, 1e-6)
    for i in range(len(boxes)):
        if i == s:
            continue
        ratio = boxes[i].height / height
        nearer = off_centre(i) < off_centre(s)
        if cut[i]:
            # a cut face (its box clipped by the edge: smaller than the face) as large as the candidate and nearer
            # the centre, or twice its height anywhere, is most likely the subject's, cropped: taking the whole
            # face would enrol a bystander under the subject's name
            if ratio >= 1.0 / BACKGROUND_RATIO or (ratio >= DOMINANCE_RATIO and nearer):
                return None
            continue
        aside = off_centre(i) - off_centre(s) >= CENTRE_MARGIN * height
        if ratio < BACKGROUND_RATIO or (ratio < DOMINANCE_RATIO and not nearer) or (ratio < 1.0 and aside):
            continue
        if aside and usable is not None and not usable[i] and ratio < 1.0 / DOMINANCE_RATIO:
            # turned away, blurred or covered, well off-centre and not clearly larger: a bystander. A clearly
            # larger one is more likely the subject (turned or masked) than the smaller central face: refused
            continue
        return None
    return s


def enrolment_face(
    image: np.ndarray,
    detector: FaceDetector,
    embedder: Embedder,
    min_face_px: int,
    min_blur_var: float,
    face: int | None = None,
    max_yaw_ratio: float = MAX_YAW_RATIO,
    scale: float = 1.0,
    jitter: bool = False,
) -> PhotoFace:
    """The subject's face of an enrolment photo: the one face, the clearly dominant one (:func:`dominant_face`),
    or face number ``face`` (1 = leftmost, as numbered in a refusal) when the operator chose one; embedded from
    nine moved alignments with ``jitter`` (:mod:`metrosight.recognize.jitter`). A refusal's
    message gives the faces' boxes in the decoded photo's pixels times ``scale`` (the photo file's pixels per
    decoded pixel: ``1 / Photo.scale``, so the operator finds them in the file); :attr:`PhotoRefused.faces` keep the
    decoded photo's pixels.

    Raises:
        PhotoRefused: no face; several faces and none clearly dominant (the refusal numbers them, see
            :attr:`PhotoRefused.faces`); no face ``face``; or the chosen face (or, with several faces, the dominant
            one: the refusal then names it and numbers them all) is cut by the edge of the photo, too small, too
            blurred, turned away or covered (mask, hand).
    """
    faces = _assessed(image, detector, min_face_px, min_blur_var, max_yaw_ratio)
    found = [FoundFace(k + 1, d.box, q.problem) for k, (d, _, q) in enumerate(faces)]
    listed = found if len(found) > 1 else []
    if not faces:
        raise PhotoRefused("no face found")
    if face is not None:
        if not 1 <= face <= len(faces):
            raise PhotoRefused(
                f"there is no face {face}: the photo has {len(faces)} face(s), numbered from 1 (leftmost)", listed
            )
        k = face - 1
        if faces[k][2].problem is not None:
            raise PhotoRefused(f"face {face}: {faces[k][2].problem}", listed)
    else:
        size = (int(image.shape[1]), int(image.shape[0]))
        cut = [cut_by_edge(d.box, d.landmarks, size) is not None for d, _, _ in faces]
        pick = dominant_face([d.box for d, _, _ in faces], cut, size, [q.problem is None for _, _, q in faces])
        if pick is None:
            if len(faces) == 1 or all(cut):
                largest = max(range(len(faces)), key=lambda i: faces[i][0].box.height)
                raise PhotoRefused(faces[largest][2].problem or "face cut by the edge of the photo", listed)
            raise PhotoRefused(
                f"{len(faces)} faces found and none is clearly the subject's (the subject's face must be the most "
                "central whole face, every other face under half its height, or smaller and further from the centre, "
                "or unrecognisable and well off-centre); choose one by its number: "
                + "; ".join(f.describe(scale) for f in found),
                found,
            )
        k = pick
        problem = faces[k][2].problem
        if problem is not None and len(faces) == 1:
            raise PhotoRefused(problem)
        if problem is not None:  # the operator may choose another face: say which one failed and number them all
            raise PhotoRefused(
                f"face {k + 1} (the most central) of {len(faces)}: {problem}; choose one by its number: "
                + "; ".join(f.describe(scale) for f in found),
                found,
            )
    det, chip, q = faces[k]
    # a face taken by the dominance rule: the other usable faces too, to check it against the entry's other photos
    others = [i for i in range(len(faces)) if face is None and i != k and faces[i][2].problem is None]
    picked = [k, *others]
    if jitters(len(picked), jitter):
        desc = embed_still(image, [(faces[i][0].box, faces[i][0].landmarks) for i in picked], embedder, jitter=True)
    else:
        desc = np.asarray(embedder.embed(np.stack([faces[i][1] for i in picked])))
    return PhotoFace(det, desc[0], q, k + 1, len(faces), tuple((i + 1, desc[j + 1]) for j, i in enumerate(others)))
