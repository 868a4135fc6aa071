"""The face tracker a camera uses, built from the configuration (``tracking``).

``kalman`` (default): :class:`~metrosight.track.kalman.KalmanTracker` — each face's box predicted at constant
velocity, matched by overlap, then by centre distance in box heights (a gate that widens with the time since the
face was last seen, and refuses a face of another size), misses counted in detections and media time, so that at a
low analysis rate (6 frames a second) a face keeps one track. Every detection starts a track at once (``min_hits``
1): the first frame a face is seen may already be its best shot. ``iou``: :class:`~metrosight.track.iou.IouTracker`,
the earlier overlap-only tracker, kept as the benchmarks' baseline (``bench/tracking.py``).
"""

from __future__ import annotations

from metrosight.config.tracking import TrackingConfig
from metrosight.track.cuts import SceneCutDetector
from metrosight.track.iou import FaceTracker, IouTracker
from metrosight.track.kalman import KalmanTracker


def make_face_tracker(cfg: TrackingConfig) -> FaceTracker:
    """A fresh face tracker for one camera, as ``cfg.face_tracker`` names."""
    if cfg.face_tracker == "iou":
        return IouTracker(cfg.iou_threshold, cfg.max_missed_seconds)
    return KalmanTracker(
        iou_threshold=cfg.iou_threshold,
        max_centre_distance=cfg.max_centre_distance,
        max_missed_seconds=cfg.max_missed_seconds,
        min_hits=1,
        centre_distance_per_second=cfg.centre_distance_per_second,
        max_missed_detections=cfg.max_missed_detections,
        max_height_ratio=cfg.max_height_ratio,
    )


def make_cut_detector(cfg: TrackingConfig) -> SceneCutDetector:
    """A fresh scene-cut detector for one camera (``scene_cut_threshold``, ``scene_cut_per_second``)."""
    return SceneCutDetector(cfg.scene_cut_threshold, cfg.scene_cut_per_second)
