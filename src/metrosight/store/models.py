"""SQLAlchemy models. SQLite by default, PostgreSQL at scale; the schema is managed by Alembic migrations.

A *person* (:class:`Person`) is one human being; each watchlist *entry* (:class:`Subject`) belongs to one person and
a person may be on several watchlists (one entry each). An entry carries its own authorisation: status, legal basis,
issuing authority, reference, scope and validity window. Only entries whose status is ``active`` (and that are in
scope and unexpired) are matched. Templates (descriptors) are stored only for enrolled subjects; nothing of passers-
by is stored.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Watchlist(Base):
    __tablename__ = "watchlists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    category: Mapped[str] = mapped_column(String(32), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(128))

    subjects: Mapped[list[Subject]] = relationship(back_populates="watchlist", cascade="all, delete-orphan")


class Person(Base):
    """One human being, with one or more watchlist entries. Matching, the ambiguity rule and alert episodes work
    per person: the same person on two lists is one candidate, named with every list."""

    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(128))
    # touched by every alert of the person: the first write of the episode merge, so concurrent merges of one
    # person's sightings queue up (a row lock on PostgreSQL, the write lock on SQLite)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    entries: Mapped[list[Subject]] = relationship(back_populates="person")


class PersonDistinct(Base):
    """An operator's record that two persons whose faces look alike are different people (``person_a <
    person_b``): enrolment stops warning about the pair and the two are never linked by name."""

    __tablename__ = "person_distinct"
    __table_args__ = (UniqueConstraint("person_a", "person_b", name="uq_person_distinct_pair"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_a: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), nullable=False)
    person_b: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)


class Subject(Base):
    """A watchlist entry: one authorisation to look for one person on one watchlist."""

    __tablename__ = "subjects"
    __table_args__ = (UniqueConstraint("watchlist_id", "name", name="uq_subject_watchlist_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    watchlist_id: Mapped[int] = mapped_column(ForeignKey("watchlists.id", ondelete="CASCADE"), nullable=False)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(256), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    legal_basis: Mapped[str | None] = mapped_column(Text)
    issuing_authority: Mapped[str | None] = mapped_column(String(256))
    reference: Mapped[str | None] = mapped_column(String(256))
    scope: Mapped[dict | None] = mapped_column(JSON)
    valid_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(128))
    approved_by: Mapped[str | None] = mapped_column(String(128))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(String(128))
    revoke_reason: Mapped[str | None] = mapped_column(Text)
    urgent: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    requested_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    watchlist: Mapped[Watchlist] = relationship(back_populates="subjects")
    person: Mapped[Person] = relationship(back_populates="entries")
    templates: Mapped[list[Template]] = relationship(back_populates="subject", cascade="all, delete-orphan")


class Template(Base):
    """One enrolment descriptor (128 float32, little-endian) of a subject, which photo it came from, who added it,
    and whether it is ``held`` (not matched until the entry is approved by someone who added no template)."""

    __tablename__ = "templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"), nullable=False)
    descriptor: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    model: Mapped[str] = mapped_column(String(64), nullable=False)
    source_name: Mapped[str] = mapped_column(String(512), nullable=False)
    source_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    quality: Mapped[float] = mapped_column(Float, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    # who contributed it (may not approve the entry), and whether it waits for that approval before it is matched
    added_by: Mapped[str | None] = mapped_column(String(128))
    held: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())

    subject: Mapped[Subject] = relationship(back_populates="templates")


class AlertRecord(Base):
    """A stored alert: an *episode* of one person, reviewed once by two operators. Its first sighting (a track
    that matched) opens it; later matches of the person on the same camera within ``alerts.episode_window_s``, or
    on a camera of the same group within ``alerts.group_window_s``, are appended as :class:`Sighting` rows.

    ``first_seen``/``last_seen`` are media seconds of the run of its first sighting (extended by later sightings
    of that camera and run); ``first_at``/``last_at`` are the wall-clock span of every sighting (Unix seconds).
    ``subject_name`` is the person's name; ``entries`` every entry (list, authorisation) they were matched on.
    """

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    camera_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    track_id: Mapped[int] = mapped_column(Integer, nullable=False)
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("subjects.id", ondelete="SET NULL"))
    subject_name: Mapped[str] = mapped_column(String(256), nullable=False)
    watchlist: Mapped[str] = mapped_column(String(128), nullable=False)
    category: Mapped[str] = mapped_column(String(32), nullable=False)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    distance: Mapped[float] = mapped_column(Float, nullable=False)
    first_seen: Mapped[float] = mapped_column(Float, nullable=False)
    last_seen: Mapped[float] = mapped_column(Float, nullable=False)
    samples: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    crop_path: Mapped[str | None] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="new")
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False, index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id", ondelete="SET NULL"), index=True)
    entries: Mapped[list | None] = mapped_column(JSON)
    group_key: Mapped[str | None] = mapped_column(String(80))
    first_at: Mapped[float | None] = mapped_column(Float)
    last_at: Mapped[float | None] = mapped_column(Float)
    sightings: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default="1")
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the alarm (see metrosight.policy.alarms): the policy it was raised under, copied when the episode opened,
    # and where it stands; alarm_state NULL: the alert raises no alarm. Times are Unix seconds.
    alarm_state: Mapped[str | None] = mapped_column(String(16), index=True)
    priority: Mapped[str | None] = mapped_column(String(16))
    colour: Mapped[str | None] = mapped_column(String(7))
    ack_required: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    policy_watchlist: Mapped[str | None] = mapped_column(String(128))
    owner: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[float | None] = mapped_column(Float)
    acknowledged_at: Mapped[float | None] = mapped_column(Float)
    escalate_at: Mapped[float | None] = mapped_column(Float, index=True)
    escalate_to: Mapped[str | None] = mapped_column(String(32))
    escalated_at: Mapped[float | None] = mapped_column(Float)


class AlertPolicyRecord(Base):
    """A watchlist's alert policy (:class:`metrosight.policy.alarms.AlarmPolicy`), set by an admin (audited)."""

    __tablename__ = "alert_policies"

    watchlist_id: Mapped[int] = mapped_column(ForeignKey("watchlists.id", ondelete="CASCADE"), primary_key=True)
    priority: Mapped[str] = mapped_column(String(16), nullable=False)
    colour: Mapped[str | None] = mapped_column(String(7))
    ack_required: Mapped[bool] = mapped_column(Boolean, nullable=False)
    groups: Mapped[list] = mapped_column(JSON, nullable=False)
    escalate_after_s: Mapped[int | None] = mapped_column(Integer)
    escalate_to: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    updated_by: Mapped[str] = mapped_column(String(128), nullable=False)


class AlarmTransition(Base):
    """One step of an alarm: raised, claimed, released, taken over, acknowledged, escalated (who, when, from which
    state and owner to which). Published once on the bus's ``alarms`` topic (``published_at``, claimed by one
    process with a conditional update)."""

    __tablename__ = "alarm_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False, index=True)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16), nullable=False)
    previous_owner: Mapped[str | None] = mapped_column(String(128))
    owner: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[float] = mapped_column(Float, nullable=False)
    published_at: Mapped[float | None] = mapped_column(Float, index=True)


class Sighting(Base):
    """One track's match, part of an alert episode: where, when (media seconds of its run and wall-clock Unix
    seconds), how alike, and its encrypted, redacted best-shot crop (under ``watchlist``'s key)."""

    __tablename__ = "sightings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False, index=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    camera_id: Mapped[str] = mapped_column(String(64), nullable=False)
    track_id: Mapped[int] = mapped_column(Integer, nullable=False)
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("subjects.id", ondelete="SET NULL"))
    watchlist: Mapped[str] = mapped_column(String(128), nullable=False)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    distance: Mapped[float] = mapped_column(Float, nullable=False)
    first_seen: Mapped[float] = mapped_column(Float, nullable=False)
    last_seen: Mapped[float] = mapped_column(Float, nullable=False)
    media_origin: Mapped[float | None] = mapped_column(Float)
    first_at: Mapped[float] = mapped_column(Float, nullable=False)
    last_at: Mapped[float] = mapped_column(Float, nullable=False)
    samples: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    crop_path: Mapped[str | None] = mapped_column(String(1024))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


class Run(Base):
    """One pipeline run over a source, with its summary counts."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(64), nullable=False)
    source: Mapped[str] = mapped_column(String(1024), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="running")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    frames: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    faces: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    tracks: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    alerts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255))  # where the run's process ran (to close it if it died)
    pid: Mapped[int | None] = mapped_column(Integer)


class EventRecord(Base):
    """A non-identity event (analytics: loitering, fast movement, counting; camera state changes).

    ``start_ts``/``end_ts`` are media time in seconds; ``data`` holds the kind-specific fields (zone, duration, peak
    speed, …). Never holds a face template or an identity.
    """

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    camera_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    start_ts: Mapped[float] = mapped_column(Float, nullable=False)
    end_ts: Mapped[float | None] = mapped_column(Float)
    track_id: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[dict | None] = mapped_column(JSON)
    snapshot_path: Mapped[str | None] = mapped_column(String(1024))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False, index=True)


class WatchlistKey(Base):
    """The data key of a watchlist (Fernet), wrapped by the installation's master key. Deleting it makes the
    watchlist's templates and crops unreadable (crypto-shredding)."""

    __tablename__ = "watchlist_keys"

    watchlist_id: Mapped[int] = mapped_column(ForeignKey("watchlists.id", ondelete="CASCADE"), primary_key=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


class User(Base):
    """A person who acts on the system. Roles: admin, approver, operator, auditor, viewer."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    roles: Mapped[list] = mapped_column(JSON, nullable=False)
    password_hash: Mapped[str | None] = mapped_column(String(256))
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(128))
    # Who set the current password when it was not the user (an admin's reset); NULL: the user, or the first
    # password given when the account was created. See metrosight.policy.rules.Actor.password_set_by.
    password_set_by: Mapped[str | None] = mapped_column(String(128))
    # role -> {"camera_groups": [...], "watchlists": [...]} for the roles held for a limited scope; a role not
    # named (and NULL, every user made before scopes existed) is held everywhere. See metrosight.policy.scope.
    scopes: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))


class OidcIdentity(Base):
    """A person at an OpenID provider (issuer + subject) and the metrosight user they act as.

    Made by their first sign-in (``provisioned``: a user of their own) or by an admin's link to an existing user
    (``provisioned`` false). A link by e-mail (``subject`` NULL, ``email`` set) waits for the first sign-in whose ID
    token carries that address *verified*; it then holds the subject."""

    __tablename__ = "oidc_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject", name="uq_oidc_issuer_subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issuer: Mapped[str] = mapped_column(String(512), nullable=False)
    subject: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))  # a pending link by verified e-mail address
    user: Mapped[str] = mapped_column(String(128), nullable=False, index=True)
    provisioned: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UserPreference(Base):
    """A user's own settings of the operator UI: its language and time zone (NULL: the browser's language, the
    installation's zone). Keyed by the acting name (a local user or a signed-in person of an identity provider)."""

    __tablename__ = "user_preferences"

    user: Mapped[str] = mapped_column(String(128), primary_key=True)
    language: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


class AlertReview(Base):
    """One operator's confirmation or rejection of an alert (kept as feedback)."""

    __tablename__ = "alert_reviews"
    __table_args__ = (UniqueConstraint("alert_id", "user", name="uq_review_alert_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False, index=True)
    user: Mapped[str] = mapped_column(String(128), nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)  # confirm | reject
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


class AuditEntry(Base):
    """One link of the append-only, hash-chained audit log."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True, nullable=False)
    at: Mapped[str] = mapped_column(String(40), nullable=False)  # ISO-8601 UTC, hashed as written
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    target: Mapped[str | None] = mapped_column(String(512))
    details: Mapped[str] = mapped_column(Text, nullable=False)  # canonical JSON, hashed as written
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)


class NoIdWindow(Base):
    """A place + time window during which face matching is switched off (analytics still run)."""

    __tablename__ = "no_id_windows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    scope: Mapped[dict] = mapped_column(JSON, nullable=False)  # {"cameras": [...], "lines": [...]}; empty: all
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    removed_by: Mapped[str | None] = mapped_column(String(128))


class Meta(Base):
    """Small key/value facts, e.g. ``gallery_version`` (bumped on every change to what may be matched)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class ApiToken(Base):
    """An API token for machines (``Authorization: Bearer …``). Only the token's SHA-256 is stored; it acts as
    ``user`` with that user's roles. Revoked or expired tokens are refused."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    user: Mapped[str] = mapped_column(String(128), nullable=False, index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)  # first characters, to tell tokens apart
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(String(128))


class TotpFactor(Base):
    """A user's TOTP second factor (:mod:`metrosight.policy.totp`). The secret is encrypted with a data key of its
    own, wrapped by the installation's master key (as watchlist templates are); ``confirmed_at`` is NULL until the
    user has typed a valid code (only then is the factor used at sign-in). ``last_step`` is the time step of the last
    accepted code: a code of that step or an earlier one is refused (replay)."""

    __tablename__ = "totp_factors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    secret: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_step: Mapped[int | None] = mapped_column(Integer)


class TotpRecoveryCode(Base):
    """A one-time recovery code of a user's TOTP factor, Argon2id-hashed (found by its keyed ``lookup`` tag);
    ``used_at`` set when it was used."""

    __tablename__ = "totp_recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user: Mapped[str] = mapped_column(String(128), nullable=False, index=True)
    code_hash: Mapped[str] = mapped_column(String(256), nullable=False)
    # HMAC-SHA256 of the code under a key derived from the master key (first 32 hex digits): finds the one row to
    # check with Argon2id; useless without the master key (migration 0019; NULL for codes made before it)
    lookup: Mapped[str | None] = mapped_column(String(32), index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
