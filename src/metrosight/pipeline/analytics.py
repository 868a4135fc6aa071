"""The analytics camera worker: frame → motion gate → detect people → track → behaviour rules → events.

No identity anywhere in this tier: no face is embedded, no template exists, a person is a per-camera number. What
leaves the worker: :class:`~metrosight.bus.payloads.EventV1` / :class:`~metrosight.bus.payloads.EventUpdateV1`
through the ``publish`` callbacks, each loitering or fast-movement event with a whole-frame snapshot in which every
head is blurred (the top of every person box, and every face a face detector finds when one is given).

Counts (line crossings, occupancy, events by kind) are kept in :class:`AnalyticsStats` as plain counters and
gauges; :meth:`AnalyticsStats.metrics` lists them in the shape a Prometheus exporter needs.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from metrosight.analytics.crowd import OccupancyAlarm, WrongWay
from metrosight.analytics.engine import BehaviourEngine
from metrosight.analytics.geometry import GroundPlane, Line, Polygon
from metrosight.analytics.model import (
    KINDS,
    LINE_CROSSING,
    BehaviourEvent,
    CountingLine,
    Observation,
    Rules,
    Scene,
    Zone,
)
from metrosight.bus.inproc import TOPIC_EVENT_UPDATES, TOPIC_EVENTS
from metrosight.bus.payloads import EventUpdateV1, EventV1
from metrosight.config.model import AnalyticsConfig, CameraAnalyticsConfig
from metrosight.core.names import same_identifier
from metrosight.core.types import Box, Detections, Frame, Tracks
from metrosight.detect.base import PersonDetector
from metrosight.detect.motion import MotionDetector
from metrosight.detect.registry import person_detector_for
from metrosight.pipeline.camera import CameraStats, encode_jpeg
from metrosight.policy.redact import blur_boxes
from metrosight.track.kalman import KalmanTracker

log = logging.getLogger(__name__)

STAGES = ("motion", "person_detect", "person_track", "rules")


class MotionGate(Protocol):
    """How much of a camera's view moves: ``moving_fraction(image, ts)`` is the share (0–1) of the ``(H, W, 3)``
    frame at media time ``ts`` (seconds) that differs from the running background, 1.0 on a global change
    (:meth:`metrosight.detect.motion.MotionDetector.moving_fraction`)."""

    def moving_fraction(self, image: np.ndarray, ts: float) -> float: ...


__all__ = ["TOPIC_EVENTS", "TOPIC_EVENT_UPDATES", "AnalyticsPipeline", "AnalyticsStats"]
FRAME_ZONE = "frame"


@dataclass(frozen=True, slots=True)
class Metric:
    """One exported figure: ``name{labels} value`` with its Prometheus type (``counter`` or ``gauge``)."""

    name: str
    labels: dict[str, str]
    value: float
    type: str
    help: str


@dataclass(slots=True)
class AnalyticsStats:
    """Counters of one camera's analytics. ``stage_seconds`` sums wall time per stage (``STAGES``)."""

    frames: int = 0
    detected_frames: int = 0
    persons: int = 0
    tracks: int = 0
    events: Counter[str] = field(default_factory=Counter)
    crossings: Counter[tuple[str, str]] = field(default_factory=Counter)
    occupancy: dict[str, int] = field(default_factory=dict)
    peak_occupancy: dict[str, int] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @property
    def gated_frames(self) -> int:
        """Frames in which person detection was skipped (no motion, no live track)."""
        return self.frames - self.detected_frames

    def metrics(self, camera_id: str) -> list[Metric]:
        cam = {"camera": camera_id}
        out = [
            Metric("metrosight_analytics_frames_total", cam, self.frames, "counter", "frames analysed"),
            Metric(
                "metrosight_analytics_detected_frames_total",
                cam,
                self.detected_frames,
                "counter",
                "frames in which person detection ran (the others were gated off: no motion)",
            ),
            Metric("metrosight_person_tracks_total", cam, self.tracks, "counter", "person tracks started"),
        ]
        for kind in KINDS:
            out.append(
                Metric(
                    "metrosight_behaviour_events_total",
                    {**cam, "kind": kind},
                    self.events[kind],
                    "counter",
                    "behaviour events raised",
                )
            )
        for (line, direction), n in sorted(self.crossings.items()):
            out.append(
                Metric(
                    "metrosight_line_crossings_total",
                    {**cam, "line": line, "direction": direction},
                    n,
                    "counter",
                    "people who crossed a counting line",
                )
            )
        for zone, n in sorted(self.occupancy.items()):
            out.append(Metric("metrosight_zone_occupancy", {**cam, "zone": zone}, n, "gauge", "people in the zone now"))
        return out


def build_scene(cfg: CameraAnalyticsConfig | None, width: int, height: int) -> Scene:
    """The scene of one camera from its configuration; with no zone configured, the whole frame is one zone
    (named ``frame``).

    Raises:
        GeometryError: a degenerate zone, line or calibration (the message names it).
    """
    view = Polygon([(0, 0), (width, 0), (width, height), (0, height)])
    if cfg is None:
        cfg = CameraAnalyticsConfig()
    zones = tuple(Zone(z.name, Polygon(z.polygon), z.loitering_seconds) for z in cfg.zones) or (Zone(FRAME_ZONE, view),)
    lines = tuple(CountingLine(ln.name, Line(ln.a, ln.b)) for ln in cfg.lines)
    plane = None
    if cfg.calibration is not None:
        plane = GroundPlane(cfg.calibration.image_points, cfg.calibration.world_points)
    return Scene(zones, lines, plane, view, *crowd_alarms(cfg, [z.name for z in zones]))


def crowd_alarms(
    cfg: CameraAnalyticsConfig, zones: list[str]
) -> tuple[tuple[OccupancyAlarm, ...], tuple[WrongWay, ...]]:
    """The camera's occupancy and wrong-way alarms, naming its zones and lines as they are spelt under ``zones``
    and ``lines`` (the configuration accepts a look-alike spelling and has checked that each exists)."""
    lines = [ln.name for ln in cfg.lines]
    occupancy = tuple(
        OccupancyAlarm(
            a.alarm_name,
            next((z for z in zones if same_identifier(z, a.zone)), a.zone),
            a.max_people,
            a.seconds,
            a.max_people if a.clear_people is None else a.clear_people,
            a.clear_seconds,
        )
        for a in cfg.occupancy_alarms
    )
    wrong_way = tuple(
        WrongWay(next((x for x in lines if same_identifier(x, w.line)), w.line), w.allowed) for w in cfg.wrong_way
    )
    return occupancy, wrong_way


def rules_from(cfg: AnalyticsConfig) -> Rules:
    return Rules(
        loitering_seconds=cfg.loitering_seconds,
        exit_grace_seconds=cfg.exit_grace_seconds,
        fast_speed_mps=cfg.fast_speed_mps,
        fast_speed_heights=cfg.fast_speed_heights_per_second,
        min_duration_seconds=cfg.min_duration_seconds,
        speed_window_seconds=cfg.speed_window_seconds,
        relink_seconds=cfg.relink_seconds,
    )


def head_box(person: Box) -> Box:
    """The head region of a person box (top quarter, full width): blurred in every snapshot."""
    return Box(person.x1, person.y1, person.x2, person.y1 + 0.25 * person.height)


def observation(track_id: int, ts: float, box: Box, width: int, height: int) -> Observation:
    """A person box → where they stand (bottom centre) and their height; a box cut by the frame's sides or bottom
    is unreliable for speed."""
    cut = box.x1 <= 1 or box.x2 >= width - 1 or box.y2 >= height - 1
    return Observation(track_id, ts, ((box.x1 + box.x2) / 2.0, box.y2), box.height, speed_ok=not cut)


class AnalyticsPipeline:
    """Runs the analytics stages for one camera.

    Args:
        settings: the ``analytics`` configuration section.
        camera_id: the camera (selects its zones in ``settings.cameras``).
        detector: person detector (``detect(image) -> list[Detection]``).
        publish_event: called with each new event.
        publish_update: called when an event's episode ends.
        run_id: stamped on events.
        face_boxes: optional face detector for snapshots (``image -> boxes``); heads are blurred either way.
        motion_gate: optional motion gate (:class:`~metrosight.detect.motion.MotionDetector`); ``None`` detects in
            every frame.
        encode: JPEG encoder for snapshots (``rgb -> bytes``).
        event_scope: the event-id scope (``camera:scope:key``): the same scope and frames give the same ids (a
            resumed file); None makes a fresh one.
    """

    def __init__(
        self,
        settings: AnalyticsConfig,
        camera_id: str,
        detector: PersonDetector,
        publish_event: Callable[[EventV1], None],
        publish_update: Callable[[EventUpdateV1], None] | None = None,
        run_id: int | None = None,
        face_boxes: Callable[[np.ndarray], list[Box]] | None = None,
        motion_gate: MotionGate | None = None,
        encode: Callable[[np.ndarray], bytes] | None = None,
        event_scope: str | None = None,
    ) -> None:
        self.settings = settings
        self.camera_id = camera_id
        self.detector = detector
        self.publish_event = publish_event
        self.publish_update = publish_update
        self.run_id = run_id
        self.face_boxes = face_boxes
        self.gate = motion_gate
        self.encode = encode
        self.tracker = KalmanTracker(max_missed_seconds=settings.max_missed_seconds)
        self.rules = rules_from(settings)
        self.engine: BehaviourEngine | None = None
        self.stats = AnalyticsStats()
        self.last_tracks: Tracks | None = None
        self.history: list[tuple[float, int, Box]] = []  # (ts, track id, box) for plots; kept only if asked
        self.keep_history = False
        self._token = event_scope or uuid.uuid4().hex[:12]
        self._seen_tracks: set[int] = set()
        self._last_detect_ts = -1e9
        self._last_ts = 0.0
        self._last_index = -1
        self._size = (0, 0)

    def _ensure_engine(self, frame: Frame) -> BehaviourEngine:
        if self.engine is None:
            self._size = (frame.width, frame.height)
            scene = build_scene(self.settings.camera(self.camera_id), frame.width, frame.height)
            self.engine = BehaviourEngine(scene, self.rules)
            self.stats.occupancy = {z.name: 0 for z in scene.zones}
        return self.engine

    def process(self, frame: Frame) -> list[EventV1]:
        """Run every stage on one frame; returns the new events published at this frame."""
        st = self.stats.stage_seconds
        engine = self._ensure_engine(frame)
        self.stats.frames += 1
        self._last_ts, self._last_index = frame.ts, frame.index
        t0 = time.perf_counter()
        moving = self.gate.moving_fraction(frame.image, frame.ts) if self.gate is not None else 1.0
        t1 = time.perf_counter()
        st["motion"] += t1 - t0
        live = self.last_tracks is not None and bool(self.last_tracks.active)
        due = frame.ts - self._last_detect_ts >= self.settings.refresh_seconds
        if not (live or due or moving >= self.settings.min_motion_fraction):
            t2 = time.perf_counter()
            behaviour = engine.update(frame.ts, [], [])
            st["rules"] += time.perf_counter() - t2
            return self._emit(behaviour, frame, [])
        dets = self.detector.detect(frame.image)
        self._last_detect_ts = frame.ts
        self.stats.detected_frames += 1
        self.stats.persons += len(dets)
        t2 = time.perf_counter()
        st["person_detect"] += t2 - t1
        tracks = self.tracker.update(Detections(frame.index, frame.ts, frame.camera_id, tuple(dets)))
        self.last_tracks = tracks
        t3 = time.perf_counter()
        st["person_track"] += t3 - t2
        w, h = frame.width, frame.height
        obs = []
        for t in tracks.active:
            if t.track_id not in self._seen_tracks:
                self._seen_tracks.add(t.track_id)
                self.stats.tracks += 1
            if t.detection is not None:
                obs.append(observation(t.track_id, frame.ts, t.detection.box, w, h))
                if self.keep_history:
                    self.history.append((frame.ts, t.track_id, t.detection.box))
        behaviour = engine.update(frame.ts, obs, tracks.ended)
        st["rules"] += time.perf_counter() - t3
        return self._emit(behaviour, frame, [t.box for t in tracks.active])

    @property
    def camera_stats(self) -> CameraStats:
        """The run's counters in a camera run's shape: frames, person tracks, stage times (no faces)."""
        a = self.stats
        return CameraStats(frames=a.frames, tracks=a.tracks, stage_seconds=a.stage_seconds)

    @property
    def quiescent(self) -> bool:
        """No live person track."""
        return self.last_tracks is None or not self.last_tracks.active

    @property
    def last_boxes(self) -> list[Box]:
        """No face boxes: behaviour analytics detect people (their heads are blurred in their own snapshots)."""
        return []

    @property
    def gallery_size(self) -> int:
        """No identity in this tier."""
        return 0

    def finish(self) -> list[EventV1]:
        """The source ended: end every track and episode."""
        if self.engine is None:
            return []
        ended = self.tracker.finish(self._last_index, self._last_ts, self.camera_id)
        behaviour = self.engine.update(self._last_ts, [], ended.ended) + self.engine.finish(self._last_ts)
        return self._emit(behaviour, None, [])

    # -- events -----------------------------------------------------------------------------------------------
    def _emit(self, behaviour: list[BehaviourEvent], frame: Frame | None, people: list[Box]) -> list[EventV1]:
        engine = self.engine
        if engine is not None:
            self.stats.occupancy = engine.occupancy()
            self.stats.peak_occupancy = dict(engine.peak_occupancy)
            self.stats.crossings = Counter(engine.crossings)
        out = []
        for ev in behaviour:
            if ev.phase == "end":
                if self.publish_update is not None:
                    self.publish_update(update_of(ev, self.camera_id, self._token))
                continue
            self.stats.events[ev.kind] += 1
            if ev.kind == LINE_CROSSING and not self.settings.record_crossings:
                continue
            snapshot = self._snapshot(frame, people) if ev.kind != LINE_CROSSING and frame is not None else None
            payload = payload_of(ev, self.camera_id, self._token, self.run_id, snapshot)
            self.publish_event(payload)
            log.info("%s %s track %s at %.2fs: %s", self.camera_id, ev.kind, ev.track_id, ev.start_ts, payload.data)
            out.append(payload)
        return out

    def _snapshot(self, frame: Frame, people: list[Box]) -> bytes | None:
        """The whole frame, every head and face blurred, downscaled; JPEG."""
        if self.encode is None:
            return None
        image = frame.image
        boxes = [head_box(b) for b in people]
        if self.face_boxes is not None:
            try:
                boxes += self.face_boxes(image)
            except Exception as exc:  # noqa: BLE001 - heads are blurred anyway; a failing face detector is logged
                log.warning("face detection for the snapshot failed (%s); heads are blurred", exc)
        redacted = blur_boxes(image, boxes, grow=0.3)
        max_w = self.settings.snapshot_max_width
        if redacted.shape[1] > max_w:
            import cv2  # OpenCV: heavy, loaded on first use

            f = max_w / redacted.shape[1]
            redacted = cv2.resize(redacted, (max_w, round(redacted.shape[0] * f)), interpolation=cv2.INTER_AREA)
        return self.encode(redacted)


def _data(ev: BehaviourEvent) -> dict[str, str | int | float | None]:
    data: dict[str, str | int | float | None] = {k: v for k, v in ev.data.items() if isinstance(v, str | int | float)}
    if ev.person is not None:  # an occupancy alarm is about a crowd: no person
        data["person"] = ev.person
    return data


def payload_of(ev: BehaviourEvent, camera_id: str, scope: str, run_id: int | None, snapshot: bytes | None) -> EventV1:
    """The bus payload of a ``start`` or ``instant`` behaviour event; its id is ``camera:scope:key``."""
    return EventV1(
        event_id=f"{camera_id}:{scope}:{ev.key}",
        camera_id=camera_id,
        kind=ev.kind,
        start_ts=round(ev.start_ts, 3),
        end_ts=round(ev.ts, 3) if ev.phase == "instant" else None,
        track_id=ev.track_id,
        data=_data(ev),
        snapshot_jpeg=snapshot,
        run_id=run_id,
    )


def update_of(ev: BehaviourEvent, camera_id: str, scope: str) -> EventUpdateV1:
    """The bus payload of an ``end`` behaviour event (the episode's end and final fields)."""
    return EventUpdateV1(event_id=f"{camera_id}:{scope}:{ev.key}", end_ts=round(ev.ts, 3), data=_data(ev))


def wants_analytics(settings: AnalyticsConfig, camera_id: str, analytics_only: bool) -> bool:
    """Analytics run with ``--analytics-only``, and alongside face recognition for cameras with an analytics
    entry (zones, lines or calibration) in the configuration."""
    return analytics_only or camera_id in settings.cameras


def make_person_detector(settings: AnalyticsConfig) -> PersonDetector:
    """The configured person detector (the registry: :func:`metrosight.detect.registry.person_detector_for`)."""
    return person_detector_for(settings)


def make_analytics_worker(
    settings: AnalyticsConfig,
    camera_id: str,
    run_id: int | None,
    publish_event: Callable[[EventV1], None],
    publish_update: Callable[[EventUpdateV1], None],
    face_boxes: Callable[[np.ndarray], list[Box]] | None,
    event_scope: str | None = None,
) -> AnalyticsPipeline:
    """The analytics worker of one camera with the configured person detector and a motion gate."""
    return AnalyticsPipeline(
        settings,
        camera_id,
        make_person_detector(settings),
        publish_event,
        publish_update,
        run_id=run_id,
        face_boxes=face_boxes,
        motion_gate=MotionDetector(),
        encode=encode_jpeg,
        event_scope=event_scope,
    )
