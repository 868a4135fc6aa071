"""The store consumer: alerts and behaviour events from the Redis bus into the database (PostgreSQL at scale).

``metrosight consume`` runs it alone; ``metrosight serve --bus redis://…`` runs it next to the API (a startup hook,
see :func:`startup_hook`). Any number of consumers share the consumer group ``store``: each entry is stored by one
of them, and an entry whose consumer died is claimed by another (see :mod:`metrosight.bus.redis_streams`).

Storing is idempotent, so at-least-once delivery stores everything exactly once: an alert or event is stored once
per ``event_id`` (a second delivery, or the same alert re-raised by a worker that resumed a camera, is a no-op);
an update that arrives before its alert or event is left pending and retried (:class:`~metrosight.bus.base.Retry`).
Alerts are stored through the same :class:`~metrosight.services.sinks.AlertSink` as ``metrosight run``: the
redacted crop is encrypted under its watchlist's key into this process's media folder (shared storage when several
consumers run), then the row and its audit entry are written in one transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from metrosight.bus.base import (
    TOPIC_ALERT_UPDATES,
    TOPIC_ALERTS,
    TOPIC_CAMERA_STATE,
    TOPIC_EVENT_UPDATES,
    TOPIC_EVENTS,
    Retry,
)
from metrosight.bus.inproc import InProcessBus
from metrosight.bus.payloads import AlertUpdateV1, AlertV1, CameraStateV1, EventUpdateV1, EventV1
from metrosight.bus.redis_streams import RedisStreamsBus
from metrosight.bus.topics import EPISODES
from metrosight.core.credentials import safe_url
from metrosight.outbound.hosts import start_redis
from metrosight.policy.rules import aware, in_scope
from metrosight.services.live_policy import PolicySource
from metrosight.services.sinks import AlertSink, EventSink
from metrosight.services.suite import Services
from metrosight.store.repo import Store

log = logging.getLogger(__name__)

GROUP = "store"


class StoreConsumer:
    """Subscribes ``bus`` (a consumer in group ``store``) to the store.

    Args:
        store: the :class:`~metrosight.store.repo.Store`.
        media: where alert crops and event snapshots are written (encrypted crops; redacted snapshots).
        bus: the Redis bus to consume.
        on_alert: called with each alert delivered and whether it was new (not a duplicate).
        on_state: called with camera state changes (e.g. the API's camera board).
    """

    def __init__(
        self,
        store: Store,
        media: Path,
        bus: RedisStreamsBus,
        on_alert: Callable[[AlertV1, bool], None] | None = None,
        on_state: Callable[[CameraStateV1], None] | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.on_alert = on_alert
        self.on_state = on_state
        self.alerts = AlertSink(store, media, None, lambda e: bus.publish(EPISODES, e))  # read by group outbound
        self.event_sink = EventSink(store, media, None)
        self.stored_alerts = 0
        self.duplicate_alerts = 0
        self.stored_events = 0
        bus.subscribe(TOPIC_ALERTS, self._alert)
        bus.subscribe(TOPIC_ALERT_UPDATES, self._alert_update)
        bus.subscribe_batch(TOPIC_EVENTS, self._events)
        bus.subscribe(TOPIC_EVENT_UPDATES, self._event_update)
        bus.subscribe(TOPIC_CAMERA_STATE, self._state)

    def _alert(self, a: AlertV1) -> None:
        new = not self.store.alerts.has(a.event_id)
        if new:
            self.alerts.on_alert(a)  # crop, then row + audit entry; idempotent on event_id
            self.stored_alerts += 1
        else:
            self.duplicate_alerts += 1
            log.info("alert %s already stored (redelivery or a resumed camera)", a.event_id)
        if self.on_alert is not None:
            self.on_alert(a, new)

    def _alert_update(self, u: AlertUpdateV1) -> None:
        if not self.store.alerts.has(u.event_id):
            raise Retry(f"alert {u.event_id} is not stored yet")
        self.store.alerts.extend(u.event_id, u.last_seen)

    def _events(self, batch: list[EventV1]) -> None:
        """A delivered batch of events in one transaction (snapshots, if any, written first)."""
        rows = []
        for e in batch:
            try:
                path = self.event_sink.write_snapshot(e)
            except OSError as exc:
                log.error(
                    "cannot write the snapshot of event %s (%s); storing the event without it",
                    e.event_id,
                    exc,
                )
                path = None
            rows.append(
                {
                    "event_id": e.event_id,
                    "camera_id": e.camera_id,
                    "kind": e.kind,
                    "start_ts": e.start_ts,
                    "end_ts": e.end_ts,
                    "track_id": e.track_id,
                    "data": dict(e.data),
                    "snapshot_path": path,
                    "run_id": e.run_id,
                }
            )
        self.stored_events += self.store.events.save_many(rows)

    def _event_update(self, u: EventUpdateV1) -> None:
        if not self.store.events.end(u.event_id, u.end_ts, dict(u.data)):
            raise Retry(f"event {u.event_id} is not stored yet")

    def _state(self, s: CameraStateV1) -> None:
        log.info("camera %s: %s (%s)", s.camera_id, s.state, s.reason)
        if self.on_state is not None:
            self.on_state(s)

    def run(self, stop: threading.Event, mirror: bool = True) -> None:
        """Consume until ``stop`` is set (waits out Redis restarts); with ``mirror``, also run a
        :class:`PolicyMirror` for the workers."""
        t = None
        if mirror:
            pm = PolicyMirror(self.store, self.bus.client, self.bus.prefix)
            t = threading.Thread(target=pm.run, args=(stop,), name="policy-mirror", daemon=True)
            t.start()
        self.bus.run(stop)
        if t is not None:
            t.join(2)

    def start(self) -> Callable[[], None]:
        """Consume in a background thread; returns the function that stops it."""
        stop = threading.Event()
        t = threading.Thread(target=self.run, args=(stop,), name="store-consumer", daemon=True)
        t.start()

        def halt() -> None:
            stop.set()
            t.join(5)

        return halt


def gallery_version_key(prefix: str) -> str:
    """The Redis key that mirrors the store's gallery version (see :class:`PolicyMirror`)."""
    return f"{prefix}:gallery-version"


class PolicyMirror:
    """Mirrors the store's gallery version into Redis for the workers, and retires expired entries.

    Every ``every`` seconds it runs the store's expiry (entries past their expiry: status expired, templates
    destroyed, version bumped) and copies ``gallery_version`` to ``<prefix>:gallery-version`` with a short expiry
    (``ttl``), publishing ``<prefix>:watchlist-changed`` when it changed. Workers then poll Redis, not the
    database, for changes — one database read per mirror instead of three per camera — and fall back to the
    database when the key is missing (no mirror running). Any number of mirrors may run (one per consumer).
    """

    def __init__(
        self, store: Store, client: Any, prefix: str = "metrosight", every: float = 0.2, ttl: float = 3.0
    ) -> None:
        self.store = store
        self.client = client
        self.key = gallery_version_key(prefix)
        self.channel = f"{prefix}:watchlist-changed"
        self.every = every
        self.ttl_ms = int(ttl * 1000)
        self._last: int | None = None

    def tick(self) -> int:
        """One round; returns the version mirrored."""
        self.store.policy.expire_due()
        version = int(self.store.policy.version())
        self.client.set(self.key, version, px=self.ttl_ms)
        if version != self._last:
            self.client.publish(self.channel, version)
            self._last = version
        return version

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - Redis or the database down: workers fall back or wait
                log.warning("policy mirror: %s", exc)
            stop.wait(self.every)


def make_bus(
    url: str, consumer: str | None = None, claim_idle_seconds: float = 10.0, prefix: str = "metrosight"
) -> RedisStreamsBus:
    """The consumer's bus: group ``store`` on ``url``."""
    return RedisStreamsBus(url, prefix=prefix, group=GROUP, consumer=consumer, claim_idle_seconds=claim_idle_seconds)


class HookState(Protocol):
    """What a startup hook is given by the API app (:class:`metrosight.api.state.AppState`): its services and its
    in-process bus (the live feed listens there; None: no live feed)."""

    @property
    def services(self) -> Services: ...

    @property
    def bus(self) -> InProcessBus | None: ...


def startup_hook(bus_url: str, prefix: str = "metrosight") -> Callable[[HookState], Callable[[], None]]:
    """A startup hook for the API app (``create_app(startup=[...])``): consumes ``bus_url`` into the app's store
    (group ``store``), wakes the live views, and dispatches to the outbound channels (group ``outbound``, see
    :func:`metrosight.outbound.hosts.start_redis`). Returns the stop function at shutdown."""

    def hook(state: HookState) -> Callable[[], None]:
        rt = state.services
        local_bus = state.bus

        def on_alert(a: AlertV1, new: bool) -> None:
            if new and local_bus is not None:
                local_bus.publish(TOPIC_ALERTS, a)  # the API's live feed listens on its in-process bus

        def on_state(s: CameraStateV1) -> None:
            if local_bus is not None:
                local_bus.publish(TOPIC_CAMERA_STATE, s)

        consumer = StoreConsumer(rt.store, rt.home.media, make_bus(bus_url, prefix=prefix), on_alert, on_state)
        log.warning("consuming %s into the store", safe_url(bus_url))
        halt_store = consumer.start()
        halt_outbound = start_redis(rt, bus_url, prefix)  # the outbound channels: group "outbound"

        def halt() -> None:
            halt_outbound()
            halt_store()

        return halt

    return hook


class KeyReader(Protocol):
    """The part of a Redis client the shared policy reads use."""

    def get(self, name: str) -> Any:
        """The value at key ``name`` (bytes), None when absent."""
        ...


class WindowRows(Protocol):
    """The no-identification windows (:meth:`metrosight.store.windows.WindowRepository.all`)."""

    def all(self) -> Sequence[Window]:
        """The windows not removed."""
        ...


class Window(Protocol):
    """One no-identification window: when (aware or naive UTC) and where (``{"cameras": [...], "lines": [...]}``)."""

    @property
    def starts_at(self) -> datetime: ...

    @property
    def ends_at(self) -> datetime: ...

    @property
    def scope(self) -> dict | None: ...


class SharedPolicyReads:
    """A worker's cameras' policy reads (a :class:`~metrosight.services.live_policy.PolicySource`, given to
    :meth:`metrosight.services.suite.Services.with_policy`) served from Redis and a per-process cache instead of the
    database:

    - ``version``: the mirrored version in Redis (:class:`~metrosight.pipeline.consumer.PolicyMirror`),
      read at most every ``ttl`` seconds; the database's (``policy``) when no mirror runs (the key expired).
    - ``expire_due``: done by the mirror (0 here); by this process when no mirror runs.
    - ``allows``: evaluated against the no-identification windows (``windows``), re-read from the database only
      when the gallery version changed (adding or removing a window bumps it).

    Args:
        policy: the store's policy reads (``store.policy``). windows: the store's windows (``store.windows``).
        client: the Redis client. prefix: the deployment's key prefix. ttl: seconds a read version is reused.
    """

    def __init__(self, policy: PolicySource, windows: WindowRows, client: KeyReader, prefix: str, ttl: float) -> None:
        self._policy = policy
        self._window_rows = windows
        self._client = client
        self._key = gallery_version_key(prefix)
        self._ttl = ttl
        self._version: tuple[float, int, bool] | None = None  # (checked at, version, mirrored)
        self._windows: tuple[int, list[Window]] | None = None

    def _current(self) -> tuple[int, bool]:
        now = time.monotonic()
        if self._version is not None and now - self._version[0] < self._ttl:
            return self._version[1], self._version[2]
        raw = None
        try:
            raw = self._client.get(self._key)
        except Exception as exc:  # noqa: BLE001 - Redis down: the database answers
            log.debug("gallery version from Redis: %s", exc)
        if raw is not None:
            version, mirrored = int(raw), True
        else:
            version, mirrored = int(self._policy.version()), False
        self._version = (now, version, mirrored)
        return version, mirrored

    def version(self) -> int:
        """The gallery version (mirrored in Redis; the database's without a mirror)."""
        return self._current()[0]

    def expire_due(self, now: datetime | None = None) -> int:
        """0 while a mirror runs (it retires expired entries); else retire them here; how many."""
        if now is None and self._current()[1]:
            return 0  # the mirror retires expired entries and bumps the version
        return int(self._policy.expire_due(now))

    def allows(self, camera_id: str | None, line: str | None, now: datetime | None = None) -> bool:
        """False while a no-identification window covers this camera (or line)."""
        version = self._current()[0]
        if self._windows is None or self._windows[0] != version:
            self._windows = (version, list(self._window_rows.all()))
        now = now or datetime.now(UTC)
        for w in self._windows[1]:
            starts, ends = aware(w.starts_at), aware(w.ends_at)
            if starts is not None and ends is not None and starts <= now < ends and in_scope(w.scope, camera_id, line):
                return False
        return True
