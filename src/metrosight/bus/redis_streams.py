"""The Redis Streams bus: many processes on many machines, at-least-once delivery.

One stream per topic (``<prefix>:stream:<topic>``), bounded with ``MAXLEN ~`` (Redis trims whole macro-nodes, so
a stream holds at least ``maxlen`` entries). Consumers read through a consumer group (``XREADGROUP``): each entry
goes to one consumer of the group, which acknowledges it (``XACK``) only after every handler succeeded. An entry
that is never acknowledged — its consumer died, or a handler failed or asked to :class:`~metrosight.bus.base.Retry`
— stays in the group's pending list and is claimed again (``XAUTOCLAIM``) by a live consumer once it has been idle
for ``claim_idle_seconds``. Delivery is therefore at least once; handlers are idempotent (alerts and events are
stored once per ``event_id``).

An entry that cannot be decoded, or that still asks to be retried after ``give_up_seconds``, is copied to the
dead-letter stream ``<prefix>:dead`` (with the reason) and acknowledged, so one bad message never blocks a stream.

Publishing retries while Redis is unreachable (a restart): :meth:`RedisStreamsBus.publish` blocks, with backoff,
until Redis accepts the entry or ``publish_timeout`` passes (:class:`BusUnavailable`). Nothing is acknowledged to
the caller before Redis has appended it; run Redis with ``appendonly yes`` and ``appendfsync always`` (or
``everysec``, accepting up to a second of loss if the Redis host itself dies) so that a restart keeps the streams.

Sizing: ``maxlen`` must exceed the backlog the consumers may fall behind by (events/s × seconds of outage);
entries trimmed before they were consumed are lost (:meth:`RedisStreamsBus.lag` shows the backlog).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from metrosight.bus.base import PayloadError, Retry, decode, encode
from metrosight.bus.topics import P, Topic
from metrosight.core.credentials import safe_url

log = logging.getLogger(__name__)


class BusUnavailable(ConnectionError):
    """Redis did not accept a message within the publish timeout; the message names the server."""


def default_consumer_name() -> str:
    """``host-pid``: unique per process, stable for its life."""
    return f"{socket.gethostname()}-{os.getpid()}"


def connect(url: str) -> Any:
    """A Redis client for ``url`` (``redis://host:port/db``) with short timeouts (failures surface quickly)."""
    import redis  # the Redis client: an optional dependency, loaded on first use

    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=3, health_check_interval=15)


def entry_age_seconds(entry_id: bytes | str, now: float | None = None) -> float:
    """Seconds since the entry was appended (its id is ``<unix ms>-<seq>``)."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms = int(text.split("-", 1)[0])
    return (time.time() if now is None else now) - ms / 1000.0


@dataclass(frozen=True, slots=True)
class TopicLag:
    """A topic's stream: entries held, entries not yet delivered to the group, delivered but unacknowledged."""

    length: int
    undelivered: int | None
    pending: int


class RedisStreamsBus:
    """Publishes to and consumes from Redis Streams.

    Args:
        url: ``redis://host:port/db``.
        prefix: key prefix, so several installations can share a Redis server.
        maxlen: approximate bound of each stream (entries).
        group: the consumer group this process consumes in (all ``serve``/``consume`` replicas share one).
        consumer: this consumer's name in the group (default ``host-pid``).
        claim_idle_seconds: an entry pending this long on any consumer is claimed by this one.
        give_up_seconds: an entry whose handler keeps asking to retry this long after it was published goes to
            the dead-letter stream.
        publish_timeout: seconds ``publish`` keeps retrying while Redis is unreachable (None: forever).
        client: a ready ``redis.Redis`` (tests); default: connect to ``url``.
        group_start: where a consumer group created by this process starts reading: ``0`` (the default: every
            entry the stream holds) or ``$`` (only entries appended from now on).
    """

    def __init__(
        self,
        url: str,
        prefix: str = "metrosight",
        maxlen: int = 200_000,
        group: str = "store",
        consumer: str | None = None,
        claim_idle_seconds: float = 10.0,
        give_up_seconds: float = 300.0,
        publish_timeout: float | None = None,
        client: Any = None,
        group_start: str = "0",
    ) -> None:
        self.url = url
        self.group_start = group_start
        self.shown = safe_url(url)  # for logs and messages: never the password
        self.prefix = prefix
        self.maxlen = maxlen
        self.group = group
        self.consumer = consumer or default_consumer_name()
        self.claim_idle_ms = int(claim_idle_seconds * 1000)
        self.give_up_seconds = give_up_seconds
        self.publish_timeout = publish_timeout
        self.client = client if client is not None else connect(url)
        self._handlers: dict[str, list[Callable[[Any], object]]] = defaultdict(list)  # by topic name
        self._batch_handlers: dict[str, list[Callable[[list[Any]], object]]] = defaultdict(list)
        self._topics: dict[str, Topic[Any]] = {}  # the subscribed topics, by wire name
        self._groups_ready = False
        self._next_claim = 0.0
        self.delivered = 0
        self.acked = 0
        self.dead = 0
        self.retried = 0

    # -- keys -----------------------------------------------------------------------------------------------
    def stream_key(self, topic: Topic[Any] | str) -> str:
        """The stream of ``topic`` (a :class:`~metrosight.bus.topics.Topic`, or its wire name)."""
        return f"{self.prefix}:stream:{topic}"

    @property
    def dead_key(self) -> str:
        return f"{self.prefix}:dead"

    def _topic_of(self, key: bytes | str) -> str:
        k = key.decode() if isinstance(key, bytes) else key
        return k[len(self.prefix) + len(":stream:") :]

    # -- publishing -----------------------------------------------------------------------------------------
    def publish(self, topic: Topic[P], payload: P) -> None:
        """Append ``payload`` to the topic's stream; returns once Redis has it.

        Raises:
            BusUnavailable: Redis stayed unreachable for ``publish_timeout`` seconds.
            PayloadError: ``payload`` is not a bus payload type. TopicMismatch: it is not of the topic's type.
        """
        import redis  # the Redis client: an optional dependency, loaded on first use

        fields = encode(topic.check(payload))
        started = time.monotonic()
        delay = 0.05
        warned = False
        while True:
            try:
                self.client.xadd(self.stream_key(topic), fields, maxlen=self.maxlen, approximate=True)
                if warned:
                    log.warning("Redis at %s is back; published to %s", self.shown, topic)
                return
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                waited = time.monotonic() - started
                if self.publish_timeout is not None and waited >= self.publish_timeout:
                    raise BusUnavailable(
                        f"Redis at {self.shown} did not accept a {topic} message for {waited:.1f} s: {exc}"
                    ) from None
                if not warned:
                    log.warning("Redis at %s unreachable (%s); retrying the %s message", self.shown, exc, topic)
                    warned = True
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    # -- consuming ------------------------------------------------------------------------------------------
    def subscribe(self, topic: Topic[P], handler: Callable[[P], object]) -> None:
        """Call ``handler`` for each entry of ``topic`` delivered to this consumer (raise
        :class:`~metrosight.bus.base.Retry` to leave it pending)."""
        self._handlers[topic.name].append(handler)
        self._topics[topic.name] = topic
        self._groups_ready = False

    def subscribe_batch(self, topic: Topic[P], handler: Callable[[list[P]], object]) -> None:
        """Call ``handler`` once per delivered batch of ``topic`` (after the per-entry handlers) with the batch's
        payloads, e.g. to store them in one transaction. If it raises, the whole batch stays pending."""
        self._batch_handlers[topic.name].append(handler)
        self._handlers.setdefault(topic.name, [])
        self._topics[topic.name] = topic
        self._groups_ready = False

    def ensure_groups(self) -> None:
        """Create the consumer group on every subscribed topic's stream (from ``group_start``) if missing."""
        import redis  # the Redis client: an optional dependency, loaded on first use

        for topic in self._handlers:
            try:
                self.client.xgroup_create(self.stream_key(topic), self.group, id=self.group_start, mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._groups_ready = True

    def poll(self, block_ms: int = 500, count: int = 128) -> int:
        """Handle one batch: first entries idle on dead consumers (every ``claim_idle/2``), then new ones
        (waiting up to ``block_ms``). Returns how many entries were handled.

        Raises:
            redis.ConnectionError: Redis is unreachable (:meth:`run` waits and retries).
        """
        import redis  # the Redis client: an optional dependency, loaded on first use

        if not self._handlers:
            time.sleep(block_ms / 1000)
            return 0
        if not self._groups_ready:
            self.ensure_groups()
        handled = 0
        now = time.monotonic()
        try:
            if now >= self._next_claim:
                self._next_claim = now + max(0.1, self.claim_idle_ms / 2000)
                handled += self.reclaim(count)
            # alerts before their updates, events before theirs
            streams = {
                self.stream_key(t): ">" for t in sorted(self._handlers, key=lambda t: (t.endswith("updates"), t))
            }
            resp = self.client.xreadgroup(self.group, self.consumer, streams, count=count, block=block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):  # Redis lost its data (restarted without persistence): start again
                log.warning("consumer group %s missing on %s; re-creating it", self.group, self.shown)
                self._groups_ready = False
                return handled
            raise
        for key, entries in resp or []:
            handled += self._handle(key, entries)
        return handled

    def reclaim(self, count: int = 128) -> int:
        """Claim and handle entries pending for longer than ``claim_idle_seconds`` on any consumer (a dead one,
        or a retry). Returns how many were handled."""
        handled = 0
        for topic in list(self._handlers):
            key = self.stream_key(topic)
            start = "0-0"
            for _ in range(100):  # bounded: at most 100 × count entries a round
                res = self.client.xautoclaim(key, self.group, self.consumer, self.claim_idle_ms, start, count=count)
                nxt, entries = res[0], res[1]
                if entries:
                    handled += self._handle(key, entries)
                nxt = nxt.decode() if isinstance(nxt, bytes) else nxt
                if nxt == "0-0" or not entries:
                    break
                start = nxt
        return handled

    def _handle(self, key: bytes | str, entries: list[tuple[Any, Any]]) -> int:
        topic = self._topic_of(key)
        acks: list[Any] = []
        batch: list[tuple[Any, BaseModel]] = []
        for entry_id, fields in entries:
            self.delivered += 1
            if not fields:  # trimmed or deleted while pending
                acks.append(entry_id)
                continue
            try:
                payload, _sent = decode(fields)
                if topic in self._topics:
                    self._topics[topic].check(payload)
            except (PayloadError, TypeError) as exc:
                self._dead_letter(topic, entry_id, fields, f"undecodable: {exc}")
                acks.append(entry_id)
                continue
            try:
                for handler in self._handlers.get(topic, ()):
                    handler(payload)
            except Retry as exc:
                self.retried += 1
                if entry_age_seconds(entry_id) > self.give_up_seconds:
                    self._dead_letter(
                        topic, entry_id, fields, f"still not handled after {self.give_up_seconds:g} s: {exc}"
                    )
                    acks.append(entry_id)
                continue  # stays pending: claimed again after claim_idle_seconds
            except Exception:
                log.exception("handling %s entry %r failed; it stays pending and will be retried", topic, entry_id)
                continue
            batch.append((entry_id, payload))
        if batch:
            try:
                for bh in self._batch_handlers.get(topic, ()):
                    bh([p for _, p in batch])
                acks += [i for i, _ in batch]
            except Exception:
                log.exception("handling a batch of %d %s entries failed; they stay pending", len(batch), topic)
        if acks:
            self.client.xack(key, self.group, *acks)
            self.acked += len(acks)
        return len(entries)

    def _dead_letter(self, topic: str, entry_id: Any, fields: Any, reason: str) -> None:
        self.dead += 1
        log.error("%s entry %r moved to %s: %s", topic, entry_id, self.dead_key, reason)
        body = {(k.decode() if isinstance(k, bytes) else k): v for k, v in dict(fields).items()}
        body.update({"dead:topic": topic, "dead:id": entry_id, "dead:reason": reason})
        self.client.xadd(self.dead_key, body, maxlen=10_000, approximate=True)

    def run(self, stop: threading.Event, block_ms: int = 500) -> None:
        """Consume until ``stop`` is set; waits and retries (with backoff) while Redis is unreachable."""
        import redis  # the Redis client: an optional dependency, loaded on first use

        delay = 0.1
        down_since: float | None = None
        while not stop.is_set():
            try:
                self.poll(block_ms=block_ms)
                if down_since is not None:
                    log.warning("Redis at %s is back after %.1f s", self.shown, time.monotonic() - down_since)
                    down_since = None
                delay = 0.1
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if down_since is None:
                    down_since = time.monotonic()
                    log.warning("Redis at %s unreachable (%s); retrying", self.shown, exc)
                self._groups_ready = False
                stop.wait(delay)
                delay = min(delay * 2, 2.0)

    # -- observation ----------------------------------------------------------------------------------------
    def lag(self) -> dict[Topic[Any], TopicLag]:
        """Per subscribed topic: stream length, entries not yet delivered to the group, pending entries."""
        out: dict[Topic[Any], TopicLag] = {}
        for name in self._handlers:
            topic = self._topics[name]
            key = self.stream_key(topic)
            length = int(self.client.xlen(key))
            if not self.client.exists(key):  # nothing published yet and no group created
                out[topic] = TopicLag(0, None, 0)
                continue
            groups = {
                g["name"].decode() if isinstance(g["name"], bytes) else g["name"]: g
                for g in self.client.xinfo_groups(key)
            }
            g = groups.get(self.group)
            lag = g.get("lag") if g else length  # no group yet: nothing was delivered
            out[topic] = TopicLag(length, int(lag) if lag is not None else None, int(g["pending"]) if g else 0)
        return out

    def close(self) -> None:
        self.client.close()
