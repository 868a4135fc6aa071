"""The one dispatcher: subscribes to the bus topics once and offers each event to every configured channel.

Where it runs (one per host that publishes; see README "Outbound channels"):

- ``metrosight run`` and ``metrosight node``: on the host's in-process bus, next to the store's sinks (which are
  subscribed first, so an alert is stored before it is offered).
- ``metrosight serve`` with cameras: on the service's in-process bus (the supervisor publishes there).
- A Redis deployment: one consumer group, ``outbound``, read by every ``serve --bus`` and ``consume`` process
  (each entry is dispatched by one of them; an entry whose channel offers failed stays pending and is dispatched
  again, so channels are idempotent by ``event_id``).

Filters are evaluated here (each channel's :class:`~metrosight.outbound.channel.EventFilter`) and nowhere else
but inside a channel with per-destination filters, which uses the same :meth:`EventFilter.accepts`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from pydantic import BaseModel

from metrosight.bus.base import Bus
from metrosight.bus.topics import (
    ALARMS,
    ALERT_REVIEWS,
    ALERT_UPDATES,
    ALERTS,
    CAMERA_STATE,
    EPISODES,
    EVENT_UPDATES,
    EVENTS,
    Topic,
)
from metrosight.outbound.channel import Channel, ChannelError
from metrosight.outbound.events import CameraPlace, OutboundEvent, to_outbound
from metrosight.policy.scope import CameraGroups

log = logging.getLogger(__name__)

#: the topics the dispatcher subscribes to (each once); a new outbound topic is added here
OUTBOUND_TOPICS: Final[tuple[Topic[Any], ...]] = (
    ALERTS,
    ALERT_UPDATES,
    EPISODES,
    EVENTS,
    EVENT_UPDATES,
    CAMERA_STATE,
    ALARMS,
    ALERT_REVIEWS,
)
#: what the operator service itself publishes (alarm steps, reviews made through the API): a service without
#: cameras dispatches these from its own bus
SERVICE_TOPICS: Final[tuple[Topic[Any], ...]] = (ALARMS, ALERT_REVIEWS)

MAX_HELD = 10_000  # events held for a channel that refused them (in-process buses), oldest dropped beyond
RETRY_EVERY_SECONDS = 1.0  # how often held events are offered again


class Dispatcher:
    """Converts bus payloads to :class:`~metrosight.outbound.events.OutboundEvent` and offers each to every
    channel whose filter accepts it.

    Args:
        channels: the configured channels (an empty list: the dispatcher does nothing).
        places: camera id → its group and line (:meth:`places_of`).
        strict: raise :class:`~metrosight.outbound.channel.ChannelError` when a channel refused an event (a Redis
            consumer: the entry stays pending and is delivered again). Otherwise (an in-process bus, whose
            publisher is a camera loop that must not stop) the refused event is held in memory, in order, and
            offered again every :data:`RETRY_EVERY_SECONDS` and at :meth:`flush`.
        clock: Unix seconds (tests).
    """

    def __init__(
        self,
        channels: Sequence[Channel],
        places: Mapping[str, CameraPlace] | None = None,
        *,
        strict: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.channels = list(channels)
        self.places: Mapping[str, CameraPlace] = dict(places or {})
        self.strict = strict
        self.clock = clock
        self._lock = threading.Lock()
        self._held: list[tuple[Channel, OutboundEvent]] = []
        self._next_retry = 0.0
        self.offered = 0
        self.refused = 0
        self.dropped = 0

    @staticmethod
    def places_of(cameras: Iterable[Any], groups: CameraGroups) -> dict[str, CameraPlace]:
        """Camera id → place from configured cameras (objects with ``id``, ``group`` and ``line``) and the
        configuration's camera groups (every group each camera is in, as scopes resolve them); a camera without a
        group is placed in its line's group (as for alert episodes)."""
        return {c.id: CameraPlace(c.group or c.line, c.line, groups.of_camera(c.id)) for c in cameras}

    def attach(self, bus: Bus, topics: Iterable[Topic[Any]] = OUTBOUND_TOPICS) -> None:
        """Subscribe to ``topics`` on ``bus`` (once per bus: a host attaches its dispatcher once)."""
        if not self.channels:
            return
        for topic in topics:
            bus.subscribe(topic, self._handler(topic.name))

    def _handler(self, name: str) -> Callable[[BaseModel], None]:
        def handle(payload: BaseModel) -> None:
            self.dispatch(name, payload)

        return handle

    def dispatch(self, topic_name: str, payload: BaseModel) -> None:
        """Convert ``payload`` (published on ``topic_name``) and offer it (see :meth:`offer`)."""
        self.offer(to_outbound(topic_name, payload, self.places, self.clock()))

    def offer(self, event: OutboundEvent) -> None:
        """Offer ``event`` to every channel whose filter accepts it; first offer again what is held if due.

        Raises:
            ChannelError: ``strict`` and a channel refused it (every other channel was still offered it).
        """
        if self._held and time.monotonic() >= self._next_retry:
            self.flush()
        failed: list[str] = []
        for ch in self.channels:
            if not ch.filter.accepts(event):
                continue
            if not self._offer_one(ch, event):
                failed.append(ch.name)
        if failed and self.strict:
            raise ChannelError(f"event {event.event_id} refused by {', '.join(failed)}; it will be offered again")

    def _offer_one(self, ch: Channel, event: OutboundEvent) -> bool:
        try:
            ch.offer(event)
        except Exception as exc:  # noqa: BLE001 - a channel's failure must not stop a camera or the others
            self.refused += 1
            log.warning("outbound channel %s refused %s %s: %s", ch.name, event.type, event.event_id, exc)
            if not self.strict:
                self._hold(ch, event)
            return False
        self.offered += 1
        return True

    def _hold(self, ch: Channel, event: OutboundEvent) -> None:
        with self._lock:
            self._held.append((ch, event))
            if len(self._held) > MAX_HELD:
                lost = self._held.pop(0)
                self.dropped += 1
                log.error("outbound: too many held events; %s for %s dropped", lost[1].event_id, lost[0].name)
            self._next_retry = time.monotonic() + RETRY_EVERY_SECONDS

    @property
    def held(self) -> int:
        """How many (channel, event) offers are held for a later try."""
        with self._lock:
            return len(self._held)

    def flush(self) -> bool:
        """Offer again what is held, oldest first; stops at the first refusal. Returns whether nothing is held."""
        with self._lock:
            held, self._held = self._held, []
            self._next_retry = time.monotonic() + RETRY_EVERY_SECONDS
        for i, (ch, event) in enumerate(held):
            try:
                ch.offer(event)
                self.offered += 1
            except Exception as exc:  # noqa: BLE001 - still refused: keep it and the rest, in order
                log.debug("outbound channel %s still refuses %s: %s", ch.name, event.event_id, exc)
                with self._lock:
                    self._held[:0] = held[i:]
                return False
        return True

    def close(self) -> None:
        """Offer what is held once more, then close every channel."""
        if self._held:
            self.flush()
        if self._held:
            log.error("outbound: %d event offer(s) could not be handed to their channel", len(self._held))
        for ch in self.channels:
            try:
                ch.close()
            except Exception:
                log.exception("closing outbound channel %s failed", ch.name)
