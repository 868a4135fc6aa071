"""Configuration of face tracking: which tracker, how it associates faces between detections, when a track ends,
and scene cuts."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from metrosight.config.common import Section


class TrackingConfig(Section):
    """Face tracking (one tracker per camera).

    The defaults were chosen on the crowd clip (facenet_pytorch_samples video.mp4: 12 tracks analysing every frame,
    13 at 12 and at 6 frames a second) and reported on the Hamilton clip and Intel's one-by-one clip; the scene-cut
    allowance on the Hamilton clip, the only shared clip with cuts (``bench/tracking.py``, README).
    """

    face_tracker: Literal["kalman", "iou"] = Field(
        "kalman",
        description="'kalman': constant-velocity prediction, association by overlap then by centre distance, "
        "misses counted in detections and media time (holds tracks together at low analysis rates); 'iou': the "
        "earlier overlap-only tracker (kept as the benchmarks' baseline)",
    )
    iou_threshold: float = Field(0.3, gt=0.0, lt=1.0, description="minimum IoU to continue a track")
    max_missed_seconds: float = Field(
        0.5, gt=0.0, le=60.0, description="a track unseen this long (media time during which detection ran) ends"
    )
    max_missed_detections: int = Field(
        2,
        ge=0,
        le=100,
        description="kalman: ... and only once it also missed more than this many detections in a row (a low "
        "analysis rate does not end a track on one or two misses)",
    )
    max_centre_distance: float = Field(
        1.0,
        ge=0.0,
        le=10.0,
        description="kalman: a face whose boxes no longer overlap continues a track when its centre is within this "
        "many box heights of the track's prediction",
    )
    centre_distance_per_second: float = Field(
        3.0,
        ge=0.0,
        le=100.0,
        description="kalman: that distance grows by this many box heights per second since the track was last seen "
        "(for at most max_missed_seconds: a track kept alive by its miss count does not take a face anywhere)",
    )
    max_height_ratio: float = Field(
        1.3,
        ge=1.0,
        le=10.0,
        description="kalman: ... but not when the face's box height differs from the prediction's by more than this "
        "factor (a nearer or farther face)",
    )
    scene_cut_threshold: float = Field(
        0.8, ge=0.0, le=1.0, description="frame-to-frame histogram similarity below which all tracks end (a cut)"
    )
    scene_cut_per_second: float = Field(
        0.15,
        ge=0.0,
        le=1.0,
        description="the cut threshold is lowered by this much per second between the compared frames, for at most "
        "1 s (a low analysis rate compares frames further apart, whose histograms differ more within one shot)",
    )
