"""Typed, versioned payloads that travel on the bus. Frames never travel; a small redacted JPEG crop may."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from metrosight.core.types import Match


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EntryRefV1(_Payload):
    """One watchlist entry (authorisation) of the matched person."""

    entry_id: int
    name: str
    watchlist: str
    category: str
    reference: str | None = None


class CandidateV1(_Payload):
    """Another person the same track also matched, within the ambiguity margin of the best (an ambiguous alert)."""

    person_id: int | None = None
    name: str
    watchlist: str
    score: float


class AlertV1(_Payload):
    """A track matched a person on the active watchlists (a *sighting*; the store merges sightings of one person
    close in time into one alert episode). ``subject_id``/``watchlist``/``category`` are the best-scoring entry's;
    ``entries`` every entry of the person matchable on this camera."""

    version: Literal[1] = 1
    event_id: str
    camera_id: str
    track_id: int
    subject_id: int
    subject: str
    watchlist: str
    category: str
    score: float
    distance: float
    first_seen: float = Field(description="media time, seconds")
    last_seen: float = Field(description="media time, seconds")
    samples: int
    crop_jpeg: bytes | None = Field(None, description="redacted best-shot crop, JPEG")
    run_id: int | None = None
    person_id: int | None = None
    person: str | None = Field(None, description="the person's name")
    entries: tuple[EntryRefV1, ...] = ()
    group: str | None = Field(None, description="the camera's group (station or line) for alert episodes")
    media_origin: float | None = Field(None, description="Unix time of media time 0 of the camera's run, seconds")
    candidates: tuple[CandidateV1, ...] = Field(
        (), description="other persons above their threshold within the ambiguity margin: the alert is ambiguous"
    )

    @classmethod
    def of_match(
        cls,
        match: Match,
        *,
        event_id: str,
        camera_id: str,
        track_id: int,
        first_seen: float,
        last_seen: float,
        samples: int,
        crop_jpeg: bytes | None = None,
        run_id: int | None = None,
        group: str | None = None,
        media_origin: float | None = None,
    ) -> AlertV1:
        """The alert of a track that matched ``match`` (the matcher's :class:`~metrosight.core.types.Match`): the
        one alert value from the matcher to the store. Score and distance to 4 decimals, times (seconds) to 3."""
        return cls(
            event_id=event_id,
            camera_id=camera_id,
            track_id=track_id,
            subject_id=match.subject_id,
            subject=match.person_name or match.subject_name,
            watchlist=match.watchlist,
            category=str(match.category),
            score=round(match.score, 4),
            distance=round(match.distance, 4),
            first_seen=round(first_seen, 3),
            last_seen=round(last_seen, 3),
            samples=samples,
            crop_jpeg=crop_jpeg,
            run_id=run_id,
            person_id=match.person_id,
            person=match.person_name,
            entries=tuple(
                EntryRefV1(
                    entry_id=e.entry_id,
                    name=e.name,
                    watchlist=e.watchlist,
                    category=str(e.category),
                    reference=e.reference,
                )
                for e in match.entries
            ),
            group=group,
            media_origin=None if media_origin is None else round(media_origin, 3),
            candidates=tuple(
                CandidateV1(person_id=r.person_id, name=r.name, watchlist=r.watchlist, score=r.score)
                for r in match.rivals
            ),
        )

    @property
    def watchlists(self) -> tuple[str, ...]:
        """Every list the person is matched on, the primary first (no repeats)."""
        return tuple(dict.fromkeys([e.watchlist for e in self.entries] or [self.watchlist]))


class AlertUpdateV1(_Payload):
    """The track of an alert ended; its final last-seen time. The alert's camera, group, lists and category come
    along (for the outbound channels' filters; absent from publishers older than them)."""

    version: Literal[1] = 1
    event_id: str
    last_seen: float
    camera_id: str | None = None
    group: str | None = None
    watchlist: str | None = None
    watchlists: tuple[str, ...] = ()
    category: str | None = None

    @classmethod
    def of_alert(cls, alert: AlertV1, last_seen: float) -> AlertUpdateV1:
        """The end of ``alert``'s track at ``last_seen`` (media seconds, to 3 decimals)."""
        return cls(
            event_id=alert.event_id,
            last_seen=round(last_seen, 3),
            camera_id=alert.camera_id,
            group=alert.group,
            watchlist=alert.watchlist,
            watchlists=alert.watchlists,
            category=alert.category,
        )


class CameraStateV1(_Payload):
    """A camera changed state: ``starting``, ``live``, ``reconnecting``, ``down`` or ``stopped``."""

    version: Literal[1] = 1
    camera_id: str
    state: Literal["starting", "live", "reconnecting", "down", "stopped"]
    previous: str | None = None
    reason: str = Field("", description="why, in words: the error of the last attempt, the watchdog, …")
    attempt: int = Field(0, ge=0, description="consecutive failed connection attempts")
    wall_time: float = Field(description="Unix time of the change, seconds")
    worker: int | None = Field(None, description="the node's worker process running the camera")


class CameraStatsV1(_Payload):
    """Counters of one camera since its worker (re)started; sent every few seconds and when it stops."""

    version: Literal[1] = 1
    camera_id: str
    worker: int
    state: str
    frames_decoded: int = Field(description="frames decoded from the source")
    frames_skipped: int = Field(description="frames not due under the analysis rate")
    frames_dropped: int = Field(description="due frames replaced by a newer one before the analysis took them")
    frames_codec_skipped: int = Field(
        0, ge=0, description="frames the decoder left undecoded (non-reference frames the analysis rate does not need)"
    )
    decode_seconds: float = Field(
        0.0, ge=0.0, description="CPU time of the camera's decoding thread (reading and decoding), seconds"
    )
    decoder: str = Field("software", max_length=32, description="what decodes the camera: software, cuda or vaapi")
    frames_analysed: int
    faces: int = Field(description="faces detected in analysed frames")
    embedded: int = Field(description="face descriptors computed")
    tracks: int
    alerts: int
    reconnects: int
    stalls: int
    failed_attempts: int
    frames_gated: int = Field(0, description="analysed frames where motion gating ran no face detection at all")
    detect_pixels: int = Field(0, description="frame pixels given to the face detector (frames, regions, crops)")
    frame_pixels: int = Field(0, description="pixels of the analysed frames (detect_pixels / frame_pixels: the share)")
    last_frame_wall: float = Field(description="Unix time of the newest decoded frame (0: none yet)")
    worker_cpu_seconds: float = Field(description="CPU time of the whole worker process so far")
    wall_time: float
    stage_seconds: dict[str, float] = Field(default_factory=dict, description="wall time per pipeline stage, s")
    stage_buckets: dict[str, list[int]] = Field(
        default_factory=dict, description="per stage, runs counted in pipeline.camera.STAGE_BUCKETS (non-cumulative)"
    )


class CameraSnapshotV1(_Payload):
    """A camera's newest whole frame, downscaled, with every detected face blurred (for the operator UI; kept in
    memory only)."""

    version: Literal[1] = 1
    camera_id: str
    jpeg: bytes
    wall_time: float = Field(description="Unix time of the frame, seconds")


class EventV1(_Payload):
    """A behaviour event (no identity): loitering, fast movement, a line crossing, or a crowd-safety alarm.

    Published when the rule fires (``end_ts`` None while the episode goes on); :class:`EventUpdateV1` carries its
    end. ``kind`` is one of ``loitering``, ``fast_movement``, ``line_crossing``, ``occupancy`` (a zone held more
    than ``max_people`` too long; ``track_id`` None, no ``person``) and ``wrong_way`` (a line crossed against its
    allowed direction; instant); a consumer ignores kinds it does not know (more may come; the schema stays 1).
    ``data`` holds the kind's fields (zone, duration_s, peak_speed, unit, line, direction, person; for occupancy:
    alarm, zone, max_people, count, then peak and duration_s at the end; for wrong_way: line, direction, allowed).
    """

    version: Literal[1] = 1
    event_id: str
    camera_id: str
    kind: str
    start_ts: float = Field(description="media time, seconds")
    end_ts: float | None = Field(None, description="media time, seconds")
    track_id: int | None = None
    data: dict[str, str | int | float | None] = Field(default_factory=dict)
    snapshot_jpeg: bytes | None = Field(None, description="whole frame with every face blurred, JPEG")
    run_id: int | None = None


class EventUpdateV1(_Payload):
    """A behaviour event's episode ended: its end time and final fields (merged into ``data``)."""

    version: Literal[1] = 1
    event_id: str
    end_ts: float
    data: dict[str, str | int | float | None] = Field(default_factory=dict)


class AlarmV1(_Payload):
    """A step of an alert's alarm (see :mod:`metrosight.policy.alarms`): raised under its watchlist's policy,
    claimed, released, taken over, acknowledged, or escalated (not acknowledged within its time; ``escalated_to``
    names the role). Published once per step on the ``alarms`` topic by the service (``metrosight serve``); each
    step's ``event_id`` is unique and stable (an idempotency key for receivers). No crop, no face data."""

    version: Literal[1] = 1
    event_id: str = Field(description="alarm:<alert event id>:<step number>: unique per step")
    alert_id: int
    alert_event_id: str
    transition: Literal["raise", "claim", "release", "takeover", "acknowledge", "escalate"]
    state: Literal["new", "claimed", "acknowledged"]
    actor: str = Field(description="who acted (system:<camera> for raise, system:escalation for escalate)")
    owner: str | None = Field(None, description="who has claimed the alarm after this step")
    previous_owner: str | None = None
    reason: str | None = Field(None, description="a take-over's reason")
    at: float = Field(description="Unix time of the step, seconds")
    priority: Literal["critical", "high", "normal", "low"]
    colour: str = Field(description="#rrggbb")
    ack_required: bool
    escalate_at: float | None = Field(None, description="Unix time at which it escalates unless acknowledged")
    escalated: bool = False
    escalated_to: str | None = Field(None, description="the role an escalated alarm went to")
    camera_id: str
    group: str | None = Field(None, description="the camera group (station or line) of the alert's episode")
    subject: str = Field(description="the person's name")
    person_id: int | None = None
    watchlist: str = Field(description="the list whose policy the alarm was raised under")
    watchlists: tuple[str, ...] = ()
    category: str
    status: str = Field(description="the alert's two-person review status (new, confirmed_once, actionable, rejected)")


class AlertReviewV1(_Payload):
    """An operator confirmed or rejected an alert (the two-person review); ``status`` is the alert's status after
    it. Published on the ``alert-reviews`` topic by the process where the review was made. ``event_id``
    (``review:<alert id>:<reviewer>``) is unique and stable: one operator reviews one alert once."""

    version: Literal[1] = 1
    event_id: str
    alert_id: int
    alert_event_id: str = Field(description="the event id of the alert's first sighting")
    action: Literal["confirm", "reject"]
    reviewer: str
    reason: str | None = Field(None, description="a rejection's reason")
    status: str = Field(description="the alert's status after the review (confirmed_once, actionable, rejected)")
    at: float = Field(description="Unix time of the review, seconds")
    camera_id: str
    group: str | None = Field(None, description="the camera group of the alert's episode")
    subject: str = Field(description="the person's name")
    person_id: int | None = None
    watchlist: str
    watchlists: tuple[str, ...] = ()
    category: str


class EpisodeV1(_Payload):
    """A sighting was stored into an alert episode: ``opened`` when it opened a new alert (episode), else it was
    appended to the person's open one (``sightings`` now). Published on the ``episodes`` topic by the host that
    stored it. ``event_id`` (``episode:<alert id>:<sighting event id>``) is unique and stable."""

    version: Literal[1] = 1
    event_id: str
    alert_id: int
    sighting_event_id: str
    opened: bool
    sightings: int
    status: str = Field(description="the alert's review status")
    camera_id: str
    group: str | None = None
    subject: str
    person_id: int | None = None
    watchlist: str
    watchlists: tuple[str, ...] = ()
    category: str
    first_seen: float = Field(description="media time of the sighting, seconds")
    last_seen: float = Field(description="media time of the sighting, seconds")
    media_origin: float | None = Field(None, description="Unix time of media time 0 of the sighting's run")

    @classmethod
    def of_sighting(cls, alert: AlertV1, alert_id: int, opened: bool, sightings: int, status: str) -> EpisodeV1:
        """The episode event of ``alert`` (a sighting) stored into alert ``alert_id``."""
        return cls(
            event_id=f"episode:{alert_id}:{alert.event_id}",
            alert_id=alert_id,
            sighting_event_id=alert.event_id,
            opened=opened,
            sightings=sightings,
            status=status,
            camera_id=alert.camera_id,
            group=alert.group,
            subject=alert.subject,
            person_id=alert.person_id,
            watchlist=alert.watchlist,
            watchlists=alert.watchlists,
            category=alert.category,
            first_seen=alert.first_seen,
            last_seen=alert.last_seen,
            media_origin=alert.media_origin,
        )
