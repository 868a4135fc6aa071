"""Typed values of the analytics stage: what goes in (observations of tracked people), what comes out (behaviour
events), and the rules in force.

No identity is anywhere here: a *person* is a per-camera number that lives as long as the camera worker, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from metrosight.analytics.crowd import OccupancyAlarm, WrongWay
from metrosight.analytics.geometry import GroundPlane, Line, Polygon

LOITERING = "loitering"
FAST_MOVEMENT = "fast_movement"
LINE_CROSSING = "line_crossing"
OCCUPANCY = "occupancy"  # a zone held too many people too long (no person: a crowd)
WRONG_WAY = "wrong_way"  # a line crossed against its allowed direction
KINDS = (LOITERING, FAST_MOVEMENT, LINE_CROSSING, OCCUPANCY, WRONG_WAY)


@dataclass(frozen=True, slots=True)
class Observation:
    """One tracked person seen in one frame.

    Attributes:
        track_id: the tracker's per-camera id.
        ts: media time, seconds.
        point: where the person stands, in the plane the zones are drawn in (image pixels: the bottom centre of the
            person box; or, for trajectory data, the ground point).
        height: the person's height in the same units as ``point`` (pixels: box height), used for speed in body
            heights per second when there is no calibration. ``None`` when ``point`` is already in metres.
        speed_ok: False when the point is unreliable for speed (the box is cut by the frame edge).
    """

    track_id: int
    ts: float
    point: tuple[float, float]
    height: float | None = None
    speed_ok: bool = True


@dataclass(frozen=True, slots=True)
class BehaviourEvent:
    """A loitering, fast-movement or occupancy episode starting or ending, or a line crossing (either way, or the
    wrong way).

    Attributes:
        kind: one of :data:`KINDS`.
        phase: ``"start"`` (an episode became an event), ``"end"`` (it is over; ``ts`` is its end) or ``"instant"``.
        key: identifies the episode within one engine: the ``start`` and ``end`` of one episode share it.
        person: the analytics person number (stable across tracker id switches that were re-linked); ``None`` for
            an occupancy alarm (it is about a crowd, not a person).
        track_id: the tracker id the person had last (``None`` for an occupancy alarm).
        start_ts: media time the episode began, seconds.
        ts: media time of this event (start: when the rule fired; end: the episode's end), seconds.
        data: kind-specific fields (zone, duration_s, peak_speed, unit, line, direction, alarm, count, peak,
            max_people, allowed, …).
    """

    kind: str
    phase: str
    key: str
    person: int | None
    track_id: int | None
    start_ts: float
    ts: float
    data: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Zone:
    """A named area; ``loitering_seconds`` overrides the camera-wide rule for this zone."""

    name: str
    polygon: Polygon
    loitering_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class CountingLine:
    """A named line across which entries (``in``) and exits (``out``) are counted."""

    name: str
    line: Line


@dataclass(frozen=True, slots=True)
class Rules:
    """Thresholds of the analytics, in seconds and in metres (or body heights without calibration).

    Attributes:
        loitering_seconds: a stay in a zone longer than this is loitering.
        exit_grace_seconds: a person unseen inside a zone for less than this is still staying (detector gaps,
            jitter across the zone's edge).
        fast_speed_mps: smoothed ground speed (m/s) above which movement is fast (with calibration).
        fast_speed_heights: the same without calibration, in body heights per second.
        min_duration_seconds: fast movement must last this long to be an event.
        speed_window_seconds: speeds are fitted over this much track history (smoothing of jitter).
        relink_seconds: a track that appears within this long after another one ended nearby continues it (the
            tracker switched ids); also how long a lost person is kept before their episodes end.
        relink_metres: how near (metres; with calibration) the new track must start.
        relink_heights: the same without calibration, in body heights.
        edge_margin_heights: a track lost this near the edge of the view (body heights) left it: never re-linked.
        edge_margin_metres: the same for trajectories in metres (observations without a height).
        line_margin: a crossing needs the person this far past the line on both sides (metres or body heights;
            image pixels are scaled by the person's height).
        wrong_way_mps: a wrong-way crossing needs the person walking across the line at this speed (m/s; with
            calibration) the wrong way.
        wrong_way_heights: the same without calibration, body heights per second.
        wrong_way_metres: a wrong-way crossing is from this far on one side of the line to this far on the other
            (metres; deeper than ``line_margin``: a person standing on the line, jittering, is not walking through).
        wrong_way_depth_heights: the same without calibration, body heights.
    """

    loitering_seconds: float = 60.0
    exit_grace_seconds: float = 3.0
    fast_speed_mps: float = 2.5
    fast_speed_heights: float = 1.5
    min_duration_seconds: float = 1.0
    speed_window_seconds: float = 1.0
    relink_seconds: float = 2.0
    relink_metres: float = 1.0
    relink_heights: float = 0.6
    edge_margin_heights: float = 0.3
    edge_margin_metres: float = 1.0
    line_margin: float = 0.15
    wrong_way_mps: float = 0.25
    wrong_way_heights: float = 0.15
    wrong_way_metres: float = 0.5
    wrong_way_depth_heights: float = 0.3


@dataclass(frozen=True, slots=True)
class Scene:
    """What the analytics of one camera know about its view: zones, lines, the optional ground calibration, the
    outline of the view (the frame) in the zones' plane, if known, and the crowd-safety alarms (by zone and line
    name)."""

    zones: tuple[Zone, ...] = ()
    lines: tuple[CountingLine, ...] = ()
    plane: GroundPlane | None = None
    view: Polygon | None = None
    occupancy: tuple[OccupancyAlarm, ...] = ()
    wrong_way: tuple[WrongWay, ...] = ()
