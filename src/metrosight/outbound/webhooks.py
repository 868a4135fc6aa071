"""The webhook channel: each event that passes a subscription's filter goes into the durable outbox, once per
subscription; the :class:`~metrosight.outbound.delivery.DeliveryWorker` delivers it.

:func:`add_subscription` is the one way a subscription is made (CLI and API): the event types are checked here,
everything else by the store (:class:`~metrosight.store.webhooks.WebhookRepository`).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from metrosight.config.webhooks import WebhooksConfig
from metrosight.core.names import InvalidInput
from metrosight.outbound.channel import ALL_EVENTS, EventFilter
from metrosight.outbound.delivery import DeliveryWorker, make_client, post
from metrosight.outbound.events import EVENT_TYPES, OutboundEvent
from metrosight.policy.rules import Actor
from metrosight.store.outbox import Claimed, Outbox, Outcome, Target, idempotency_key
from metrosight.store.webhooks import SubscriptionInfo, WebhookRepository

TARGETS_TTL_SECONDS = 1.0  # a new, paused or removed subscription takes effect within this long


def add_subscription(
    repo: WebhookRepository,
    actor: Actor,
    name: str,
    url: str,
    event_types: Sequence[str] = (),
    watchlists: Sequence[str] = (),
    categories: Sequence[str] = (),
    camera_groups: Sequence[str] = (),
) -> tuple[SubscriptionInfo, str]:
    """A new subscription (every event type when ``event_types`` is empty). Returns ``(info, secret)``; the secret
    is shown once.

    Raises:
        InvalidInput: an unknown event type, a bad name or URL. Forbidden: not an admin.
    """
    try:
        flt = EventFilter.of(event_types or EVENT_TYPES, watchlists, categories, camera_groups)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    return repo.create(actor, name, url, sorted(flt.types), watchlists, categories, camera_groups)


def ping(repo: WebhookRepository, actor: Actor, sub_id: int, cfg: WebhooksConfig) -> Outcome:
    """Send subscription ``sub_id`` a signed test request now (type ``ping``, schema ``metrosight.ping/1``; not
    queued, not retried) and say how it went. Audited.

    Raises:
        Forbidden: not an admin. NotFound: no such subscription.
    """
    url, secret = repo.secrets_for_test(actor, sub_id)
    now = time.time()
    event_id = f"ping:{secrets.token_hex(8)}"
    body = json.dumps(
        {
            "id": event_id,
            "type": "ping",
            "schema": "metrosight.ping/1",
            "occurred_at": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
            "data": {"webhook": sub_id, "by": actor.name},
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    test = Claimed(0, sub_id, "", url, secret, body, idempotency_key(sub_id, event_id), "ping", 1, datetime.now(UTC))
    with make_client(cfg) as client:
        return post(client, test, cfg, now)


def body_of(event: OutboundEvent) -> str:
    """The exact JSON a receiver gets (and the signature covers): the event's envelope, keys sorted, UTF-8."""
    return json.dumps(event.envelope(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def target_filter(t: Target) -> EventFilter:
    """A stored subscription's filter (an event type this version does not know is ignored)."""
    return EventFilter(
        frozenset(x for x in EVENT_TYPES if x in t.event_types),
        frozenset(t.watchlists),
        frozenset(t.categories),
        frozenset(t.camera_groups),
    )


class WebhookChannel:
    """The ``webhooks`` channel: :meth:`offer` queues the event for every matching subscription (idempotent by
    event id); its :class:`~metrosight.outbound.delivery.DeliveryWorker` runs while the channel is open.

    Args:
        outbox: the store's outbox.
        cfg: the ``webhooks`` settings.
        worker: the delivery worker (started here); None: deliveries are left for another process.
        drain_seconds: at :meth:`close`, how long the worker keeps delivering what is pending (``metrosight run``:
            ``outbound.webhooks.drain_seconds``; long-running hosts: 0, what is left waits in the outbox).
    """

    name = "webhooks"
    filter = ALL_EVENTS  # each subscription's filter is applied in offer()

    def __init__(
        self, outbox: Outbox, cfg: WebhooksConfig, worker: DeliveryWorker | None = None, drain_seconds: float = 0.0
    ) -> None:
        self.outbox = outbox
        self.drain_seconds = drain_seconds
        self.cfg = cfg
        self.worker = worker.start() if worker is not None else None
        self._lock = threading.Lock()
        self._targets: tuple[float, list[tuple[int, EventFilter]]] | None = None
        self.queued = 0
        self._mine: set[str] = set()  # event ids this channel queued (drained at close)

    def _current(self) -> list[tuple[int, EventFilter]]:
        with self._lock:
            now = time.monotonic()
            if self._targets is None or now - self._targets[0] > TARGETS_TTL_SECONDS:
                self._targets = (now, [(t.id, target_filter(t)) for t in self.outbox.targets()])
            return self._targets[1]

    def offer(self, event: OutboundEvent) -> None:
        """Queue ``event`` for every enabled subscription whose filter accepts it.

        Raises:
            StoreError: the outbox cannot be written (the dispatcher offers it again later).
        """
        ids = [sub_id for sub_id, flt in self._current() if flt.accepts(event)]
        if not ids:
            return
        give_up = timedelta(hours=self.cfg.give_up_hours)
        self.queued += self.outbox.enqueue(event.event_id, event.type, body_of(event), ids, give_up)
        if self.drain_seconds > 0:
            with self._lock:
                self._mine.add(event.event_id)
        if self.worker is not None:
            self.worker.wake()

    def close(self) -> None:
        """Stop the delivery worker after up to ``drain_seconds`` of delivering what this channel queued."""
        if self.worker is not None:
            with self._lock:
                mine = set(self._mine)
            self.worker.stop(self.drain_seconds, mine)
