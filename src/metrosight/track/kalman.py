"""Person tracking: a constant-velocity Kalman filter per track and Hungarian assignment (SORT-style).

Why our own: the maintained tracker libraries do not fit this install — norfair pins numpy < 2, ``trackers`` pulls
OpenCV 5 (which has no HOG people detector), supervision 0.31 dropped its ByteTrack, motpy is unmaintained since
2021. The algorithm is small (SORT, Bewley et al. 2016): predict each track's box with a Kalman filter, assign
detections by IoU with scipy's ``linear_sum_assignment``, fall back to centre distance (in box heights) for people
whose boxes no longer overlap their prediction (low frame rates, fast movers), and let tracks coast through short
detector gaps. Times are media seconds, so a dropped or skipped frame only widens the prediction.

Track ids are counted per tracker instance (one per camera), never in class-level state.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from metrosight.core.types import Box, Detection, Detections, Tracks, TrackState
from metrosight.track.iou import iou_matrix


class _Kalman:
    """State ``[cx, cy, w, h, vcx, vcy, vw, vh]`` (pixels, pixels per second)."""

    def __init__(self, box: Box, pos_noise: float, vel_noise: float) -> None:
        cx, cy = box.center
        self.x = np.array([cx, cy, box.width, box.height, 0, 0, 0, 0], dtype=np.float64)
        h = max(box.height, 1.0)
        self.P = np.diag([(0.1 * h) ** 2] * 4 + [(1.0 * h) ** 2] * 4)
        self.pos_noise, self.vel_noise = pos_noise, vel_noise

    def predict(self, dt: float) -> None:
        if dt <= 0:
            return
        F = np.eye(8)
        F[:4, 4:] = np.eye(4) * dt
        h = max(self.x[3], 1.0)
        q = np.diag([(self.pos_noise * h) ** 2 * dt] * 4 + [(self.vel_noise * h) ** 2 * dt] * 4)
        self.x = F @ self.x
        self.P = F @ self.P @ F.T + q
        self.x[2:4] = np.maximum(self.x[2:4], 1.0)

    def update(self, box: Box) -> None:
        cx, cy = box.center
        z = np.array([cx, cy, box.width, box.height])
        H = np.zeros((4, 8))
        H[:, :4] = np.eye(4)
        R = np.diag([(0.05 * box.height) ** 2] * 4)
        S = H @ self.P @ H.T + R
        K = self.P @ H.T @ np.linalg.inv(S)
        self.x = self.x + K @ (z - H @ self.x)
        self.P = (np.eye(8) - K @ H) @ self.P

    def box(self) -> Box:
        cx, cy, w, h = self.x[:4]
        return Box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


class KalmanTracker:
    """SORT-style multi-object tracker (people for behaviour analytics, faces for recognition).

    Args:
        iou_threshold: minimum IoU between a track's predicted box and a detection to match by overlap.
        max_centre_distance: second pass: a detection whose centre is within this many box heights of an unmatched
            track's prediction continues it.
        centre_distance_per_second: the second pass's gate widens by this many box heights per second since the
            track was last seen, up to ``max_missed_seconds`` (the prediction grows less certain; 0: a fixed gate).
        max_missed_seconds: a track not matched for this long (media time during which detection ran) ends.
        max_missed_detections: ... and only once it also missed more than this many detection runs in a row, so
            that at a low analysis rate one or two missed detections do not end it (0: time alone).
        min_hits: a track is reported (and can end) only after this many matched detections; single-frame false
            detections never become tracks.
        max_height_ratio: second pass only: a detection whose height differs from the prediction's by more than
            this factor (either way) does not continue it (another, nearer or farther, face; None: no limit).
        pos_noise / vel_noise: process noise of the filter, box heights per sqrt(second) (position; velocity per
            second).
    """

    def __init__(
        self,
        iou_threshold: float = 0.2,
        max_centre_distance: float = 0.5,
        max_missed_seconds: float = 1.5,
        min_hits: int = 2,
        centre_distance_per_second: float = 0.0,
        max_missed_detections: int = 0,
        max_height_ratio: float | None = None,
        pos_noise: float = 0.5,
        vel_noise: float = 1.0,
    ) -> None:
        self.iou_threshold = iou_threshold
        self.max_centre_distance = max_centre_distance
        self.centre_distance_per_second = centre_distance_per_second
        self.max_missed_seconds = max_missed_seconds
        self.max_missed_detections = max_missed_detections
        self.min_hits = min_hits
        self.max_height_ratio = max_height_ratio
        self.pos_noise, self.vel_noise = pos_noise, vel_noise
        self._next_id = 1
        self._tracks: dict[int, TrackState] = {}
        self._filters: dict[int, _Kalman] = {}
        self._missed: dict[int, tuple[int, float]] = {}  # track id -> (detection runs missed, media seconds unseen)
        self._last_ts: float | None = None

    def _predict(self, ts: float) -> list[int]:
        dt = 0.0 if self._last_ts is None else max(0.0, ts - self._last_ts)
        self._last_ts = ts if self._last_ts is None else max(ts, self._last_ts)
        ids = list(self._tracks)
        for tid in ids:
            self._filters[tid].predict(dt)
        return ids

    def update(self, dets: Detections) -> Tracks:
        """Predict every track to ``dets.ts``, match ``dets``, start tracks for the rest, end stale tracks."""
        ts = dets.ts
        step = 0.0 if self._last_ts is None else max(0.0, ts - self._last_ts)
        ids = self._predict(ts)
        predicted = [self._filters[tid].box() for tid in ids]
        items = list(dets.items)
        matched, unsure = self._assign(ids, predicted, items, ts)
        used = set(matched.values())
        active: list[TrackState] = []
        ended: list[int] = []
        # a track that missed detection runs, or took a face by distance or of another size: maybe another person
        resumed = [tid for tid in ids if tid in matched and (tid in self._missed or tid in unsure)]
        for tid, pred in zip(ids, predicted, strict=True):
            track = self._tracks[tid]
            j = matched.get(tid)
            if j is not None:
                det = items[j]
                self._filters[tid].update(det.box)
                track.box, track.detection, track.last_ts = det.box, det, ts
                track.hits += 1
                self._missed.pop(tid, None)
            elif self._misses(tid, step):
                del self._tracks[tid], self._filters[tid]
                self._missed.pop(tid, None)
                if track.hits >= self.min_hits:
                    ended.append(tid)
                continue
            else:
                track.box, track.detection = pred, None
            if track.hits >= self.min_hits:
                active.append(track)
        for j, det in enumerate(items):
            if j in used:
                continue
            track = self._start(det, ts)
            if self.min_hits <= 1:
                active.append(track)
        reported = tuple(tid for tid in resumed if self._tracks[tid].hits >= self.min_hits)
        return Tracks(dets.frame_index, ts, dets.camera_id, tuple(active), tuple(ended), reported)

    def _start(self, det: Detection, ts: float) -> TrackState:
        track = TrackState(track_id=self._next_id, box=det.box, detection=det, first_ts=ts, last_ts=ts)
        self._next_id += 1
        self._tracks[track.track_id] = track
        self._filters[track.track_id] = _Kalman(det.box, pos_noise=self.pos_noise, vel_noise=self.vel_noise)
        return track

    def split(self, track_id: int) -> TrackState:
        """End the live track ``track_id`` here and start a new track from the detection it took at the latest
        ``update``: that face is another person's (see :meth:`~metrosight.track.iou.FaceTracker.split`). The new
        track counts ``min_hits`` hits: it is reported from now on (the caller took it at once), so its end is too.

        Raises:
            KeyError: no live track ``track_id``. ValueError: the track took no detection at the latest frame.
        """
        det = self._tracks[track_id].detection
        if det is None:
            raise ValueError(f"track {track_id} took no detection at the latest frame: nothing to split off")
        ts = self._tracks[track_id].last_ts
        del self._tracks[track_id], self._filters[track_id]
        self._missed.pop(track_id, None)
        track = self._start(det, ts)
        track.hits = max(track.hits, self.min_hits)
        return track

    def _misses(self, tid: int, step: float) -> bool:
        """Count one missed detection run of ``step`` seconds for ``tid``; whether the track ends."""
        runs, unseen = self._missed.get(tid, (0, 0.0))
        runs, unseen = runs + 1, unseen + step
        self._missed[tid] = (runs, unseen)
        return unseen > self.max_missed_seconds and runs > self.max_missed_detections

    def carry(self, frame_index: int, ts: float, camera_id: str) -> Tracks:
        """No detection ran on this frame (skipped by motion gating): every live track is moved to its prediction
        at ``ts`` (pixels) with ``detection`` None; nothing ages (neither the media time since the previous frame
        nor a missed detection counts toward ending) and nothing ends."""
        for tid in self._predict(ts):
            track = self._tracks[tid]
            track.box, track.detection = self._filters[tid].box(), None
        active = tuple(t for t in self._tracks.values() if t.hits >= self.min_hits)
        return Tracks(frame_index, ts, camera_id, active, ())

    def _assign(
        self, ids: list[int], predicted: list[Box], items: list[Detection], ts: float
    ) -> tuple[dict[int, int], set[int]]:
        """Track id -> detection index, by overlap then by centre distance; and the ids matched by distance, or by
        overlap to a face whose height differs from the prediction's by more than ``max_height_ratio`` (a nearer
        face passing in front)."""
        matched: dict[int, int] = {}
        unsure: set[int] = set()
        if not ids or not items:
            return matched, unsure
        ious = iou_matrix(predicted, [d.box for d in items])
        rows, cols = linear_sum_assignment(-ious)
        for r, c in zip(rows, cols, strict=True):
            if ious[r, c] >= self.iou_threshold:
                matched[ids[r]] = int(c)
                ratio = max(items[c].box.height, 1.0) / max(predicted[r].height, 1.0)
                if self.max_height_ratio is not None and max(ratio, 1 / ratio) > self.max_height_ratio:
                    unsure.add(ids[r])
        free_t = [i for i, tid in enumerate(ids) if tid not in matched]
        free_d = [j for j in range(len(items)) if j not in set(matched.values())]
        if free_t and free_d:
            pc = np.array([predicted[i].center for i in free_t])
            ph = np.array([max(predicted[i].height, 1.0) for i in free_t])
            # the gate widens with the time unseen, but never beyond what a track may stay unseen by time alone
            # (max_missed_seconds): at a low analysis rate, or while carried, a track that survives on its miss count
            # would otherwise take any face of its size anywhere in the frame (another person)
            since = np.array(
                [min(max(0.0, ts - self._tracks[ids[i]].last_ts), self.max_missed_seconds) for i in free_t]
            )
            gate = self.max_centre_distance + self.centre_distance_per_second * since
            dc = np.array([items[j].box.center for j in free_d])
            dist = np.hypot(pc[:, None, 0] - dc[None, :, 0], pc[:, None, 1] - dc[None, :, 1]) / ph[:, None]
            if self.max_height_ratio is not None:
                dh = np.array([max(items[j].box.height, 1.0) for j in free_d])
                ratio = np.maximum(dh[None, :] / ph[:, None], ph[:, None] / dh[None, :])
                dist = np.where(ratio <= self.max_height_ratio, dist, 1e6)
            rows, cols = linear_sum_assignment(dist)
            for r, c in zip(rows, cols, strict=True):
                if dist[r, c] <= gate[r]:
                    matched[ids[free_t[r]]] = free_d[c]
                    unsure.add(ids[free_t[r]])
        return matched, unsure

    def finish(self, frame_index: int, ts: float, camera_id: str) -> Tracks:
        """End every live track (the source ended)."""
        ended = tuple(tid for tid, t in self._tracks.items() if t.hits >= self.min_hits)
        self._tracks.clear()
        self._filters.clear()
        self._missed.clear()
        return Tracks(frame_index, ts, camera_id, (), ended)
