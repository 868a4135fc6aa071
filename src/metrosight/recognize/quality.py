"""Face quality: is this face good enough to recognise, and which shot of a track is best?

Three measures, each mapped to 0..1 and combined by geometric mean:
- size: box height against the configured minimum (a face at the minimum scores 0.5, twice it or more 1.0);
- sharpness: variance of the Laplacian of the grey aligned chip against the blur limit;
- pose: how far the nose sits from the eyes' midline, relative to the eye distance (0 for a profile).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metrosight.core.types import Box


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


def blur_variance(chip: np.ndarray) -> float:
    """Variance of the Laplacian of ``chip`` (``(H, W, 3)`` uint8 RGB); low means blurred."""
    import cv2

    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def nose_offset_ratio(eye_a: np.ndarray, eye_b: np.ndarray, nose: np.ndarray) -> float:
    """The nose's offset from the eyes' midpoint along the eye axis, in eye distances (0 frontal, growing as the
    head turns; 1.0 when the eyes coincide). Points are ``(2,)`` pixel coordinates."""
    eye_a, eye_b, nose = (np.asarray(p, dtype=np.float64) for p in (eye_a, eye_b, nose))
    axis = eye_b - eye_a
    dist = float(np.hypot(*axis))
    if dist < 1e-6:
        return 1.0
    mid = (eye_a + eye_b) / 2.0
    return abs(float(np.dot(nose - mid, axis / dist))) / dist


def yaw_ratio(landmarks: np.ndarray) -> float:
    """Horizontal offset of the nose from the eyes' midpoint, in units of the eye distance.

    Args:
        landmarks: ``(5, 2)`` dlib 5-point landmarks (points 0–1 one eye, 2–3 the other, 4 nose base).
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    return nose_offset_ratio(lm[0:2].mean(axis=0), lm[2:4].mean(axis=0), lm[4])


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
) -> float:
    """The highest :func:`assess` score any chip of this face could get (sharpness counted as perfect), from the box
    and landmarks alone: a face whose bound is too low need not be aligned at all."""
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
) -> Quality:
    """Score one face. See the module docstring for the measures; ``detector_yaw`` is the detector's own pose
    estimate (:attr:`metrosight.core.types.Detection.yaw`), see :func:`face_yaw`."""
    height = box.height
    blur = blur_variance(chip)
    yaw = face_yaw(landmarks, detector_yaw)
    size_s, pose_s = _size_pose(height, yaw, min_face_px, max_yaw_ratio)
    sharp_s = float(np.clip(blur / (4.0 * max(min_blur_var, 1e-6)), 0.0, 1.0))
    score = float((size_s * sharp_s * pose_s) ** (1.0 / 3.0))
    problem = None
    if height < min_face_px:
        problem = f"face too small ({height:.0f} px high, need at least {min_face_px} px)"
    elif blur < min_blur_var:
        problem = f"face too blurred (sharpness {blur:.1f}, need at least {min_blur_var:.1f})"
    elif yaw > max_yaw_ratio:
        problem = f"face turned too far from the camera (yaw ratio {yaw:.2f} > {max_yaw_ratio:.2f})"
    return Quality(score, height, blur, yaw, problem)
