"""Multi-object tracking by box overlap, with optimal (Hungarian) assignment.

Faces in metro video move little between frames at the analysed rate, so IoU association with a short memory
is enough for recognition tracks. We use scipy's ``linear_sum_assignment`` for the assignment; we do not use
norfair (it pins numpy < 2) or ``trackers`` (it pulls OpenCV 5, which has no HOG people detector).

Track ids are counted per tracker instance (one per camera), never in class-level state.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from scipy.optimize import linear_sum_assignment

from metrosight.core.types import Box, Detection, Detections, Tracks, TrackState


class FaceTracker(Protocol):
    """What the camera pipeline needs of a face tracker (one instance per camera).

    ``update`` runs on a frame where detection ran, ``carry`` on a frame where it did not (skipped by motion gating),
    ``finish`` when the source ends or a scene cut ends every track. Times are media seconds.
    """

    def update(self, dets: Detections) -> Tracks:
        """Match the frame's detections to live tracks, start tracks for the rest, end stale tracks."""
        ...

    def carry(self, frame_index: int, ts: float, camera_id: str) -> Tracks:
        """No detection ran on this frame: every live track kept at its prediction, none ages or ends."""
        ...

    def finish(self, frame_index: int, ts: float, camera_id: str) -> Tracks:
        """End every live track."""
        ...

    def split(self, track_id: int) -> TrackState:
        """The face the live track ``track_id`` took at the latest ``update`` is another person's: the track ends
        (forgotten here; the caller ends it downstream) and a new track starts from that detection.

        Returns:
            The new track (a fresh id; ``first_ts`` and ``last_ts`` the latest frame's media time).

        Raises:
            KeyError: no live track ``track_id``. ValueError: the track took no detection at the latest frame.
        """
        ...


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
        self._seen: dict[int, Box] = {}  # track id -> its last detected box (predictions start from it)
        self._carried: dict[int, float] = {}  # track id -> media seconds carried (no detection ran) since last seen
        self._missed: dict[int, int] = {}  # track id -> detection runs missed in a row
        self._last_ts: float | None = None  # the latest frame given, by update or carry

    def _predicted(self, track: TrackState, ts: float) -> Box:
        vx, vy = self._velocity.get(track.track_id, (0.0, 0.0))
        dt = max(0.0, ts - track.last_ts)
        b = self._seen.get(track.track_id, track.box)
        return Box(b.x1 + vx * dt, b.y1 + vy * dt, b.x2 + vx * dt, b.y2 + vy * dt)

    def update(self, dets: Detections) -> Tracks:
        """Match ``dets`` to live tracks, start tracks for unmatched detections, end stale tracks."""
        ts = dets.ts
        self._last_ts = ts
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
        resumed = [tid for tid in ids if tid in matched_det and tid in self._missed]
        for tid in ids:
            track = self._tracks[tid]
            det = matched_det.get(tid)
            if det is not None:
                dt = ts - track.last_ts
                if dt > 0:
                    (ocx, ocy), (ncx, ncy) = self._seen.get(tid, track.box).center, det.box.center
                    ovx, ovy = self._velocity.get(tid, ((ncx - ocx) / dt, (ncy - ocy) / dt))
                    self._velocity[tid] = (0.5 * ovx + 0.5 * (ncx - ocx) / dt, 0.5 * ovy + 0.5 * (ncy - ocy) / dt)
                track.box = self._seen[tid] = det.box
                self._carried.pop(tid, None)
                self._missed.pop(tid, None)
                track.detection = det
                track.last_ts = ts
                track.hits += 1
                active.append(track)
            elif ts - track.last_ts - self._carried.get(tid, 0.0) > self.max_missed_seconds:
                ended.append(tid)
                self._forget(tid)
            else:
                track.box = self._seen.get(tid, track.box)
                track.detection = None
                self._missed[tid] = self._missed.get(tid, 0) + 1
                active.append(track)
        for det in dets.items:
            if id(det) in used:
                continue
            active.append(self._start(det, ts))
        return Tracks(dets.frame_index, ts, dets.camera_id, tuple(active), tuple(ended), tuple(resumed))

    def _start(self, det: Detection, ts: float) -> TrackState:
        track = TrackState(track_id=self._next_id, box=det.box, detection=det, first_ts=ts, last_ts=ts)
        self._next_id += 1
        self._tracks[track.track_id] = track
        self._seen[track.track_id] = det.box
        return track

    def split(self, track_id: int) -> TrackState:
        """End the live track ``track_id`` here and start a new track from the detection it took at the latest
        ``update`` (another person's face; see :meth:`FaceTracker.split`).

        Raises:
            KeyError: no live track ``track_id``. ValueError: the track took no detection at the latest frame.
        """
        det = self._tracks[track_id].detection
        if det is None:
            raise ValueError(f"track {track_id} took no detection at the latest frame: nothing to split off")
        ts = self._tracks[track_id].last_ts
        self._forget(track_id)
        return self._start(det, ts)

    def carry(self, frame_index: int, ts: float, camera_id: str) -> Tracks:
        """No detection ran on this frame (skipped by motion gating): every live track is kept, its box moved to
        where its velocity puts it at ``ts`` (pixels), ``detection`` None; nothing ages (the media time since the
        previous frame does not count toward ``max_missed_seconds``) and nothing ends."""
        step = 0.0 if self._last_ts is None else max(0.0, ts - self._last_ts)
        self._last_ts = max(ts, self._last_ts or ts)
        for tid, track in self._tracks.items():
            self._carried[tid] = self._carried.get(tid, 0.0) + step
            track.box = self._predicted(track, ts)
            track.detection = None
        return Tracks(frame_index, ts, camera_id, tuple(self._tracks.values()), ())

    def _forget(self, tid: int) -> None:
        del self._tracks[tid]
        self._velocity.pop(tid, None)
        self._seen.pop(tid, None)
        self._carried.pop(tid, None)
        self._missed.pop(tid, None)

    def finish(self, frame_index: int, ts: float, camera_id: str) -> Tracks:
        """End every live track (the source ended)."""
        ended = tuple(self._tracks)
        for tid in ended:
            self._forget(tid)
        return Tracks(frame_index, ts, camera_id, (), ended)
