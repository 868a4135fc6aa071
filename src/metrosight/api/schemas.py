"""Request and response bodies of the API: ``…Create`` / ``…Update`` come in, ``…Public`` go out.

Times are ISO-8601 UTC; ``first_seen``/``last_seen`` of alerts are seconds of media time (position in the video
or stream), as everywhere in metrosight.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from metrosight.core.types import Category


def _utc(dt: datetime | None) -> datetime | None:
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]  # SQLite hands back naive UTC times

Role = Literal["admin", "approver", "operator", "auditor", "viewer"]
Name = Field(..., min_length=1, max_length=128, pattern=r"^[^\x00-\x1f/]+$")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# -- sign-in ------------------------------------------------------------------------------------------------------
class LoginCreate(_In):
    username: str = Field(..., min_length=1, max_length=128)
    password: str = Field(..., min_length=1, max_length=1024)
    code: str | None = Field(
        None, max_length=32, description="the TOTP code (or a recovery code) of an account with a second factor"
    )


class MePublic(_Out):
    name: str
    roles: list[str]
    via: Literal["session", "token"]
    csrf_token: str | None = Field(None, description="send as X-CSRF-Token with cookie-authenticated changes")
    must_set_password: str | None = Field(
        None, description="why this account may do nothing but set its own password (an admin reset it), else null"
    )
    scopes: dict[str, list[str]] = Field(
        default_factory=dict,
        description="your scoped roles: role -> scope items (cameras:GROUP, watchlist:NAME); other roles: everywhere",
    )


# -- users and tokens ---------------------------------------------------------------------------------------------
PASSWORD_RULE = (
    "at least 12 characters; a common, breached or guessable password (user name, the service's name) is refused "
    "with 409 and the reason"
)


ScopeItems = list[Annotated[str, StringConstraints(min_length=1, max_length=4096)]]
SCOPES_DOC = (
    "role -> scope items, each 'cameras:GROUP[,GROUP…]' (configuration camera_groups, or a camera's line or group) "
    "or 'watchlist:NAME[,NAME…]'; a role not named (or given []) covers every camera and watchlist; admin and "
    "auditor cannot be scoped"
)


class UserCreate(_In):
    name: str = Name
    roles: list[Role] = Field(..., min_length=1)
    password: str | None = Field(None, min_length=1, max_length=1024, description=PASSWORD_RULE)
    scopes: dict[Role, ScopeItems] | None = Field(None, description=SCOPES_DOC)


class UserUpdate(_In):
    roles: list[Role] | None = Field(None, min_length=1)
    disabled: bool | None = None
    scopes: dict[Role, ScopeItems] | None = Field(
        None, description=SCOPES_DOC + "; replaces every scope of the user (null: keep them)"
    )


class PasswordUpdate(_In):
    password: str = Field(..., min_length=1, max_length=1024, description=PASSWORD_RULE)
    current_password: str | None = Field(
        None, max_length=1024, description="your current password: required to change your own"
    )


class UserPublic(_Out):
    name: str
    roles: list[str]
    disabled: bool
    has_password: bool
    created_at: UtcDatetime
    created_by: str | None
    password_reset_by: str | None = Field(
        None, description="the admin who reset the password, while its user has not set their own (no role until then)"
    )
    scopes: dict[str, list[str]] = Field(
        default_factory=dict, description="the scoped roles: role -> scope items (roles not named: everywhere)"
    )


class TokenCreate(_In):
    name: str = Field(..., min_length=1, max_length=128, description="what uses the token")
    user: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="must be you (the default): a token for another user is refused (403), even for an admin",
    )
    expires_days: float | None = Field(
        None,
        gt=0,
        le=3650,
        description="lifetime in days; default 90, or less where the role allows less (operator, approver: 30; "
        "auditor: 90; viewer: 365; admin: no limit). A longer one is refused (409)",
    )
    never_expires: bool = Field(False, description="a token that never expires: admins only (audited)")


class TokenPublic(_Out):
    id: int
    name: str
    user: str
    prefix: str
    created_at: UtcDatetime
    created_by: str
    expires_at: UtcDatetime | None
    last_used_at: UtcDatetime | None
    revoked_at: UtcDatetime | None


class TokenCreated(TokenPublic):
    token: str = Field(..., description="shown once; only its hash is stored")


# -- watchlists and entries ---------------------------------------------------------------------------------------
class WatchlistCreate(_In):
    name: str = Name
    category: Category


class WatchlistPublic(_Out):
    name: str
    category: str
    subjects: int
    templates: int
    created_at: UtcDatetime


class EntryPublic(_Out):
    id: int
    watchlist: str
    name: str
    status: str
    urgent: bool
    legal_basis: str | None
    authority: str | None
    reference: str | None
    scope: dict | None
    expires_at: UtcDatetime | None
    created_by: str | None
    approved_by: str | None
    templates: int


class RevokeCreate(_In):
    reason: str = Field(..., min_length=1, max_length=2000)


class ShredCreate(_In):
    confirm: str = Field(..., description="the watchlist's name again: shredding cannot be undone")


class FoundFacePublic(_Out):
    number: int = Field(..., description="the face's number (1 = leftmost); send it as `face` to enrol this face")
    box: list[float] = Field(..., description="[x1, y1, x2, y2] in the uploaded photo's pixels")
    problem: str | None = Field(None, description="why this face cannot be enrolled (null: it can)")


class EnrolPhotoPublic(_Out):
    photo: str
    status: Literal["enrolled", "duplicate", "refused"]
    reason: str | None
    quality: float | None
    faces: list[FoundFacePublic] | None = Field(
        None, description="when refused for several faces of which none is clearly the subject's: the faces, numbered"
    )


class EnrolPublic(_Out):
    watchlist: str
    subject: str = Field(..., description="the entry's name as stored (NFC, trimmed)")
    entry_status: str | None = Field(None, description="pending until a second approver approves it")
    expires_at: str | None = Field(
        None, description="when the entry stops matching, ISO 8601 in the deployment's time zone (with its offset)"
    )
    valid_from: str | None = Field(None, description="when the authorisation starts, same form (null: at once)")
    timezone: str = Field("UTC", description="the deployment's time zone (IANA name) dates were read in")
    photos: list[EnrolPhotoPublic]
    person_id: int | None = Field(None, description="the person the entry belongs to")
    linked: str | None = Field(None, description="why the entry joined a person enrolled before, if it did")
    warnings: list[str] = Field(
        default_factory=list,
        description="each starting with the photo's name: look-alike persons to link or mark distinct, and which face "
        "of a photo with several faces was taken as the subject's",
    )


# -- alerts -------------------------------------------------------------------------------------------------------
# -- alarms (see metrosight.policy.alarms) ---------------------------------------------------------------------------
Priority = Literal["critical", "high", "normal", "low"]


class AlarmPublic(_Out):
    """An alert's alarm: the policy it was raised under (copied when it opened) and where it stands."""

    state: Literal["new", "claimed", "acknowledged"]
    priority: Priority
    colour: str = Field(..., description="#rrggbb")
    ack_required: bool
    policy_of: str | None = Field(None, description="the watchlist whose policy it was raised under")
    owner: str | None = Field(None, description="who claimed it (shown to every operator)")
    claimed_at: float | None = Field(None, description="Unix time, seconds")
    acknowledged_at: float | None = Field(None, description="Unix time, seconds")
    escalate_at: float | None = Field(None, description="Unix time at which it escalates unless acknowledged")
    seconds_to_escalation: float | None = Field(
        None, description="seconds left before it escalates, at the time of the response (0: due); null: it will not"
    )
    escalate_to: str | None = Field(None, description="the role it escalates to")
    escalated: bool = False
    escalated_at: float | None = Field(None, description="Unix time, seconds")


class AlarmStepPublic(_Out):
    action: Literal["raise", "claim", "release", "takeover", "acknowledge", "escalate"]
    actor: str
    from_state: str | None
    to_state: str
    previous_owner: str | None
    owner: str | None
    reason: str | None
    at: float = Field(..., description="Unix time, seconds")


class AlarmResult(_Out):
    id: int = Field(..., description="the alert")
    alarm: AlarmPublic


class TakeoverCreate(_In):
    reason: str = Field(..., min_length=1, max_length=2000, description="why (the previous owner and the audit see it)")


class AlertPolicyUpdate(_In):
    """A watchlist's alert policy. An escalation needs ``ack_required``, ``escalate_after_s`` and ``escalate_to``."""

    priority: Priority = "normal"
    colour: str | None = Field(None, max_length=7, description="#rgb or #rrggbb; null: the priority's default")
    ack_required: bool = False
    groups: list[str] = Field(
        default_factory=list,
        max_length=200,
        description="camera groups (a camera's line, group, or a named group containing it) it applies to; []: all",
    )
    escalate_after_s: int | None = Field(None, ge=1, le=7 * 24 * 3600, description="seconds; null: never")
    escalate_to: Literal["admin", "operator"] | None = None


class AlertPolicyPublic(AlertPolicyUpdate):
    model_config = ConfigDict(extra="ignore", from_attributes=True)

    watchlist: str
    shown_colour: str = Field(..., description="the colour alarms are shown in")
    default: bool = Field(..., description="no policy was set: the default applies")
    set_by: str | None = None
    set_at: UtcDatetime | None = None


class AlertPublic(_Out):
    id: int
    event_id: str
    camera_id: str
    track_id: int
    subject_id: int | None
    subject_name: str
    watchlist: str
    category: str
    score: float
    distance: float
    first_seen: float = Field(..., description="media time, seconds")
    last_seen: float = Field(..., description="media time, seconds")
    samples: int
    status: str
    has_crop: bool
    reference: str | None = Field(None, description="the entry's authorisation reference (case or order number)")
    created_at: UtcDatetime
    person_id: int | None = Field(None, description="the person; subject_name is the person's name")
    watchlists: list[str] = Field(default_factory=list, description="every list the person was matched on")
    entries: list[dict] = Field(
        default_factory=list, description="every entry (list, name, authorisation) the person was matched on"
    )
    sightings: int = Field(1, description="tracks that matched, on this camera or cameras of its group")
    cameras: list[str] = Field(default_factory=list, description="cameras of the sightings, first first")
    first_at: float | None = Field(None, description="Unix time of the first sighting, seconds")
    last_at: float | None = Field(None, description="Unix time of the last sighting, seconds")
    alarm: AlarmPublic | None = Field(None, description="its alarm; null: no alert policy covers its camera")


class SightingPublic(_Out):
    n: int = Field(..., description="1-based, in the order seen (`/api/alerts/{id}/crop?sighting=n`)")
    camera_id: str
    track_id: int
    watchlist: str
    score: float
    first_seen: float = Field(..., description="media time of its run, seconds")
    last_seen: float
    first_at: float = Field(..., description="Unix time, seconds")
    last_at: float
    has_crop: bool


class ReviewPublic(_Out):
    alert_id: int
    user: str
    action: str
    reason: str | None
    at: UtcDatetime


class AlertDetailPublic(AlertPublic):
    reviews: list[ReviewPublic]
    earlier_rejections: list[ReviewPublic] = Field(..., description="rejected alerts of the same person (feedback)")
    sighting_list: list[SightingPublic] = Field(default_factory=list, description="every sighting of the episode")
    alarm_steps: list[AlarmStepPublic] = Field(default_factory=list, description="the alarm's steps, oldest first")


class IdentifyFacePublic(_Out):
    box: list[float]
    subject: str | None = Field(None, description="the person's name")
    person_id: int | None = None
    watchlist: str | None = Field(None, description="the best-scoring entry's list")
    watchlists: list[str] = Field(default_factory=list, description="every list the person is on (here)")
    category: str | None = None
    score: float | None = None
    entries: list[dict] = Field(default_factory=list)
    ambiguous: bool = Field(False, description="another person is also a candidate within the ambiguity margin")
    candidates: list[dict] = Field(
        default_factory=list, description="those other persons (person_id, subject, watchlist, score), best first"
    )
    skipped: str | None = Field(None, description="why a face was not searched (too small, blurred, turned)")


class IdentifyPublic(_Out):
    photo: str
    faces: list[IdentifyFacePublic]
    error: str | None = None


class RejectCreate(_In):
    reason: str = Field(..., min_length=1, max_length=2000)


class ReviewResult(_Out):
    id: int
    status: str


# -- recognition operating point ----------------------------------------------------------------------------------
class ListOperatingPublic(_Out):
    target_fpir: float
    threshold: float | None


class OperatingPointPublic(_Out):
    """The match threshold in force and what it means (see ``recognition.target_fpir``)."""

    target_fpir: float
    fpir_per_search: float
    persons: int
    threshold: float
    scoring: str
    method: str
    impostor_pairs: int
    fmr_target: float | None
    fpir_resolution: float | None
    floor: float
    lists: dict[str, ListOperatingPublic]
    searches_per_day: float | None
    expected_false_candidates_per_day: float | None


# -- cameras, events, audit ---------------------------------------------------------------------------------------
class CameraPublic(_Out):
    id: str
    source: str | None
    line: str | None
    state: str
    reason: str
    since: float | None = Field(None, description="Unix time of the last state change")
    fps: float | None = Field(None, description="frames analysed a second, over the last report")
    faces_per_s: float | None
    last_frame: float | None = Field(None, description="Unix time of the newest decoded frame")
    frames: int
    faces: int
    tracks: int
    alerts: int
    has_snapshot: bool


class EventPublic(_Out):
    id: int
    event_id: str
    camera_id: str
    kind: str
    start_ts: float = Field(..., description="media time, seconds")
    end_ts: float | None
    track_id: int | None
    data: dict | None
    has_snapshot: bool
    created_at: UtcDatetime


class AuditEntryPublic(_Out):
    seq: int
    at: str
    actor: str
    action: str
    target: str | None
    details: dict
    hash: str


class VerifyPublic(_Out):
    ok: bool
    checked: int
    broken_seq: int | None
    reason: str | None
    mismatches: list[str] = []  # governed rows (approvals, templates, reviews) the keyed log does not back
