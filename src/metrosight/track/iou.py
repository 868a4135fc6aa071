"""Multi-object tracking by box overlap, with optimal (Hungarian) assignment.

Faces in metro video move little between frames at the analysed rate, so IoU association with a short memory
is enough for recognition tracks. We use scipy's ``linear_sum_assignment`` for the assignment; we do not use
norfair (it pins numpy < 2) or ``trackers`` (it pulls OpenCV 5, which has no HOG people detector).

Track ids are counted per tracker instance (one per camera), never in class-level state.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from metrosight.core.types import Box, Detection, Detections, Tracks, TrackState


def iou_matrix(a: list[Box], b: list[Box]) -> np.ndarray:
    """Pairwise IoU, shape ``(len(a), len(b))``."""
    if not a or not b:
        return np.zeros((len(a), len(b)), dtype=np.float64)
    aa = np.array([x.as_tuple() for x in a], dtype=np.float64)
    bb = np.array([x.as_tuple() for x in b], dtype=np.float64)
    ix1 = np.maximum(aa[:, None, 0], bb[None, :, 0])
    iy1 = np.maximum(aa[:, None, 1], bb[None, :, 1])
    ix2 = np.minimum(aa[:, None, 2], bb[None, :, 2])
    iy2 = np.minimum(aa[:, None, 3], bb[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (aa[:, 2] - aa[:, 0]) * (aa[:, 3] - aa[:, 1])
    area_b = (bb[:, 2] - bb[:, 0]) * (bb[:, 3] - bb[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


class IouTracker:
    """Associates detections frame to frame.

    Args:
        iou_threshold: minimum IoU between a track's last box (shifted by its velocity) and a detection.
        max_missed_seconds: a track not matched for this long (media time) ends.
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed_seconds: float = 0.5) -> None:
        self.iou_threshold = iou_threshold
        self.max_missed_seconds = max_missed_seconds
        self._next_id = 1
        self._tracks: dict[int, TrackState] = {}
        self._velocity: dict[int, tuple[float, float]] = {}

    def _predicted(self, track: TrackState, ts: float) -> Box:
        vx, vy = self._velocity.get(track.track_id, (0.0, 0.0))
        dt = max(0.0, ts - track.last_ts)
        b = track.box
        return Box(b.x1 + vx * dt, b.y1 + vy * dt, b.x2 + vx * dt, b.y2 + vy * dt)

    def update(self, dets: Detections) -> Tracks:
        """Match ``dets`` to live tracks, start tracks for unmatched detections, end stale tracks."""
        ts = dets.ts
        ids = list(self._tracks)
        predicted = [self._predicted(self._tracks[i], ts) for i in ids]
        boxes = [d.box for d in dets.items]
        ious = iou_matrix(predicted, boxes)
        matched_det: dict[int, Detection] = {}
        if ious.size:
            rows, cols = linear_sum_assignment(-ious)
            for r, c in zip(rows, cols, strict=True):
                if ious[r, c] >= self.iou_threshold:
                    matched_det[ids[r]] = dets.items[c]
        used = {id(d) for d in matched_det.values()}
        active: list[TrackState] = []
        ended: list[int] = []
        for tid in ids:
            track = self._tracks[tid]
            det = matched_det.get(tid)
            if det is not None:
                dt = ts - track.last_ts
                if dt > 0:
                    (ocx, ocy), (ncx, ncy) = track.box.center, det.box.center
                    ovx, ovy = self._velocity.get(tid, ((ncx - ocx) / dt, (ncy - ocy) / dt))
                    self._velocity[tid] = (0.5 * ovx + 0.5 * (ncx - ocx) / dt, 0.5 * ovy + 0.5 * (ncy - ocy) / dt)
                track.box = det.box
                track.detection = det
                track.last_ts = ts
                track.hits += 1
                active.append(track)
            elif ts - track.last_ts > self.max_missed_seconds:
                ended.append(tid)
                del self._tracks[tid]
                self._velocity.pop(tid, None)
            else:
                track.detection = None
                active.append(track)
        for det in dets.items:
            if id(det) in used:
                continue
            track = TrackState(track_id=self._next_id, box=det.box, detection=det, first_ts=ts, last_ts=ts)
            self._next_id += 1
            self._tracks[track.track_id] = track
            active.append(track)
        return Tracks(dets.frame_index, ts, dets.camera_id, tuple(active), tuple(ended))

    def finish(self, frame_index: int, ts: float, camera_id: str) -> Tracks:
        """End every live track (the source ended)."""
        ended = tuple(self._tracks)
        self._tracks.clear()
        self._velocity.clear()
        return Tracks(frame_index, ts, camera_id, (), ended)
