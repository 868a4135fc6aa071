"""The outbound event: one typed value for every channel, converted from the bus payloads by pure functions.

An :class:`OutboundEvent` carries what every channel filters and routes on (type, watchlists, category, camera,
camera group and line) and, as ``body``, the bus payload's JSON: the stable, versioned wire schema of
:mod:`metrosight.bus.payloads` (bytes fields — best-shot crops, snapshots — are never included: images of faces do
not leave the installation through an outbound channel).

``event_id`` is stable per source event (a redelivered bus message, or an alert re-raised by a camera resumed on
another worker, gives the same id): channels derive their idempotency keys from it.

Each topic's converter is in :data:`CONVERTERS` (topic wire name → function). A new topic (e.g. the alarm
workflow's ``alarms``) plugs in by adding its converter there and its topic to
:data:`metrosight.outbound.dispatch.OUTBOUND_TOPICS` (the dispatcher subscribes to each once).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel

from metrosight.bus.payloads import (
    AlarmV1,
    AlertReviewV1,
    AlertUpdateV1,
    AlertV1,
    CameraStateV1,
    EpisodeV1,
    EventUpdateV1,
    EventV1,
)

EventType = Literal["alert", "alert_review", "episode", "behaviour", "camera_state", "alarm"]
#: every event type, in documentation order
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)


@dataclass(frozen=True, slots=True)
class CameraPlace:
    """Where a camera is: its group (station or platform) and metro line, from the configuration, and ``groups``:
    every camera group it is in (its line, its group, each named group containing it;
    :meth:`metrosight.policy.scope.CameraGroups.of_camera`), which camera-group filters match against."""

    group: str | None = None
    line: str | None = None
    groups: frozenset[str] = field(default_factory=frozenset)


NO_PLACE = CameraPlace()


@dataclass(frozen=True, slots=True)
class OutboundEvent:
    """One event leaving the installation.

    Attributes:
        type: what happened (:data:`EVENT_TYPES`).
        event_id: stable per source event; the basis of every channel's idempotency key.
        schema: the body's schema and version, ``metrosight.<name>/<version>`` (e.g. ``metrosight.alert/1``).
        occurred_at: when it happened, aware UTC.
        watchlists: the watchlists it concerns, the primary first (empty: it names nobody).
        category: the primary watchlist entry's category (None: it names nobody).
        camera_id: the camera (None: not tied to one).
        camera_group: the camera's group (station or platform) where known.
        camera_line: the camera's metro line where known.
        camera_groups: every camera group the camera is in, as scopes resolve them (its line, its group, each
            named ``camera_groups`` entry containing it); filled from the places by :func:`to_outbound`.
        body: the payload as JSON-compatible data (the bus payload's fields without bytes).
    """

    type: EventType
    event_id: str
    schema: str
    occurred_at: datetime
    body: Mapping[str, Any]
    watchlists: tuple[str, ...] = ()
    category: str | None = None
    camera_id: str | None = None
    camera_group: str | None = None
    camera_line: str | None = None
    camera_groups: frozenset[str] = frozenset()

    @property
    def groups(self) -> frozenset[str]:
        """The names a camera-group filter matches: :attr:`camera_groups` with the event's own group and line."""
        return self.camera_groups | {x for x in (self.camera_group, self.camera_line) if x}

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown outbound event type {self.type!r} (known: {', '.join(EVENT_TYPES)})")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware (UTC)")
        if not self.event_id:
            raise ValueError("an outbound event needs an event_id")

    def envelope(self) -> dict[str, Any]:
        """The JSON document channels send: ``id``, ``type``, ``schema``, ``occurred_at`` (ISO 8601, UTC),
        ``camera`` (``id``, ``group``, ``line``), ``watchlists``, ``category`` and ``data`` (the body)."""
        return {
            "id": self.event_id,
            "type": self.type,
            "schema": self.schema,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "camera": {"id": self.camera_id, "group": self.camera_group, "line": self.camera_line},
            "watchlists": list(self.watchlists),
            "category": self.category,
            "data": dict(self.body),
        }


def _is_bytes(annotation: Any) -> bool:
    return annotation is bytes or bytes in get_args(annotation)


def body_of(payload: BaseModel) -> dict[str, Any]:
    """The payload's JSON fields, without its bytes fields (crops and snapshots never leave through a channel)."""
    fields = type(payload).model_fields
    return payload.model_dump(mode="json", exclude={k for k, f in fields.items() if _is_bytes(f.annotation)})


def utc(ts: float) -> datetime:
    """Unix seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, UTC)


def _at(origin: float | None, media_time: float, now: float) -> datetime:
    return utc(origin + media_time) if origin is not None else utc(now)


Places = Mapping[str, CameraPlace]
Converter = Callable[[Any, Places, float], OutboundEvent]


def _about_alert(
    p: Any,
    type_: EventType,
    event_id: str,
    schema: str,
    occurred_at: datetime,
    watchlists: tuple[str, ...],
    places: Places,
) -> OutboundEvent:
    """An event about an alert (``p``: a payload naming its camera, group, category and lists), filtered like the
    alert: its lists, category, camera and the camera's group (the payload's, else the configuration's) and line."""
    place = places.get(p.camera_id, NO_PLACE) if p.camera_id else NO_PLACE
    return OutboundEvent(
        type=type_,
        event_id=event_id,
        schema=schema,
        occurred_at=occurred_at,
        body=body_of(p),
        watchlists=watchlists,
        category=p.category,
        camera_id=p.camera_id,
        camera_group=p.group or place.group,
        camera_line=place.line,
    )


def from_alert(a: AlertV1, places: Places, now: float) -> OutboundEvent:
    """An alert (a sighting of a person on an active watchlist): type ``alert``, schema ``metrosight.alert/1``.
    ``occurred_at``: the first sighting's wall time when the camera's media origin is known, else ``now``."""
    return _about_alert(
        a, "alert", a.event_id, "metrosight.alert/1", _at(a.media_origin, a.first_seen, now), a.watchlists, places
    )


def from_alert_update(u: AlertUpdateV1, places: Places, now: float) -> OutboundEvent:
    """An alert's track ended (its final last-seen, media seconds): type ``alert``, schema
    ``metrosight.alert-update/1``, id ``<alert id>#ended``; filtered like its alert (an update of an older
    publisher names no list or camera: it passes no watchlist, category or camera-group filter)."""
    return _about_alert(
        u,
        "alert",
        f"{u.event_id}#ended",
        "metrosight.alert-update/1",
        utc(now),
        u.watchlists or ((u.watchlist,) if u.watchlist else ()),
        places,
    )


def from_event(e: EventV1, places: Places, now: float) -> OutboundEvent:
    """A behaviour event (loitering, fast movement, a line crossing; no identity): type ``behaviour``, schema
    ``metrosight.event/1``."""
    place = places.get(e.camera_id, NO_PLACE)
    return OutboundEvent(
        type="behaviour",
        event_id=e.event_id,
        schema="metrosight.event/1",
        occurred_at=utc(now),
        body=body_of(e),
        camera_id=e.camera_id,
        camera_group=place.group,
        camera_line=place.line,
    )


def from_event_update(u: EventUpdateV1, places: Places, now: float) -> OutboundEvent:
    """A behaviour event's episode ended: type ``behaviour``, schema ``metrosight.event-update/1``, id
    ``<event id>#ended``."""
    return OutboundEvent(
        type="behaviour",
        event_id=f"{u.event_id}#ended",
        schema="metrosight.event-update/1",
        occurred_at=utc(now),
        body=body_of(u),
    )


def from_camera_state(s: CameraStateV1, places: Places, now: float) -> OutboundEvent:
    """A camera changed state: type ``camera_state``, schema ``metrosight.camera-state/1``, id
    ``<camera>:<state>:<wall time in ms>``."""
    place = places.get(s.camera_id, NO_PLACE)
    return OutboundEvent(
        type="camera_state",
        event_id=f"{s.camera_id}:{s.state}:{round(s.wall_time * 1000)}",
        schema="metrosight.camera-state/1",
        occurred_at=utc(s.wall_time),
        body=body_of(s),
        camera_id=s.camera_id,
        camera_group=place.group,
        camera_line=place.line,
    )


def from_alarm(a: AlarmV1, places: Places, now: float) -> OutboundEvent:
    """A step of an alert's alarm (raised, claimed, released, taken over, acknowledged, escalated): type
    ``alarm``, schema ``metrosight.alarm/1``, id the step's (``alarm:<alert event id>:<step>``), ``occurred_at``
    the step's time. Filtered like its alert: the person's watchlists, category, camera and group."""
    return _about_alert(a, "alarm", a.event_id, "metrosight.alarm/1", utc(a.at), a.watchlists or (a.watchlist,), places)


def from_review(r: AlertReviewV1, places: Places, now: float) -> OutboundEvent:
    """An operator confirmed or rejected an alert: type ``alert_review``, schema ``metrosight.alert-review/1``, id
    ``review:<alert id>:<reviewer>``. Filtered like its alert."""
    return _about_alert(
        r, "alert_review", r.event_id, "metrosight.alert-review/1", utc(r.at), r.watchlists or (r.watchlist,), places
    )


def from_episode(e: EpisodeV1, places: Places, now: float) -> OutboundEvent:
    """A sighting stored into an alert episode (``opened``: a new alert): type ``episode``, schema
    ``metrosight.episode/1``, id ``episode:<alert id>:<sighting event id>``. Filtered like its alert."""
    return _about_alert(
        e,
        "episode",
        e.event_id,
        "metrosight.episode/1",
        _at(e.media_origin, e.first_seen, now),
        e.watchlists or (e.watchlist,),
        places,
    )


#: topic wire name → converter. A new topic's converter is added here
CONVERTERS: Final[Mapping[str, Converter]] = {
    "alerts": from_alert,
    "alert-updates": from_alert_update,
    "events": from_event,
    "event-updates": from_event_update,
    "camera-state": from_camera_state,
    "alarms": from_alarm,
    "alert-reviews": from_review,
    "episodes": from_episode,
}


def to_outbound(topic_name: str, payload: BaseModel, places: Places, now: float) -> OutboundEvent:
    """The outbound event of ``payload`` published on topic ``topic_name``.

    Args:
        places: camera id → where it is (group, line, every camera group it is in), from the configuration.
        now: Unix seconds, the time used where the payload has no wall time.

    Raises:
        KeyError: no converter for that topic.
    """
    event = CONVERTERS[topic_name](payload, places, now)
    place = places.get(event.camera_id) if event.camera_id else None
    return replace(event, camera_groups=place.groups) if place is not None and place.groups else event
