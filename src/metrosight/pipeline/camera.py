"""The camera worker: the composition of stages for one camera.

frame → detect faces → track → align + quality → embed the best shots → fuse per track → match → alert.

No I/O here: alerts leave through the ``publish`` callbacks the caller gives (the bus). Descriptors of faces live in
:class:`~metrosight.recognize.fusion.TrackFusion` and are dropped when their track ends.
"""

from __future__ import annotations

import bisect
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from metrosight.bus.payloads import AlertUpdateV1, AlertV1
from metrosight.config.model import Settings
from metrosight.core.types import Box, Detection, Detections, FaceSample, Frame, Match, Tracks, TrackState
from metrosight.detect.areas import (
    EDGE_TOLERANCE,
    crops,
    dedupe,
    drop_cut_landmarks,
    frame_scale,
    landmark_box,
    outside,
)
from metrosight.detect.base import FaceDetector
from metrosight.detect.gate import DetectionGate, DetectionPlan, gate_for
from metrosight.pipeline.continuity import another_persons_shot, check_resumed
from metrosight.pipeline.phases import DetectionArea, DetectionRequest, EmbedRequest
from metrosight.policy.redact import redacted_crop
from metrosight.recognize.align import AlignmentError, align, context_crop
from metrosight.recognize.embedder import Embedder
from metrosight.recognize.fusion import TrackFusion
from metrosight.recognize.gallery import Matcher
from metrosight.recognize.quality import assess, score_bound
from metrosight.track.faces import make_cut_detector, make_face_tracker
from metrosight.track.iou import FaceTracker

log = logging.getLogger(__name__)

STAGES = ("detect", "track", "align", "embed", "match")
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)  # seconds (upper bounds)


@dataclass(slots=True)
class CameraStats:
    """Counters of one camera run. ``stage_seconds`` sums wall time per stage (``STAGES``); ``stage_hist`` counts
    each stage's per-frame times in ``STAGE_BUCKETS`` (non-cumulative; the last slot is above the largest bound)."""

    frames: int = 0
    faces: int = 0
    tracks: int = 0
    alerts: int = 0
    embedded: int = 0
    cuts: int = 0
    gated: int = 0  # frames where motion gating ran no detection at all
    detect_pixels: int = 0  # frame pixels sent to the face detector (whole frame, regions or moving areas)
    frame_pixels: int = 0  # pixels of the analysed frames (detect_pixels / frame_pixels: the share searched)
    resumes_checked: int = 0  # faces embedded to check a track goes on with its person (resumed; alerted, periodic)
    splits: int = 0  # tracks ended because the face they resumed on was another person's
    stage_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    stage_hist: dict[str, list[int]] = field(default_factory=dict)

    def observe(self, stage: str, seconds: float) -> None:
        """Add one run of ``stage`` taking ``seconds`` (wall time)."""
        self.stage_seconds[stage] += seconds
        hist = self.stage_hist.get(stage)
        if hist is None:
            hist = self.stage_hist[stage] = [0] * (len(STAGE_BUCKETS) + 1)
        hist[bisect.bisect_left(STAGE_BUCKETS, seconds)] += 1


def encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    import cv2  # OpenCV: heavy, loaded on first use

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return bytes(buf) if ok else b""


class CameraPipeline:
    """Runs the stages for one camera.

    Args:
        settings: the configuration.
        detector: face detector.
        embedder: descriptor backend.
        matcher: matcher over the active gallery (may be empty: then no face is embedded at all).
        publish_alert: called with each new alert.
        publish_update: called when an alerted track ends, with its final last-seen time.
        run_id: stamped on alerts (the store's run row).
        landmarker: recomputes 5-point landmarks on the full-resolution frame when detection ran downscaled.
        policy: called before each frame; returns a new ``(matcher, identification allowed)`` when the gallery or a
            no-identification window changed, else None.
        event_scope: the event-id scope (see below); None makes a fresh one.
        group: the camera's group (station or line), stamped on alerts for episodes.
        identification_allowed: whether faces may be identified from the first frame (no window on).
        clock: wall-clock time (Unix seconds); the run's media time 0 is taken as ``clock() - ts`` at its first
            frame, so alerts carry when they were seen.
        gate: where each frame is searched for faces (regions, motion gating); None: the camera's configuration
            (:func:`~metrosight.detect.gate.gate_for`, built at the first frame, when its camera id is known).
    """

    def __init__(
        self,
        settings: Settings,
        detector: FaceDetector,
        embedder: Embedder,
        matcher: Matcher,
        publish_alert: Callable[[AlertV1], None],
        publish_update: Callable[[AlertUpdateV1], None] | None = None,
        run_id: int | None = None,
        landmarker: Callable[[np.ndarray, Box], np.ndarray] | None = None,
        policy: Callable[[], tuple[Matcher, bool] | None] | None = None,
        event_scope: str | None = None,
        group: str | None = None,
        identification_allowed: bool = True,
        clock: Callable[[], float] = time.time,
        gate: DetectionGate | None = None,
    ) -> None:
        self.settings = settings
        self.detector = detector
        self.embedder = embedder
        self.matcher = matcher
        self.publish_alert = publish_alert
        self.publish_update = publish_update
        self.run_id = run_id
        self.landmarker = landmarker
        self.policy = policy
        self.group = group
        self.identification_allowed = identification_allowed
        self.clock = clock
        self.gate = gate
        self.media_origin: float | None = None
        rec = settings.recognition
        self.tracker: FaceTracker = make_face_tracker(settings.tracking)
        self.fusion = TrackFusion(matcher, rec.min_samples, rec.max_samples, rec.decide_every_seconds)
        self.cuts = make_cut_detector(settings.tracking)
        self.stats = CameraStats()
        # event ids are ``camera:scope:birth`` where birth is "<frame index>.<rank among tracks born there>": the
        # same frames give the same ids, so a worker that resumes a file elsewhere (same scope) re-raises the same
        # alerts and the store keeps one of each; the default scope is fresh per run
        self.event_scope = event_scope or uuid.uuid4().hex[:12]
        self._alerted: dict[int, tuple[str, float]] = {}  # track id -> (event id, last seen)
        self._alerts: dict[int, AlertV1] = {}  # track id -> its alert (its lists and camera go with the update)
        self._track_first: dict[int, float] = {}
        self._track_birth: dict[int, str] = {}
        self._checked_at: dict[int, float] = {}  # alerted track id -> media time its face was last found its own
        self._last_ts = 0.0
        self._last_index = -1
        self._camera_id = "cam0"
        self.last_boxes: list[Box] = []
        self._live_boxes: list[Box] = []  # the live face tracks' boxes after the last frame (searched around)

    @property
    def camera_stats(self) -> CameraStats:
        """The run's counters (see :class:`~metrosight.pipeline.processor.FrameProcessor`)."""
        return self.stats

    @property
    def gallery_size(self) -> int:
        """Entries matched against now."""
        return len(self.matcher.gallery)

    @property
    def recognising(self) -> bool:
        """False when no entry is active or a no-identification window is on: faces are then detected and
        tracked but never embedded."""
        return self.identification_allowed and len(self.matcher.gallery) > 0

    def apply_policy(self, matcher: Matcher, identification_allowed: bool) -> None:
        """Switch to a new gallery (entries approved, revoked or expired) and/or a no-identification window,
        effective from the next frame. When identification is switched off, every descriptor held is dropped."""
        self.matcher = matcher
        self.fusion.matcher = matcher
        if self.identification_allowed and not identification_allowed:
            for tid in self.fusion.track_ids():
                if tid not in self._alerted:
                    self.fusion.forget(tid)
        self.identification_allowed = identification_allowed

    def prepare(self, frame: Frame) -> DetectionRequest:
        """Phase 1 of a frame (see :mod:`metrosight.pipeline.phases`): applies gallery and window changes, counts the
        frame, checks for a scene cut, and says which images to detect faces in (:meth:`_plan`): the frame (or the
        frame downscaled to ``detection.max_width`` for a detector that does not scale frames itself), crops of it
        (regions, moving areas), or none (motion gating)."""
        self._camera_id = frame.camera_id
        self._last_ts, self._last_index = frame.ts, frame.index
        if self.media_origin is None:
            self.media_origin = self.clock() - frame.ts
        if self.policy is not None:
            changed = self.policy()
            if changed is not None:
                self.apply_policy(*changed)
        self.stats.frames += 1
        t0 = time.perf_counter()
        cut = self.cuts.is_cut(frame.image, frame.ts)
        plan = self._plan(frame, cut)
        if plan.areas is None:
            areas: tuple[DetectionArea, ...] = (self._whole(frame),)
        else:
            scale = frame_scale(self.detector, frame.width, frame.height, self.settings.detection.max_width)
            found = crops(frame.image, plan.areas, scale)
            areas = tuple(DetectionArea(im, (w.x1, w.y1), s, w) for im, w, s in found)
        return DetectionRequest(frame, areas, cut, time.perf_counter() - t0)

    def _plan(self, frame: Frame, cut: bool) -> DetectionPlan:
        """Where to search ``frame`` (the camera's :class:`~metrosight.detect.gate.DetectionGate`), counted."""
        if self.gate is None:
            self.gate = gate_for(self.settings, frame.camera_id)
        plan = self.gate.plan(frame.image, frame.ts, self._live_boxes, cut)
        pixels = frame.width * frame.height
        self.stats.frame_pixels += pixels
        self.stats.detect_pixels += round(plan.share * pixels)
        self.stats.gated += int(plan.areas is not None and not plan.areas)
        return plan

    def _whole(self, frame: Frame) -> DetectionArea:
        """The whole frame for the detector: as it is, or downscaled to ``detection.max_width``."""
        max_w = self.settings.detection.max_width
        image = frame.image
        if frame.width <= max_w or self.detector.scales_input:
            # detectors that pick their own input size (CenterFace) get the full frame: their boxes and landmarks
            # are already in its pixels
            return DetectionArea(image)
        import cv2  # OpenCV: heavy, loaded on first use

        factor = frame.width / max_w
        # area averaging is ~5x slower than bilinear at a non-integer factor under 2 (1080p -> 1280: 9 vs 1.8 ms),
        # where bilinear hardly aliases (same faces found on the crowd sample); integer factors have a fast path
        interp = cv2.INTER_AREA if factor >= 2 or factor.is_integer() else cv2.INTER_LINEAR
        small = cv2.resize(image, (max_w, int(round(frame.height / factor))), interpolation=interp)
        return DetectionArea(small, scale=factor)

    def _in_frame(self, request: DetectionRequest, found: Sequence[Sequence[Detection]]) -> list[Detection]:
        """The detections of every area of ``request`` in frame pixels: a face cut by a crop's inner edge loses its
        landmarks (never a best shot); landmarks recomputed on the full frame (``landmarker``) for the other faces
        found downscaled; a face found in two overlapping crops counted once."""
        if len(found) != len(request.areas):
            raise ValueError(f"{len(found)} detection lists for {len(request.areas)} detection areas")
        dets: list[Detection] = []
        min_px = self.settings.detection.min_face_px
        image = request.frame.image
        size = (request.frame.width, request.frame.height)
        for area, area_dets in zip(request.areas, found, strict=True):
            mapped = area.to_frame(area_dets)
            if area.window is not None:
                mapped = drop_cut_landmarks(mapped, area.window, size, EDGE_TOLERANCE * area.scale)
            if area.scale != 1.0 and self.landmarker is not None:
                mapped = [
                    Detection(d.box, d.score, self.landmarker(image, landmark_box(self.detector, d.box)), d.kind, d.yaw)
                    if d.box.height >= min_px and d.landmarks is not None
                    else d
                    for d in mapped
                ]
            dets.extend(mapped)
        return dedupe(dets) if len(request.areas) > 1 else dets

    def _blurred(self, request: DetectionRequest, dets: list[Detection]) -> list[Box]:
        """The faces to blur in a snapshot of this frame: those found, and those of earlier frames where this frame
        was not searched (still there; none left after a search of the whole frame)."""
        if not request.areas:
            return self.last_boxes  # nothing searched: the faces of the last search
        windows = [a.window for a in request.areas]
        kept = [] if any(w is None for w in windows) else outside(self.last_boxes, [w for w in windows if w])
        return [d.box for d in dets] + kept

    def after_detection(self, request: DetectionRequest, found: Sequence[Sequence[Detection]]) -> EmbedRequest:
        """Phase 2 of a frame: scene cuts, tracking, alignment and quality.

        Args:
            request: what :meth:`prepare` returned for the frame.
            found: the detector's faces in each of ``request.areas``, in order (boxes in the area's image pixels).

        Returns:
            The chips to embed (none when nothing is to be recognised) and what :meth:`after_embedding` needs.

        Raises:
            ValueError: ``found`` does not have one list per area.
        """
        frame = request.frame
        t1 = time.perf_counter()
        dets = self._in_frame(request, found)
        self.stats.faces += len(dets)
        self.last_boxes = self._blurred(request, dets)  # for redacted snapshots (every face blurred)
        out = EmbedRequest(frame)
        if request.cut:  # a new shot: no track may carry an identity across it
            self.stats.cuts += 1
            for tid in self.tracker.finish(frame.index, frame.ts, frame.camera_id).ended:
                out.raised.extend(self._end_track(tid, frame.ts, final_ts=None))
        if request.areas:
            tracks = self.tracker.update(Detections(frame.index, frame.ts, frame.camera_id, tuple(dets)))
        else:  # gated: nothing searched, the live tracks carried as they are
            tracks = self.tracker.carry(frame.index, frame.ts, frame.camera_id)
        tracks = self._continuity(frame, tracks, out)
        self._live_boxes = [t.box for t in tracks.active]
        born = 0
        for t in tracks.active:
            if t.track_id not in self._track_first:
                self._track_first[t.track_id] = t.first_ts
                self._track_birth[t.track_id] = f"{frame.index}.{born}"
                born += 1
                self.stats.tracks += 1
        t2 = time.perf_counter()
        self.stats.observe("track", t2 - t1)
        out.active, out.ended = tracks.active, tracks.ended
        if self.recognising:
            out.samples = self._pick(frame, tracks.active, dets)
            self.stats.observe("align", time.perf_counter() - t2)
        return out

    def _continuity(self, frame: Frame, tracks: Tracks, out: EmbedRequest) -> Tracks:
        """Tracks resumed on another person's face split (:mod:`metrosight.pipeline.continuity`): each ends with
        its own last-seen time (alert update, final decision), its face goes on in a new track. An alerted track's
        face is also checked every ``decide_every_seconds`` (``due``): it is no longer embedded for matching."""
        every = self.settings.recognition.decide_every_seconds
        due = {tid for tid in self._alerted if frame.ts - self._checked_at.get(tid, -np.inf) >= every}
        min_px = self.settings.detection.min_face_px
        cont = check_resumed(
            tracks, frame, self.tracker, self.fusion, self.embedder, self._alerted, self.recognising, min_px, due
        )
        self._checked_at.update((tid, frame.ts) for tid in cont.confirmed if tid in self._alerted)
        self.stats.resumes_checked += cont.checked
        self.stats.splits += len(cont.split)
        for tid in cont.split:
            out.raised.extend(self._end_track(tid, frame.ts, final_ts=None))
        for tid in cont.restarted:  # unchecked (no shot held): sightings from here on only
            if tid in self._track_first:
                self._track_first[tid] = frame.ts
        return cont.tracks

    def after_embedding(self, request: EmbedRequest, descriptors: np.ndarray) -> list[AlertV1]:
        """Phase 3 of a frame: fusion per track, matching, alerts, and the end of tracks that ended.

        Args:
            request: what :meth:`after_detection` returned for the frame.
            descriptors: ``(N, D)`` float32, one per chip of ``request.chips``, in order.

        Returns:
            Every alert raised at this frame (already published), the scene cut's first.

        Raises:
            ValueError: not one descriptor per chip.
        """
        frame = request.frame
        raised = list(request.raised)
        if request.samples:
            if len(descriptors) != len(request.samples):
                raise ValueError(f"{len(descriptors)} descriptors for {len(request.samples)} chips")
            t0 = time.perf_counter()
            self.stats.embedded += len(request.samples)
            tids: list[int] = []  # a shot clearly not its track's person splits the track (see _split_at_shot)
            k0 = self.stats.splits
            for sample, desc in zip(request.samples, descriptors, strict=True):
                if another_persons_shot(self.fusion, sample.track_id, desc, self._alerted):
                    sample = self._split_at_shot(sample, frame, raised, self.stats.splits - k0)
                self.fusion.add(sample, desc)
                tids.append(sample.track_id)
            for tid in tids:
                found = self.fusion.decide(tid, frame.ts)
                if found is not None:
                    raised.append(self._raise(tid, found, frame.ts))
            self.stats.observe("match", time.perf_counter() - t0)
        for tid in request.ended:
            raised.extend(self._end_track(tid, frame.ts, final_ts=None))
        return raised

    def _split_at_shot(self, sample: FaceSample, frame: Frame, raised: list[AlertV1], k: int) -> FaceSample:
        """``sample`` is another person's than its track's shots (stepped into its place between two frames): the
        track ends here and the face goes on in a new track (birth ``<frame>.s<k>``); returns the sample re-keyed."""
        new = self.tracker.split(sample.track_id)
        raised.extend(self._end_track(sample.track_id, frame.ts, final_ts=None))
        self._track_first[new.track_id], self._track_birth[new.track_id] = new.first_ts, f"{frame.index}.s{k}"
        self.stats.tracks, self.stats.splits = self.stats.tracks + 1, self.stats.splits + 1
        return replace(sample, track_id=new.track_id)

    def process(self, frame: Frame) -> list[AlertV1]:
        """Run every stage on one frame (the three phases with one detector and one embedder call); returns the
        alerts raised at this frame (already published)."""
        request = self.prepare(frame)
        t0 = time.perf_counter()
        found = [self.detector.detect(a.image) for a in request.areas]
        self.stats.observe("detect", request.seconds + time.perf_counter() - t0)
        pending = self.after_detection(request, found)
        if not pending.samples:
            return self.after_embedding(pending, np.zeros((0, self.embedder.dim), np.float32))
        t1 = time.perf_counter()
        descriptors = self.embedder.embed(pending.chips)
        self.stats.observe("embed", time.perf_counter() - t1)
        return self.after_embedding(pending, descriptors)

    def _pick(self, frame: Frame, active: tuple[TrackState, ...], dets: list[Detection]) -> list[FaceSample]:
        """The faces of ``active`` tracks worth embedding at this frame: aligned chips that pass quality and can
        improve their track's shots. Tracks already alerted only get their last-seen time updated."""
        rec = self.settings.recognition
        min_px = self.settings.detection.min_face_px
        pending: list[FaceSample] = []
        for t in active:
            det = t.detection
            if det is None:
                continue
            if t.track_id in self._alerted:
                event_id, _ = self._alerted[t.track_id]
                self._alerted[t.track_id] = (event_id, t.last_ts)
                continue
            if det.box.height < min_px or det.landmarks is None:
                continue
            # no chip can score higher: skip hopeless faces
            size = (frame.width, frame.height)  # a face cut by the frame's edge is never a best shot
            bound = score_bound(det.box, det.landmarks, min_px, detector_yaw=det.yaw, image_size=size)
            if bound < rec.min_quality or not self.fusion.wants(t.track_id, bound):
                continue
            try:
                chip = align(frame.image, det.box, det.landmarks)
            except AlignmentError:
                continue
            q = assess(det.box, chip, det.landmarks, min_px, rec.min_blur_var, detector_yaw=det.yaw, image_size=size)
            if q.problem is not None or q.score < rec.min_quality or not self.fusion.wants(t.track_id, q.score):
                continue
            _, region = context_crop(frame.image, det.box)
            # every other face blurred: those found now and in earlier searches (gating), and all outside the regions
            searched = self.gate.region_boxes(frame.width, frame.height) if self.gate is not None else None
            crop = redacted_crop(frame.image, region, det.box, self.last_boxes, searched)
            pending.append(FaceSample(t.track_id, frame.ts, det.box, chip, q.score, crop))
        return pending

    def _raise(self, track_id: int, match: Match, last_seen: float) -> AlertV1:
        state = self.fusion.state(track_id)
        best = state.best_shot() if state else None
        crop = encode_jpeg(best.crop) if best is not None and best.crop is not None else None
        if not self.settings.storage.save_best_shots:
            crop = None
        event_id = f"{self._camera_id}:{self.event_scope}:{self._track_birth.get(track_id, f't{track_id}')}"
        alert = AlertV1.of_match(  # the one alert value, from here to the store
            match,
            event_id=event_id,
            camera_id=self._camera_id,
            track_id=track_id,
            first_seen=self._track_first.get(track_id, last_seen),
            last_seen=last_seen,
            samples=len(state.shots) if state else 0,
            crop_jpeg=crop,
            run_id=self.run_id,
            group=self.group,
            media_origin=self.media_origin,
        )
        self._alerted[track_id] = (event_id, last_seen)
        self._checked_at[track_id] = last_seen  # its face was matched then
        self._alerts[track_id] = alert.model_copy(update={"crop_jpeg": None})  # its refs, not the crop
        self.stats.alerts += 1
        self.publish_alert(alert)
        log.info("alert %s: %s (%s) score %.3f", event_id, alert.subject, ", ".join(match.watchlists), match.score)
        return alert

    def _end_track(self, track_id: int, ts: float, final_ts: float | None) -> list[AlertV1]:
        raised = []
        if track_id not in self._alerted and self.recognising:
            found = self.fusion.decide(track_id, ts, final=True)
            if found is not None:
                state = self.fusion.state(track_id)
                last = max((s.sample.ts for s in state.shots), default=ts) if state else ts
                raised.append(self._raise(track_id, found, last))
        if track_id in self._alerted and self.publish_update is not None:
            event_id, last_seen = self._alerted[track_id]
            raised_alert = self._alerts.get(track_id)
            self.publish_update(
                AlertUpdateV1.of_alert(raised_alert, last_seen)
                if raised_alert is not None
                else AlertUpdateV1(event_id=event_id, last_seen=round(last_seen, 3))
            )
        self._alerted.pop(track_id, None)
        self._alerts.pop(track_id, None)
        self._checked_at.pop(track_id, None)
        self._track_first.pop(track_id, None)
        self._track_birth.pop(track_id, None)
        self.fusion.forget(track_id)
        return raised

    @property
    def quiescent(self) -> bool:
        """No live track (so no per-track state): analysing from the next frame with fresh stages gives the same
        tracks, decisions and event ids as going on (a resume point for another worker)."""
        return not self._track_first and not self._alerted

    def finish(self) -> list[AlertV1]:
        """The source ended: end every live track (final decisions, alert updates) and forget all descriptors."""
        tracks = self.tracker.finish(self._last_index, self._last_ts, self._camera_id)
        self._live_boxes = []
        if self.gate is not None:
            self.gate.reset()  # a reconnect: full detection and a fresh background at the next frame
        raised: list[AlertV1] = []
        for tid in tracks.ended:
            raised.extend(self._end_track(tid, self._last_ts, final_ts=self._last_ts))
        return raised
