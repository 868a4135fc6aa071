"""The channel protocol and the one filter every channel's events pass through.

A channel (webhooks, MQTT, syslog, …) receives :class:`~metrosight.outbound.events.OutboundEvent` values from the
:class:`~metrosight.outbound.dispatch.Dispatcher`. Which events it receives is decided by an :class:`EventFilter`,
evaluated only in :meth:`EventFilter.accepts` (the dispatcher applies the channel's; the webhook channel applies
each subscription's with the same method).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from metrosight.core.names import same_identifier
from metrosight.outbound.events import EVENT_TYPES, EventType, OutboundEvent


class ChannelError(RuntimeError):
    """A channel could not accept an event (its queue or transport is unavailable); the message says why."""


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events pass: each non-empty set restricts, an empty one lets everything through.

    - ``types``: the event's type must be one of them.
    - ``watchlists`` / ``categories``: an event that names people (it carries watchlists: alerts, reviews,
      episodes, alarms about a person) passes only when one of its watchlists, or its category, is listed. Events
      that name nobody (behaviour events, camera states, crowd alarms) are not restricted by these two.
    - ``camera_groups``: one of the groups the event's camera is in must be listed (an event of no camera group does
      not pass). A camera is in its ``line``, its ``group`` and every named ``camera_groups`` entry containing it,
      resolved as scopes resolve them (:meth:`~metrosight.policy.scope.CameraGroups.of_camera`, carried by the
      event as :attr:`~metrosight.outbound.events.OutboundEvent.groups`): ``-g red`` matches every camera of line
      red, whatever its station group.

    Names are compared as everywhere else (:func:`~metrosight.core.names.same_identifier`: up to case, Unicode form
    and look-alike letters), so ``Wanted-2026`` and ``Hall-A`` name the list ``wanted-2026`` and the group
    ``hall-a``.
    """

    types: frozenset[EventType] = frozenset()
    watchlists: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    camera_groups: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        types: Iterable[str] = (),
        watchlists: Iterable[str] = (),
        categories: Iterable[str] = (),
        camera_groups: Iterable[str] = (),
    ) -> EventFilter:
        """A filter from plain lists.

        Raises:
            ValueError: an unknown event type (the message lists the known ones).
        """
        ts = frozenset(types)
        unknown = sorted(ts - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event type(s) {', '.join(unknown)} (known: {', '.join(EVENT_TYPES)})")
        return cls(
            frozenset(t for t in EVENT_TYPES if t in ts),
            frozenset(watchlists),
            frozenset(categories),
            frozenset(camera_groups),
        )

    def accepts(self, event: OutboundEvent) -> bool:
        """Whether ``event`` passes (see the class docstring)."""
        if self.types and event.type not in self.types:
            return False
        if event.watchlists or event.type in PERSON_EVENTS:  # about a person, even if its lists are unknown
            if self.watchlists and not any(_named(self.watchlists, w) for w in event.watchlists):
                return False
            if self.categories and not _named(self.categories, event.category):
                return False
        return not self.camera_groups or any(_named(self.camera_groups, g) for g in event.groups)


def _named(names: frozenset[str], name: str | None) -> bool:
    """Whether ``name`` is one of ``names`` as metrosight compares names everywhere (scopes, alert policies,
    ``--camera``): equal, or the same up to case, Unicode form and look-alike letters (a configuration and the
    store never hold two that look alike)."""
    return name is not None and (name in names or any(same_identifier(n, name) for n in names))


#: event types that are always about a person (restricted by watchlist and category filters even when an event
#: of an older publisher does not name its lists)
PERSON_EVENTS: frozenset[str] = frozenset({"alert", "alert_review", "episode"})

#: lets every event through
ALL_EVENTS = EventFilter()


@runtime_checkable
class Channel(Protocol):
    """An outbound channel.

    ``name`` names it in logs and metrics (e.g. ``webhooks``, ``mqtt``). ``filter`` is applied by the dispatcher
    before :meth:`offer` (a channel with per-destination filters, like webhooks, uses :data:`ALL_EVENTS` and
    applies each destination's :class:`EventFilter` itself).

    :meth:`offer` accepts one event and returns quickly: once it is durably queued (webhooks: outbox rows) or
    handed to the transport (MQTT QoS 1: queued in the client). It may be called again with the same event (the
    Redis bus delivers at least once; the dispatcher retries a failed offer), so it must be idempotent by
    ``event.event_id``. It raises (any exception; :class:`ChannelError` preferred) when it could not accept it:
    the dispatcher retries it later and, on a Redis bus, leaves the message unacknowledged.

    :meth:`close` releases the channel's resources (connections, threads); called once at shutdown.
    """

    @property
    def name(self) -> str: ...

    @property
    def filter(self) -> EventFilter: ...

    def offer(self, event: OutboundEvent) -> None: ...

    def close(self) -> None: ...
