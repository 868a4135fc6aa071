"""The configuration: one pydantic root model, split by concern.

Every section forbids unknown keys, so a typo fails ``metrosight config check`` with the key named. Values come
from a YAML file and can be overridden by environment variables ``METROSIGHT__SECTION__KEY`` (double underscores
separate levels), e.g. ``METROSIGHT__RECOGNITION__MATCH_THRESHOLD=0.9``.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from datetime import tzinfo
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from metrosight.config.access import TlsSettings, TotpSettings
from metrosight.config.analytics import AnalyticsConfig, CameraAnalyticsConfig
from metrosight.config.auth import AuthConfig, check_mapping_groups
from metrosight.config.backends import (
    CenterFaceDetectorConfig,
    DetectorConfig,
    DlibEmbedderConfig,
    DlibOnnxEmbedderConfig,
    EmbedderConfig,
    HogDetectorConfig,
    InferenceConfig,
    MmodDetectorConfig,
    MtcnnDetectorConfig,
    OnnxDetectorConfig,
    PersonDetectorConfig,
    UserOnnxEmbedderConfig,
    check_inference,
)
from metrosight.config.channels import OutboundConfig
from metrosight.config.common import CameraId, Section
from metrosight.config.decode import DecodeConfig
from metrosight.config.detection import CameraDetectionConfig, GatingConfig
from metrosight.config.groups import CameraGroupConfig, check_groups, check_known_groups, group_members
from metrosight.config.tracking import TrackingConfig
from metrosight.core.names import distinct_identifiers, identifier, same_identifier
from metrosight.core.source import SourceSpec, SourceSyntaxError
from metrosight.core.when import zone


def _line(v: str | None) -> str | None:
    return None if v is None else identifier(v, "line")


class DetectionConfig(Section):
    detector: DetectorConfig = Field(default_factory=CenterFaceDetectorConfig)
    min_face_px: int = Field(36, ge=16, description="faces with a smaller box height (pixels) are not recognised")
    max_width: int = Field(
        1280,
        ge=160,
        description="frames wider than this are downscaled for face detection (boxes are mapped back); CenterFace "
        "scales frames itself (its own max_width) and always gets the full frame",
    )
    gating: GatingConfig = Field(default_factory=GatingConfig, description="motion gating (config/detection.py)")


class RecognitionConfig(Section):
    embedder: EmbedderConfig = Field(
        default_factory=DlibOnnxEmbedderConfig,
        description="descriptor backend: onnx (default) and dlib give dlib's 128-D vector; onnx-user a model you "
        "supply (model_path, input_size, ...; its size and model id from the file). A bare name is the kind",
    )
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
        0.930,
        gt=0.0,
        lt=50.0,
        description=(
            "floor of the match threshold: with normalization 'none' the threshold from target_fpir is never below "
            "this nor below the shipped floor 0.930 (the development fold's cosine at a per-comparison false-match "
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


class IngestConfig(Section):
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
    decode: DecodeConfig = Field(
        default_factory=DecodeConfig, description="frames the decoder may skip, hardware decoding (config/decode.py)"
    )


class PhotosConfig(Section):
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
    jitter: bool = Field(
        True,
        description="embed a photo's face as the unit mean of nine slightly moved alignments (shifted, scaled, "
        "rotated; recognize/jitter.py) instead of one: on LFW's held-out people FNIR at FPIR 0.003 falls by about "
        "4 points (bench/jitter.py); enrolment and identification photos, not video",
    )


class StorageConfig(Section):
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite in the home directory")
    save_best_shots: bool = Field(True, description="store the redacted best-shot crop of each alert")


class CameraConfig(Section):
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
    detection: CameraDetectionConfig = Field(
        default_factory=CameraDetectionConfig, description="regions where faces can appear; motion gating on or off"
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


class RetentionConfig(Section):
    """How long records are kept, in days (null: keep until deleted by hand)."""

    alerts_days: float | None = Field(90, gt=0, le=36500)
    crops_days: float | None = Field(30, gt=0, le=36500)
    events_days: float | None = Field(30, gt=0, le=36500)
    audit_days: float | None = Field(730, gt=0, le=36500)


class AlertsConfig(Section):
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


class WatchlistConfig(Section):
    """Settings of one watchlist (by its name)."""

    target_fpir: float | None = Field(
        None,
        gt=0.0,
        le=0.1,
        description="this list's false-positive identification rate per search (default recognition.target_fpir); a "
        "missing-persons list may accept more candidates than a wanted list",
    )


class PrivacyConfig(Section):
    max_entry_days: int = Field(365, ge=1, le=3650, description="longest authorisation a watchlist entry may carry")
    policy_refresh_seconds: float = Field(
        0.5, gt=0.0, le=60.0, description="how often a camera re-reads approvals, revocations, expiries and windows"
    )
    retention: RetentionConfig = Field(default_factory=RetentionConfig)


class NodeConfig(Section):
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


class DeploymentConfig(Section):
    """Where the installation runs."""

    timezone: str | None = Field(
        None,
        description="IANA time zone (e.g. Europe/Moscow) in which typed dates and times are read: a date-only expiry "
        "or window end is the end of that day there, a date-only start its beginning; null: the machine's zone",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str | None) -> str | None:
        if v is not None:
            zone(v)  # InvalidInput (a ValueError) names the zone
        return v

    def tz(self) -> tzinfo:
        """The zone as a ``tzinfo``."""
        return zone(self.timezone)


class ApiSettings(Section):
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
    tls: TlsSettings = Field(default_factory=TlsSettings, description="HTTPS on `serve` (certificate and key)")

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
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


class Settings(Section):
    """The root of metrosight's configuration."""

    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
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
    camera_groups: dict[str, CameraGroupConfig] = Field(
        default_factory=dict, description="named camera groups (lines, stations) to scope users' roles by"
    )
    node: NodeConfig = Field(default_factory=NodeConfig)
    deployment: DeploymentConfig = Field(default_factory=DeploymentConfig)
    api: ApiSettings = Field(default_factory=ApiSettings)
    outbound: OutboundConfig = Field(default_factory=OutboundConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    totp: TotpSettings = Field(default_factory=TotpSettings)

    @field_validator("cameras")
    @classmethod
    def _distinct_cameras(cls, v: list[CameraConfig]) -> list[CameraConfig]:
        distinct_identifiers([c.id for c in v], "camera id")  # no two cameras the same up to case or look-alikes
        return v

    @model_validator(mode="after")
    def _inference_available(self) -> Settings:
        # a provider the installed runtime lacks is refused at `config check` and every start, in one line
        check_inference(
            self.inference,
            ("detection.detector", self.detection.detector),
            ("recognition.embedder", self.recognition.embedder),
        )
        return self

    @model_validator(mode="after")
    def _camera_groups_known(self) -> Settings:
        check_groups(self.camera_groups, self.cameras)  # unknown cameras or lines named, in one line
        return self

    @model_validator(mode="after")
    def _sso_groups_known(self) -> Settings:
        check_mapping_groups(self.auth.oidc, self.camera_group_members())  # single sign-on's scopes, in one line
        return self

    @model_validator(mode="after")
    def _outbound_groups_known(self) -> Settings:
        if self.outbound.mqtt is not None:  # a filter naming an unknown group would publish nothing, silently
            check_known_groups(
                self.outbound.mqtt.camera_groups, self.camera_group_members(), "outbound.mqtt.camera_groups"
            )
        return self

    def camera_group_members(self) -> dict[str, list[str]]:
        """Every camera group (named ``camera_groups``, each camera's line and group) → its camera ids."""
        return group_members(self.camera_groups, self.cameras)

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


__all__ = [
    "AnalyticsConfig",
    "CameraAnalyticsConfig",
    "CenterFaceDetectorConfig",
    "DetectorConfig",
    "DlibEmbedderConfig",
    "DlibOnnxEmbedderConfig",
    "EmbedderConfig",
    "HogDetectorConfig",
    "InferenceConfig",
    "MmodDetectorConfig",
    "MtcnnDetectorConfig",
    "OnnxDetectorConfig",
    "PersonDetectorConfig",
    "Settings",
    "UserOnnxEmbedderConfig",
]
