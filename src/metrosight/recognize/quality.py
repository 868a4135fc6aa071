"""Face quality: is this face good enough to recognise, and which shot of a track is best?

Three measures, each mapped to 0..1 and combined by geometric mean:
- size: box height against the configured minimum (a face at the minimum scores 0.5, twice it or more 1.0);
- sharpness: variance of the Laplacian of the grey aligned chip against the blur limit;
- pose: how far the nose sits from the eyes' midline, relative to the eye distance (0 for a profile).

Two checks refuse a face outright, before the measures are judged (so a face cut by the left edge is called cut,
not turned): *cut by the edge of the photo* (:func:`cut_by_edge`) and *covered* (:func:`covered_score`: a mask or
a hand over the lower face). The camera pipeline and the photo checks call the same :func:`assess`, so such faces
are neither enrolled nor kept among a video track's best shots.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metrosight.core.types import Box
from metrosight.detect.landmarks import nose_offset_ratio


@dataclass(frozen=True, slots=True)
class Quality:
    """Quality measures of one face.

    Attributes:
        score: 0..1 combined score.
        height_px: face box height, pixels.
        blur_var: variance of the Laplacian of the grey 150×150 chip.
        yaw_ratio: |nose − eye midpoint| / eye distance along the eye axis (0 frontal, ≳0.5 profile).
        problem: why the face is unusable (``None`` when usable): too small, too blurred or turned away.
    """

    score: float
    height_px: float
    blur_var: float
    yaw_ratio: float
    problem: str | None
    covered: float = 0.0


#: covered-score above which a face is refused as covered: the smallest refusing at most 1% of bare faces on the
#: tuning people of ``bench/face_checks.py`` (LFW); see its results for the rates on other people
COVERED_THRESHOLD = 0.823


def touches_side(box: Box, image_size: tuple[int, int], tol: float = 1.0) -> str | None:
    """``"left"`` or ``"right"`` when the box reaches that edge of the image (within ``tol`` pixels)."""
    if box.x1 <= tol:
        return "left"
    if box.x2 >= image_size[0] - tol:
        return "right"
    return None


def blur_variance(chip: np.ndarray) -> float:
    """Variance of the Laplacian of ``chip`` (``(H, W, 3)`` uint8 RGB); low means blurred."""
    import cv2  # OpenCV: heavy, loaded on first use

    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def yaw_ratio(landmarks: np.ndarray) -> float:
    """Horizontal offset of the nose from the eyes' midpoint, in units of the eye distance.

    Args:
        landmarks: ``(5, 2)`` dlib 5-point landmarks (points 0–1 one eye, 2–3 the other, 4 nose base).
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    return nose_offset_ratio(lm[0:2].mean(axis=0), lm[2:4].mean(axis=0), lm[4])


#: CenterFace-style boxes (forehead to chin) of whole faces are taller than wide: height/width 1.15–1.48 for 98% of
#: LFW faces (1.06–1.39 on the tightly cropped AT&T faces). A box that touches the top or bottom edge and is not
#: even as tall as wide, or touches a side and is far narrower than a face, holds a part of a face.
CUT_MIN_ASPECT = 1.1
CUT_MAX_ASPECT = 1.35
#: landmarks closer than this many eye distances to an edge are at (or past) it
CUT_LANDMARK_MARGIN = 0.1


def cut_by_edge(box: Box, landmarks: np.ndarray | None, image_size: tuple[int, int]) -> str | None:
    """Which edge of the photo (or frame) cuts the face, or None when it is whole.

    A face is cut when one of its landmarks lies within :data:`CUT_LANDMARK_MARGIN` eye distances of an edge (or
    outside), or when its box (clipped to the image by the detector) touches the top or bottom edge while less tall
    than :data:`CUT_MIN_ASPECT` × its width, or touches a side while taller than :data:`CUT_MAX_ASPECT` × its width
    (the detector boxes only the part of a face it sees). Measured in ``bench/face_checks.py``.

    Args:
        box: the face box in image pixels.
        landmarks: ``(5, 2)`` dlib 5-point landmarks in image pixels, or None.
        image_size: ``(width, height)`` of the image, pixels.

    Returns:
        ``"top"``, ``"bottom"``, ``"left"`` or ``"right"``, or None.
    """
    w, h = image_size
    if landmarks is not None and np.shape(landmarks) == (5, 2):
        lm = np.asarray(landmarks, dtype=np.float64)
        eye = float(np.hypot(*(lm[0:2].mean(axis=0) - lm[2:4].mean(axis=0))))
        m = CUT_LANDMARK_MARGIN * max(eye, 1.0)
        for side, gap in (
            ("top", lm[:, 1].min()),
            ("bottom", h - lm[:, 1].max()),
            ("left", lm[:, 0].min()),
            ("right", w - lm[:, 0].max()),
        ):
            if gap < m:
                return side
    if box.width <= 0 or box.height <= 0:
        return None
    aspect = box.height / box.width
    tol = 1.0
    if aspect < CUT_MIN_ASPECT:
        if box.y1 <= tol:
            return "top"
        if box.y2 >= h - tol:
            return "bottom"
    if aspect > CUT_MAX_ASPECT:
        if box.x1 <= tol:
            return "left"
        if box.x2 >= w - tol:
            return "right"
    return None


#: regions of the 150×150 aligned chip (rows, columns): dlib's alignment puts the eyes on row ~45, the nose tip
#: around row 85 and the mouth around rows 100–115 for every face
_UPPER = (slice(18, 58), slice(62, 88))  # forehead, glabella, top of the nose bridge: above any mask
_LOWER = (slice(96, 140), slice(42, 108))  # mouth and chin


_MOUTH = (slice(98, 120), slice(50, 100))  # the lips and the gap between them


def covered_score(chip: np.ndarray) -> float:
    """How covered the lower face looks (0 bare … 1 covered): the larger of two measures.

    The skin of the upper face (forehead and nose bridge, above the edge of any mask) gives the person's own
    colour (median and spread in CIE Lab).

    - *foreign colour*: the share of the mouth-and-chin region whose colour lies outside that skin (median ± 3
      robust SD; lightness with a wide margin for shading): a medical or cloth mask, a scarf, a glove;
    - *hidden mouth*: 1 − (skin lightness − the darkest 5% of the mouth region) / skin lightness: an open or
      closed mouth always has a dark line between the lips; a hand (skin on skin) or a plain mask hides it.

    Args:
        chip: ``(150, 150, 3)`` uint8 RGB aligned face chip (:func:`metrosight.recognize.align.align`).
    """
    import cv2  # OpenCV: heavy, loaded on first use

    lab = cv2.cvtColor(np.ascontiguousarray(chip), cv2.COLOR_RGB2LAB).astype(np.float32)
    ref = lab[_UPPER].reshape(-1, 3)
    low = lab[_LOWER].reshape(-1, 3)
    med = np.median(ref, axis=0)
    spread = np.median(np.abs(ref - med), axis=0) * 1.4826  # robust standard deviation
    tol = np.maximum(3.0 * spread, np.array([40.0, 9.0, 9.0]))  # lightness varies with shading, colour much less
    foreign = float(np.any(np.abs(low - med) > tol, axis=1).mean())
    gap = (float(med[0]) - float(np.percentile(lab[_MOUTH][..., 0], 5))) / max(float(med[0]), 1.0)
    hidden = float(np.clip(1.0 - gap, 0.0, 1.0))
    return max(foreign, hidden)


def _size_pose(height: float, yaw: float, min_face_px: int, max_yaw_ratio: float) -> tuple[float, float]:
    size_s = float(np.clip(height / (2.0 * min_face_px), 0.0, 1.0))
    pose_s = float(np.clip(1.0 - yaw / max_yaw_ratio, 0.0, 1.0))
    return size_s, pose_s


def face_yaw(landmarks: np.ndarray, detector_yaw: float | None = None) -> float:
    """The yaw ratio quality judges: from dlib's 5 points, or the detector's own estimate when that is larger.

    dlib's 5-point predictor places its points as if the face were frontal even when it is turned (a face at ~60°
    in the crowd sample: 0.14 from its points, 0.84 from CenterFace's), so the larger estimate is the safer one.
    """
    yaw = yaw_ratio(landmarks)
    return yaw if detector_yaw is None else max(yaw, float(detector_yaw))


def score_bound(
    box: Box,
    landmarks: np.ndarray,
    min_face_px: int,
    max_yaw_ratio: float = 0.45,
    detector_yaw: float | None = None,
    image_size: tuple[int, int] | None = None,
) -> float:
    """The highest :func:`assess` score any chip of this face could get (sharpness counted as perfect), from the box
    and landmarks alone: a face whose bound is too low need not be aligned at all (0 for a face cut by the edge of
    an image of ``image_size`` = ``(width, height)``)."""
    if image_size is not None and cut_by_edge(box, landmarks, image_size) is not None:
        return 0.0
    size_s, pose_s = _size_pose(box.height, face_yaw(landmarks, detector_yaw), min_face_px, max_yaw_ratio)
    return float((size_s * pose_s) ** (1.0 / 3.0))


def assess(
    box: Box,
    chip: np.ndarray,
    landmarks: np.ndarray,
    min_face_px: int,
    min_blur_var: float,
    max_yaw_ratio: float = 0.45,
    detector_yaw: float | None = None,
    image_size: tuple[int, int] | None = None,
    max_covered: float | None = COVERED_THRESHOLD,
) -> Quality:
    """Score one face. See the module docstring for the measures; ``detector_yaw`` is the detector's own pose
    estimate (:attr:`metrosight.core.types.Detection.yaw`), see :func:`face_yaw`.

    Problems, in the order they are judged: cut by the edge of the image (only with ``image_size`` =
    ``(width, height)``; a face that reaches a side edge and looks turned is cut there, not turned), too small, too
    blurred, turned too far, covered (:func:`covered_score` above ``max_covered``; None: not judged)."""
    height = box.height
    blur = blur_variance(chip)
    yaw = face_yaw(landmarks, detector_yaw)
    covered = covered_score(chip)
    size_s, pose_s = _size_pose(height, yaw, min_face_px, max_yaw_ratio)
    sharp_s = float(np.clip(blur / (4.0 * max(min_blur_var, 1e-6)), 0.0, 1.0))
    score = float((size_s * sharp_s * pose_s) ** (1.0 / 3.0))
    problem = None
    side = None
    if image_size is not None:
        side = cut_by_edge(box, landmarks, image_size)
        if side is None and yaw > max_yaw_ratio:
            side = touches_side(box, image_size)
    if side is not None:
        problem = f"face cut by the {side} edge of the photo"
        score = 0.0
    elif height < min_face_px:
        problem = f"face too small ({height:.0f} px high, need at least {min_face_px} px)"
    elif blur < min_blur_var:
        problem = f"face too blurred (sharpness {blur:.1f}, need at least {min_blur_var:.1f})"
    elif yaw > max_yaw_ratio:
        problem = f"face turned too far from the camera (yaw ratio {yaw:.2f} > {max_yaw_ratio:.2f})"
    elif max_covered is not None and covered > max_covered:
        problem = f"face covered (mask, scarf or hand over the mouth; covered score {covered:.2f} > {max_covered:.2f})"
        score = 0.0
    return Quality(score, height, blur, yaw, problem, covered)
