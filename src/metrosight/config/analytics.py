"""Configuration of behaviour analytics (no identity): zones, counting lines, calibration, the person detector."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import Field, field_validator, model_validator

from metrosight.config.backends import PersonDetectorConfig
from metrosight.config.common import CameraId, CountingLineName, Section, ZoneName
from metrosight.core.names import InvalidInput, distinct_identifiers, same_identifier

PointXY = tuple[float, float]

#: the longest stay, occupancy or clearing time a zone rule may wait for (a day): a longer one (or ``.inf``) never
#: fires, so the alarm it configures would be silently off
MAX_STAY_SECONDS = 86_400.0
#: the longest tracking gap, window or refresh (an hour)
MAX_GAP_SECONDS = 3600.0
#: the most people an occupancy rule may count to
MAX_PEOPLE = 100_000


def _finite(points: Sequence[PointXY], what: str) -> None:
    if not all(math.isfinite(c) for p in points for c in p):
        raise InvalidInput(f"{what} has a coordinate that is not a finite number: give image pixels")


def _cross(o: PointXY, a: PointXY, b: PointXY) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _meet(p: PointXY, q: PointXY, r: PointXY, s: PointXY) -> bool:
    """Whether segments pq and rs share a point."""
    d1, d2, d3, d4 = _cross(r, s, p), _cross(r, s, q), _cross(p, q, r), _cross(p, q, s)
    if ((d1 > 0) != (d2 > 0) and d1 != 0 and d2 != 0) and ((d3 > 0) != (d4 > 0) and d3 != 0 and d4 != 0):
        return True

    def on(a: PointXY, b: PointXY, c: PointXY, d: float) -> bool:  # c on segment ab, given collinear (d == 0)
        return d == 0 and min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])

    return on(r, s, p, d1) or on(r, s, q, d2) or on(p, q, r, d3) or on(p, q, s, d4)


def check_polygon(points: Sequence[PointXY], what: str) -> None:
    """Refuse a polygon the zone rules cannot use: a coordinate that is not finite, zero area, or edges that cross
    (points listed across the zone instead of around it).

    Raises:
        InvalidInput: what is wrong, naming ``what``.
    """
    _finite(points, what)
    # a point repeated (the first one again at the end, as GeoJSON writes a ring) adds no edge
    points = [p for i, p in enumerate(points) if tuple(p) != tuple(points[i - 1])] or list(points[:1])
    n = len(points)
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # the first and last edges share a corner
            if _meet(points[i], points[(i + 1) % n], points[j], points[(j + 1) % n]):
                raise InvalidInput(
                    f"{what}: edge {i + 1} crosses edge {j + 1}; list the points in order around the zone"
                )
    area = sum(points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1] for i in range(n))
    if abs(area) < 2e-12:
        raise InvalidInput(f"{what} has zero area (its points lie on one line): {[list(p) for p in points]}")


class ZoneConfig(Section):
    """A zone: a polygon in image pixels of the camera's frame. A person is in it when their feet (the bottom
    centre of their box) are."""

    name: ZoneName = Field(..., description="the camera id rule: letters of any script, digits, spaces, - _ . :")
    polygon: list[PointXY] = Field(..., min_length=3, description="(x, y) image pixels, in order around the zone")
    loitering_seconds: float | None = Field(
        None, gt=0.0, le=MAX_STAY_SECONDS, description="overrides analytics.loitering_seconds here"
    )

    @model_validator(mode="after")
    def _simple(self) -> ZoneConfig:
        check_polygon(self.polygon, f"zone {self.name!r}")
        return self


class LineConfig(Section):
    """A counting line in image pixels; walking along a→b, crossing from right to left counts as "in"."""

    name: CountingLineName = Field(
        ..., description="the camera id rule: letters of any script, digits, spaces, - _ . :"
    )
    a: PointXY
    b: PointXY

    @model_validator(mode="after")
    def _distinct_ends(self) -> LineConfig:
        _finite([self.a, self.b], f"counting line {self.name!r}")
        if math.hypot(self.b[0] - self.a[0], self.b[1] - self.a[1]) < 1e-9:
            raise InvalidInput(f"counting line {self.name!r} needs two distinct end points, got {list(self.a)} twice")
        return self


class CalibrationConfig(Section):
    """Ground-plane calibration: four image points (pixels) and where they are on the floor (metres)."""

    image_points: list[PointXY] = Field(..., min_length=4, max_length=4)
    world_points: list[PointXY] = Field(..., min_length=4, max_length=4)

    @model_validator(mode="after")
    def _no_three_collinear(self) -> CalibrationConfig:
        for name, pts in (("image_points", self.image_points), ("world_points", self.world_points)):
            _finite(pts, f"calibration {name}")
            scale = max(1.0, max(abs(c) for p in pts for c in p)) ** 2
            for i in range(4):
                o, a, b = (p for k, p in enumerate(pts) if k != i)
                if abs(_cross(o, a, b)) < 1e-9 * scale:
                    raise InvalidInput(
                        f"calibration {name} has three collinear points: {[list(o), list(a), list(b)]}; "
                        "use four floor points, no three on one line"
                    )
        return self


class OccupancyAlarmConfig(Section):
    """A crowd-safety alarm: more than ``max_people`` in ``zone`` for ``seconds`` raises it (once); it clears when
    the zone has held at most ``clear_people`` (default ``max_people``) for ``clear_seconds``."""

    zone: ZoneName = Field(..., description="a zone of this camera (or 'frame' when the camera has no zones)")
    name: ZoneName | None = Field(None, description="the alarm's name in events (default: the zone's name)")
    max_people: int = Field(..., ge=0, le=MAX_PEOPLE, description="more people than this in the zone is too many")
    seconds: float = Field(..., gt=0.0, le=MAX_STAY_SECONDS, description="too many for this long raises the alarm")
    clear_people: int | None = Field(
        None, ge=0, le=MAX_PEOPLE, description="clears at this many or fewer (<= max_people)"
    )
    clear_seconds: float = Field(5.0, ge=0.0, le=MAX_STAY_SECONDS, description="…held for this long")

    @model_validator(mode="after")
    def _clear_level(self) -> OccupancyAlarmConfig:
        if self.clear_people is not None and self.clear_people > self.max_people:
            raise InvalidInput(
                f"occupancy alarm on zone {self.zone!r}: clear_people ({self.clear_people}) must be at most "
                f"max_people ({self.max_people}); the alarm clears when the zone holds that many or fewer"
            )
        return self

    @property
    def alarm_name(self) -> str:
        return self.name or self.zone


class WrongWayConfig(Section):
    """A counting line that may be crossed one way only: a crossing against ``allowed`` is a wrong-way event."""

    line: CountingLineName = Field(..., description="a counting line of this camera")
    allowed: Literal["in", "out"] = Field(..., description="the direction people may cross it (see lines)")


class CameraAnalyticsConfig(Section):
    """Zones, counting lines, the optional calibration and the crowd-safety alarms of one camera."""

    zones: list[ZoneConfig] = Field(default_factory=list)
    lines: list[LineConfig] = Field(default_factory=list)
    calibration: CalibrationConfig | None = None
    occupancy_alarms: list[OccupancyAlarmConfig] = Field(default_factory=list)
    wrong_way: list[WrongWayConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct_names(self) -> CameraAnalyticsConfig:
        # a zone's dwell and a line's counts are kept by name: two zones named alike would be merged into one
        distinct_identifiers([z.name for z in self.zones], "zone name")
        distinct_identifiers([x.name for x in self.lines], "counting line name")
        distinct_identifiers([a.alarm_name for a in self.occupancy_alarms], "occupancy alarm name")
        distinct_identifiers([w.line for w in self.wrong_way], "wrong-way line")
        zones = [z.name for z in self.zones] or ["frame"]  # no zones: the whole frame is one zone, 'frame'
        for a in self.occupancy_alarms:
            if not any(same_identifier(z, a.zone) for z in zones):
                raise InvalidInput(
                    f"occupancy alarm {a.alarm_name!r}: this camera has no zone {a.zone!r} "
                    f"(its zones: {', '.join(zones)}); name one of them or add the zone under zones"
                )
        lines = [x.name for x in self.lines]
        for w in self.wrong_way:
            if not any(same_identifier(x, w.line) for x in lines):
                raise InvalidInput(
                    f"wrong_way: this camera has no counting line {w.line!r} "
                    f"(its lines: {', '.join(lines) or 'none'}); add it under lines"
                )
        return self


class AnalyticsConfig(Section):
    """Behaviour analytics without identity: people tracking, loitering, fast movement, counting.

    Runs with ``metrosight run --analytics-only`` (no face model loaded), and alongside face recognition for every
    camera listed under ``cameras`` (by camera id).
    """

    person_detector: PersonDetectorConfig = Field(default_factory=PersonDetectorConfig)
    loitering_seconds: float = Field(
        60.0, gt=0.0, le=MAX_STAY_SECONDS, description="a stay in a zone longer than this is loitering"
    )
    exit_grace_seconds: float = Field(
        3.0, ge=0.0, le=MAX_GAP_SECONDS, description="unseen this long inside a zone ends the stay"
    )
    fast_speed_mps: float = Field(2.5, gt=0.0, le=100.0, description="fast movement threshold with calibration, m/s")
    fast_speed_heights_per_second: float = Field(
        1.5, gt=0.0, le=100.0, description="fast movement threshold without calibration, body heights per second"
    )
    min_duration_seconds: float = Field(
        1.0, gt=0.0, le=MAX_GAP_SECONDS, description="fast movement must last this long"
    )
    speed_window_seconds: float = Field(
        1.0, gt=0.0, le=MAX_GAP_SECONDS, description="speed is fitted over this much history"
    )
    relink_seconds: float = Field(
        2.0, ge=0.0, le=MAX_GAP_SECONDS, description="a new track this soon after one was lost nearby continues it"
    )
    max_missed_seconds: float = Field(
        1.5, gt=0.0, le=MAX_GAP_SECONDS, description="a person track unseen this long ends"
    )
    min_motion_fraction: float = Field(
        0.002, ge=0.0, le=1.0, description="with no live track, detect people only when this much of the view moves"
    )
    refresh_seconds: float = Field(
        2.0, gt=0.0, le=MAX_GAP_SECONDS, description="detect at least this often even without motion"
    )
    record_crossings: bool = Field(False, description="store each line crossing as an event (counts always kept)")
    snapshot_max_width: int = Field(
        640, ge=160, le=7680, description="redacted event snapshots are downscaled to this width"
    )
    cameras: dict[CameraId, CameraAnalyticsConfig] = Field(default_factory=dict, description="per camera id")

    @field_validator("cameras")
    @classmethod
    def _distinct_camera_keys(cls, v: dict[str, CameraAnalyticsConfig]) -> dict[str, CameraAnalyticsConfig]:
        distinct_identifiers(list(v), "camera id")  # `Cam-1` and `cam-1` would be one camera with two settings
        return v

    def camera(self, camera_id: str | None) -> CameraAnalyticsConfig | None:
        """The zones and lines of ``camera_id`` (typed in any case or form: :func:`same_identifier`)."""
        if camera_id is None:
            return None
        if camera_id in self.cameras:
            return self.cameras[camera_id]
        return next((c for k, c in self.cameras.items() if same_identifier(k, camera_id)), None)
