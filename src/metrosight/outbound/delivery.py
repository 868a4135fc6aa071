"""The webhook delivery worker: claims due outbox rows, POSTs them, records each attempt, schedules retries.

Each attempt is one ``POST`` of the stored JSON body with the signed headers (:mod:`metrosight.outbound.signing`).
It is bounded and hostile-receiver safe (settings under ``outbound.webhooks``): connect, send and each read time out
after ``timeout_seconds``; redirects are not followed (a 3xx is a failure: the subscription's URL should be
changed); at most ``max_response_bytes`` of the response are read, undecoded (a huge or compressed answer costs
nothing); a 2xx is success, anything else (or no answer) a failure.

A failure is retried after an exponential backoff with jitter (tenacity's ``wait_exponential`` plus
``wait_random``: ``initial × 2^(n−1)`` plus up to ``jitter`` seconds, at most ``backoff_max_seconds``: see
:class:`Backoff`), the schedule being kept in
the outbox row (a restart resumes it). A delivery still failing ``give_up_hours`` after it was queued is marked
dead (an admin may retry it). Several workers — threads of one process and processes on many hosts — share the
outbox safely: see :mod:`metrosight.store.outbox`. A claim's lease (:func:`lease_for`) outlasts an attempt.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Protocol

import httpx
import tenacity

from metrosight.config.webhooks import WebhooksConfig
from metrosight.outbound import signing
from metrosight.store.outbox import Claimed, Outcome
from metrosight.store.webhooks import shown_url

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 3600.0
USER_AGENT = "metrosight-webhooks/1"


class OutboxLike(Protocol):
    """The outbox as the worker uses it (:class:`metrosight.store.outbox.Outbox`)."""

    def claim(self, limit: int, lease: timedelta, now: datetime | None = None) -> list[Claimed]: ...

    def finish(self, c: Claimed, outcome: Outcome, retry_at: datetime | None, now: datetime | None = None) -> str: ...

    def pending(self, event_ids: Collection[str] | None = None) -> int: ...

    def purge(self, before: datetime) -> int: ...


class Backoff:
    """The wait before attempt ``n + 1`` after ``n`` failed ones (seconds), from tenacity's strategies:
    ``initial × 2^(n−1)`` (at most ``maximum − jitter``) plus a uniform ``0…jitter``, so waits never exceed
    ``maximum`` and stay spread out even at the cap."""

    def __init__(self, initial: float, maximum: float, jitter: float) -> None:
        jitter = min(jitter, maximum / 2)
        self._wait = tenacity.wait_exponential(multiplier=initial, max=maximum - jitter) + tenacity.wait_random(
            0, jitter
        )

    @classmethod
    def of(cls, cfg: WebhooksConfig) -> Backoff:
        return cls(cfg.backoff_initial_seconds, cfg.backoff_max_seconds, cfg.jitter_seconds)

    def seconds(self, failed_attempts: int) -> float:
        state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
        state.attempt_number = max(1, failed_attempts)
        return float(self._wait(state))


def lease_for(cfg: WebhooksConfig) -> timedelta:
    """How long a claim holds a row: longer than one attempt can take (:func:`total_seconds`, enforced by
    :func:`post`'s watchdog), with a margin for settling it."""
    return timedelta(seconds=4 * cfg.timeout_seconds + 30)


def _excerpt(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    return "".join(c if c.isprintable() or c in "\n\t" else "?" for c in text)


def total_seconds(cfg: WebhooksConfig) -> float:
    """The longest one attempt may take, end to end: connect, send and read, each ``timeout_seconds``. A receiver
    that answers a byte at a time (each read within the timeout) is cut off here."""
    return 3 * cfg.timeout_seconds


def post(client: httpx.Client, c: Claimed, cfg: WebhooksConfig, now: float | None = None) -> Outcome:
    """One attempt of delivery ``c`` (see the module docstring). Never raises for what the receiver does. At
    :func:`total_seconds` a watchdog closes ``client`` (use a client per attempt), which ends the attempt wherever
    it is, so an attempt never outlives its claim's lease (:func:`lease_for`)."""
    body = c.body.encode()
    ts = int(time.time() if now is None else now)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        signing.IDEMPOTENCY_HEADER: c.idempotency_key,
        signing.EVENT_HEADER: c.event_type,
        signing.DELIVERY_HEADER: str(c.id),
        signing.ATTEMPT_HEADER: str(c.attempt),
        **signing.signed_headers(c.secret, body, ts),
    }
    started = time.perf_counter()
    watchdog = threading.Timer(total_seconds(cfg), client.close)
    watchdog.daemon = True
    watchdog.start()
    try:
        with client.stream("POST", c.url, content=body, headers=headers) as r:
            got = bytearray()
            for chunk in r.iter_raw():  # undecoded: a compressed answer is never inflated
                got += chunk[: cfg.max_response_bytes - len(got)]
                if len(got) >= cfg.max_response_bytes:
                    break
            latency = (time.perf_counter() - started) * 1000
            error = None
            if 300 <= r.status_code < 400:
                error = f"redirect ({r.status_code}) not followed: change the webhook's URL"
            elif not 200 <= r.status_code < 300:
                error = f"HTTP {r.status_code}"
            return Outcome(r.status_code, latency, error, _excerpt(bytes(got)) or None)
    except httpx.TimeoutException as exc:
        kind = type(exc).__name__.replace("Timeout", "").lower() or "request"
        msg = f"timed out ({kind}) after {cfg.timeout_seconds:g} s"
    except Exception as exc:  # noqa: BLE001 - whatever the receiver or the watchdog caused: a failed attempt
        if not watchdog.is_alive():
            msg = f"cut off after {total_seconds(cfg):g} s (the receiver answered too slowly)"
        else:
            msg = f"{type(exc).__name__}: {exc}".replace(c.url, shown_url(c.url))
    finally:
        watchdog.cancel()
    return Outcome(None, (time.perf_counter() - started) * 1000, msg)


class DeliveryWorker:
    """Threads that deliver what the outbox holds (see the module docstring).

    Args:
        outbox: the store's outbox.
        cfg: the ``webhooks`` settings.
        client: makes the HTTP client of one thread (tests may point it elsewhere); default: :func:`make_client`.
        clock: Unix seconds.
    """

    def __init__(
        self,
        outbox: OutboxLike,
        cfg: WebhooksConfig,
        client: Callable[[WebhooksConfig], httpx.Client] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox = outbox
        self.cfg = cfg
        self.backoff = Backoff.of(cfg)
        self.lease = lease_for(cfg)
        self.make_client = client or make_client
        self.clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next_purge = 0.0
        self._lock = threading.Lock()
        self.delivered = 0
        self.failed = 0
        self.dead = 0

    def start(self) -> DeliveryWorker:
        """Start ``cfg.workers`` threads (once)."""
        if not self._threads:
            for i in range(self.cfg.workers):
                t = threading.Thread(target=self._loop, name=f"webhook-delivery-{i}", daemon=True)
                t.start()
                self._threads.append(t)
        return self

    def wake(self) -> None:
        """Something was queued: look now instead of at the next poll."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                n = self.run_once()
            except Exception as exc:  # noqa: BLE001 - the database is away: wait and try again
                log.warning("webhook delivery: %s", exc)
                n = 0
            if n == 0:
                self._wake.wait(self.cfg.poll_seconds)
                self._wake.clear()

    def run_once(self, client: httpx.Client | None = None, limit: int = 1) -> int:
        """Claim up to ``limit`` due deliveries and attempt each once (with ``client``, else a fresh client per
        attempt). Returns how many were attempted.

        Raises:
            StoreError: the outbox cannot be read or written.
        """
        self._maybe_purge()
        claimed = self.outbox.claim(limit, self.lease, datetime.fromtimestamp(self.clock(), UTC))
        for c in claimed:
            if client is not None:
                self.attempt(client, c)
                continue
            with self.make_client(self.cfg) as fresh:  # one client per attempt: the watchdog may close it
                self.attempt(fresh, c)
        return len(claimed)

    def attempt(self, client: httpx.Client, c: Claimed) -> str:
        """POST ``c`` once and settle it. Returns the row's new state (``stale``: the claim had been lost)."""
        outcome = post(client, c, self.cfg, self.clock())
        now = datetime.fromtimestamp(self.clock(), UTC)
        retry_at = None if outcome.delivered else now + timedelta(seconds=self.backoff.seconds(c.attempt))
        state = self.outbox.finish(c, outcome, retry_at, now)
        with self._lock:
            if state == "delivered":
                self.delivered += 1
            elif state in ("pending", "dead"):
                self.failed += 1
                self.dead += state == "dead"
        if state == "dead":
            log.error(
                "webhook delivery %d to %s is dead after %d attempts: %s",
                c.id,
                shown_url(c.url),
                c.attempt,
                outcome.error,
            )
        elif state == "pending":
            log.info(
                "webhook delivery %d to %s failed (%s); attempt %d in %.1f s",
                c.id,
                shown_url(c.url),
                outcome.error,
                c.attempt + 1,
                (retry_at - now).total_seconds() if retry_at else 0.0,
            )
        return state

    def _maybe_purge(self) -> None:
        mono = time.monotonic()
        if mono < self._next_purge:
            return
        self._next_purge = mono + PURGE_EVERY_SECONDS
        before = datetime.fromtimestamp(self.clock(), UTC) - timedelta(days=self.cfg.keep_days)
        try:
            n = self.outbox.purge(before)
            if n:
                log.info("webhook outbox: %d delivered row(s) older than %d days purged", n, self.cfg.keep_days)
        except Exception as exc:  # noqa: BLE001 - housekeeping: next time
            log.warning("webhook outbox purge: %s", exc)

    def stop(self, drain_seconds: float = 0.0, event_ids: Collection[str] | None = None) -> int:
        """Stop the threads; first, for up to ``drain_seconds``, keep delivering while anything (of
        ``event_ids``, when given: what this process queued) is pending. Returns how many are still pending
        (they stay in the outbox for the next process)."""
        deadline = time.monotonic() + drain_seconds
        left = self._pending(event_ids) if drain_seconds > 0 else 0
        if left:
            log.warning("delivering %d queued webhook(s) for up to %.0f s before stopping", left, drain_seconds)
        while left and time.monotonic() < deadline and self._threads:
            self._wake.set()
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
            left = self._pending(event_ids)
        if left:
            log.warning("%d webhook delivery(ies) still pending: the next running host delivers them", left)
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(lease_for(self.cfg).total_seconds())
        self._threads = []
        return left

    def _pending(self, event_ids: Collection[str] | None = None) -> int:
        try:
            return self.outbox.pending(event_ids)
        except Exception:  # noqa: BLE001 - the database is away: nothing more can be done here
            return 0


def redact_httpx(record: logging.LogRecord) -> bool:
    """A filter of the ``httpx`` logger: its request lines (``HTTP Request: POST <url> …``, at INFO) show the URL
    without credentials (:func:`~metrosight.store.webhooks.shown_url`); nothing is dropped."""
    if isinstance(record.args, tuple) and record.args:
        record.args = tuple(
            shown_url(str(a)) if isinstance(a, httpx.URL) or (isinstance(a, str) and "://" in a) else a
            for a in record.args
        )
    if isinstance(record.msg, str) and "://" in record.msg:
        record.msg = shown_url(record.msg) if record.msg.count("://") == 1 and " " not in record.msg else record.msg
    return True


def make_client(cfg: WebhooksConfig) -> httpx.Client:
    """The HTTP client of one delivery thread: no redirects, bounded timeouts, no cookies kept between receivers;
    httpx's own log lines never show a URL's credentials (:func:`redact_httpx`)."""
    logging.getLogger("httpx").addFilter(redact_httpx)  # once: the logger keeps one copy of a filter
    return httpx.Client(
        follow_redirects=False,
        timeout=httpx.Timeout(cfg.timeout_seconds),
        limits=httpx.Limits(max_connections=8, max_keepalive_connections=4),
    )
