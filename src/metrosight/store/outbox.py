"""The webhook outbox (``store.outbox``): durable queue and state machine of deliveries, for the delivery workers.

One row per (subscription, event), inserted once (a second offer of the same event is a no-op), so nothing is
lost while a receiver is down or the process restarts, and nothing is queued twice. States and moves::

    pending ──claim──▶ delivering ──2xx──▶ delivered (body cleared; purged after keep_days)
       ▲                  │ ├──failure, before give_up_at──▶ pending (next_attempt_at = now + backoff)
       │                  │ └──failure, after give_up_at───▶ dead (kept for an admin)
       │                  └──lease ran out (worker died)──▶ claimable again
       └──────────── admin retry ◀──────────── dead
    pending | delivering | dead ──subscription removed──▶ cancelled
    pending | delivering | dead ──its alert, entry or person erased (revoke, expiry, shred, retention)──▶ cancelled

An erasure cancels the deliveries naming what it removes in its own transaction (:func:`cancel_concerning`: body
cleared, a body-less log row says why), and the retention purge deletes every row older than the alert retention
(:func:`purge_older_than`); a delivered row's body is cleared when it is delivered.

A claim is a compare-and-set inside a write transaction (which holds the database's write lock: see
:mod:`metrosight.store.db`), so two workers never hold one row at once: a row is claimable only while ``pending``
and due, or ``delivering`` with its lease run out; the claim writes a fresh claim token and a lease. A result is
written only under the same token (:meth:`Outbox.finish`), so a worker whose lease ran out (and whose row another
worker took) cannot overwrite the newer attempt. Leases are longer than an attempt can take (see
:mod:`metrosight.outbound.delivery`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from metrosight.policy.crypto import CryptoError
from metrosight.policy.rules import aware
from metrosight.store.db import StoreError
from metrosight.store.models import AlertRecord, Sighting, Subject
from metrosight.store.transitions import LIVE_ENTRY, TERMINAL_ENTRY, Changed, compare_and_set
from metrosight.store.uow import UnitOfWork, note_scrub
from metrosight.store.webhook_models import WebhookAttempt, WebhookDelivery, WebhookKey, WebhookSubscription

MAX_ERROR = 500


def idempotency_key(subscription_id: int, event_id: str) -> str:
    """The delivery's idempotency key: the same for every attempt of one event to one subscription (hex, 32)."""
    return hashlib.sha256(f"metrosight-webhook\n{subscription_id}\n{event_id}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Target:
    """An enabled subscription's filter (lists; empty: no restriction on that dimension)."""

    id: int
    event_types: tuple[str, ...]
    watchlists: tuple[str, ...]
    categories: tuple[str, ...]
    camera_groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery a worker holds until ``lease_until``: what to send, where, signed with which secret."""

    id: int
    subscription_id: int
    claim: str
    url: str
    secret: str
    body: str
    idempotency_key: str
    event_type: str
    attempt: int  # the number of this attempt (1 for the first)
    give_up_at: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt gave: the status code (None: no response), latency, error, the start of the response."""

    status_code: int | None
    latency_ms: float
    error: str | None = None
    response: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Outbox:
    """Queue, claim and settle webhook deliveries (see the module docstring)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def targets(self) -> list[Target]:
        """The enabled, not removed subscriptions."""
        with self.uow.read() as s:
            subs = s.scalars(
                select(WebhookSubscription).where(
                    WebhookSubscription.enabled.is_(True), WebhookSubscription.removed_at.is_(None)
                )
            )
            return [
                Target(
                    x.id,
                    tuple(x.event_types),
                    tuple(x.watchlists),
                    tuple(x.categories),
                    tuple(x.camera_groups),
                )
                for x in subs
            ]

    def enqueue(
        self,
        event_id: str,
        event_type: str,
        body: str,
        subscription_ids: Iterable[int],
        give_up_after: timedelta,
        now: datetime | None = None,
    ) -> int:
        """Queue ``body`` (the JSON to send) for each of ``subscription_ids`` still enabled, once per subscription
        and ``event_id`` (an event offered again adds nothing). An event offered after the erasure of the entry it
        names (a late bus message about a revoked, expired or shredded entry: :func:`names_erased`) is not queued.
        Returns how many rows were added.

        Raises:
            StoreError: the database cannot be written (nothing was queued).
        """
        ids = sorted(set(subscription_ids))
        if not ids:
            return 0
        now = now or datetime.now(UTC)
        added = 0
        with self.uow.write() as s:
            live = set(
                s.scalars(
                    select(WebhookSubscription.id).where(
                        WebhookSubscription.id.in_(ids),
                        WebhookSubscription.enabled.is_(True),
                        WebhookSubscription.removed_at.is_(None),
                    )
                )
            )
            have = set(
                s.scalars(
                    select(WebhookDelivery.subscription_id).where(
                        WebhookDelivery.event_id == event_id, WebhookDelivery.subscription_id.in_(ids)
                    )
                )
            )
            if live - have and names_erased(s, body):
                return 0
            for sub_id in sorted(live - have):
                s.add(
                    WebhookDelivery(
                        subscription_id=sub_id,
                        event_id=event_id,
                        event_type=event_type,
                        idempotency_key=idempotency_key(sub_id, event_id),
                        body=body,
                        state="pending",
                        created_at=now,
                        next_attempt_at=now,
                        give_up_at=now + give_up_after,
                        attempts=0,
                    )
                )
                added += 1
        return added

    def claim(self, limit: int, lease: timedelta, now: datetime | None = None) -> list[Claimed]:
        """Take up to ``limit`` due deliveries, oldest first, for ``lease``; each gets a fresh claim token. A row
        whose subscription key cannot be read (removed meanwhile) is cancelled instead.

        Raises:
            StoreError: the database cannot be written.
        """
        now = now or datetime.now(UTC)
        out: list[Claimed] = []
        live = select(WebhookSubscription.id).where(WebhookSubscription.enabled.is_(True))  # a paused one waits
        due = and_(
            or_(
                and_(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= now),
                and_(WebhookDelivery.state == "delivering", WebhookDelivery.lease_until < now),
            ),
            WebhookDelivery.subscription_id.in_(live),
        )
        with self.uow.read() as r:  # idle workers poll: no write lock unless something is due
            if r.scalar(select(WebhookDelivery.id).where(due).limit(1)) is None:
                return out
        with self.uow.write() as s:
            rows = list(
                s.scalars(select(WebhookDelivery).where(due).order_by(WebhookDelivery.next_attempt_at).limit(limit))
            )
            for d in rows:
                token = secrets.token_hex(16)
                # read before the update: compare_and_set expires what the session holds
                row_id, sub_id, attempt, body, key, kind = (
                    d.id,
                    d.subscription_id,
                    d.attempts + 1,
                    d.body or "",
                    d.idempotency_key,
                    d.event_type,
                )
                give_up = aware(d.give_up_at) or now
                expected = (WebhookDelivery.state == d.state, _same_claim(d.claim))
                try:
                    url, secret = self._secrets(s, sub_id)
                except CryptoError:
                    compare_and_set(
                        s, WebhookDelivery, row_id, *expected, state="cancelled", body=None, finished_at=now
                    )
                    continue
                compare_and_set(
                    s,
                    WebhookDelivery,
                    row_id,
                    *expected,
                    state="delivering",
                    claim=token,
                    lease_until=now + lease,
                    attempts=attempt,
                )
                out.append(Claimed(row_id, sub_id, token, url, secret, body, key, kind, attempt, give_up))
        return out

    def _secrets(self, s: Session, sub_id: int) -> tuple[str, str]:
        sub = s.get(WebhookSubscription, sub_id)
        key = s.get(WebhookKey, sub_id)
        if sub is None or key is None or sub.url_enc is None or sub.secret_enc is None:
            raise CryptoError(f"webhook {sub_id} was removed: its key is gone")
        ring = self.uow.keyring
        url = ring.decrypt(key.wrapped_key, sub.url_enc).decode()
        return url, ring.decrypt(key.wrapped_key, sub.secret_enc).decode()

    def finish(self, c: Claimed, outcome: Outcome, retry_at: datetime | None, now: datetime | None = None) -> str:
        """Record the attempt of claim ``c`` and move its row on: ``delivered`` on a 2xx; else ``pending`` until
        ``retry_at``, or ``dead`` when ``retry_at`` is None or past the give-up time. Returns the new state, or
        ``stale`` when the claim was lost (the lease ran out and another worker took the row; nothing written).

        Raises:
            StoreError: the database cannot be written (the row is claimed again when its lease runs out).
        """
        now = now or datetime.now(UTC)
        error = (outcome.error or "")[:MAX_ERROR] or None
        if outcome.delivered:
            state, values = "delivered", {"body": None, "finished_at": now}
        elif retry_at is None or retry_at > c.give_up_at:
            state, values = "dead", {"finished_at": now}
        else:
            state, values = "pending", {"next_attempt_at": retry_at}
        try:
            with self.uow.write() as s:
                compare_and_set(
                    s,
                    WebhookDelivery,
                    c.id,
                    WebhookDelivery.state == "delivering",
                    WebhookDelivery.claim == c.claim,
                    state=state,
                    claim=None,
                    lease_until=None,
                    last_status=outcome.status_code,
                    last_error=error,
                    last_latency_ms=round(outcome.latency_ms, 1),
                    **values,
                )
                s.add(
                    WebhookAttempt(
                        delivery_id=c.id,
                        number=c.attempt,
                        at=now,
                        status_code=outcome.status_code,
                        latency_ms=round(outcome.latency_ms, 1),
                        error=error,
                        response=outcome.response,
                    )
                )
        except Changed:
            return "stale"
        return state

    def pending(self, event_ids: Collection[str] | None = None) -> int:
        """How many deliveries are pending or being attempted (of these events only, when given)."""
        if event_ids is not None and not event_ids:
            return 0
        with self.uow.read() as s:
            q = select(func.count()).select_from(WebhookDelivery)
            q = q.where(WebhookDelivery.state.in_(("pending", "delivering")))
            if event_ids is not None:
                q = q.where(WebhookDelivery.event_id.in_(list(event_ids)))
            return int(s.scalar(q) or 0)

    def purge(self, before: datetime) -> int:
        """Delete delivered, cancelled and dead rows (and their attempts) finished before ``before``: a dead
        delivery not retried by then goes, with the person's name in its body. Returns how many."""
        try:
            with self.uow.write() as s:
                ids = list(
                    s.scalars(
                        select(WebhookDelivery.id).where(
                            WebhookDelivery.state.in_(("delivered", "cancelled", "dead")),
                            WebhookDelivery.finished_at < before,
                        )
                    )
                )
                if ids:
                    s.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)))
                    s.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(ids)))
        except Exception as exc:  # noqa: BLE001 - purging is housekeeping: retried next time
            raise StoreError(f"cannot purge the webhook outbox: {exc}") from None
        return len(ids)


def _same_claim(claim: str | None) -> ColumnElement[bool]:
    return WebhookDelivery.claim.is_(None) if claim is None else WebhookDelivery.claim == claim


#: outbox states whose body has not reached its receiver (a delivery held by a worker is cancelled too: its result
#: is then refused as stale)
UNDELIVERED = ("pending", "delivering", "dead")


@dataclass(frozen=True, slots=True)
class Concerning:
    """What an erasure removes, as the outbox bodies name it: entries (``subject_id``, ``entries[].entry_id``),
    persons (``person_id``, ``candidates[].person_id``), alerts (``alert_id``) and the event ids of alerts and
    their sightings (``event_id``, ``alert_event_id``, ``sighting_event_id``; an update's ``<id>#ended``)."""

    entry_ids: frozenset[int] = frozenset()
    person_ids: frozenset[int] = frozenset()
    alert_ids: frozenset[int] = frozenset()
    event_ids: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.entry_ids or self.person_ids or self.alert_ids or self.event_ids)

    def matches(self, event_id: str, body: str | None) -> bool:
        """Whether the delivery of ``event_id`` with JSON ``body`` (the envelope; its ``data``) names any of it."""
        if event_id.removesuffix("#ended") in self.event_ids:
            return True
        try:
            data = json.loads(body or "{}").get("data") or {}
        except (ValueError, AttributeError):
            return True  # unreadable: it may name anyone (cautious side)
        if not isinstance(data, dict):
            return True
        if data.get("subject_id") in self.entry_ids or data.get("alert_id") in self.alert_ids:
            return True
        if any(data.get(k) in self.event_ids for k in ("event_id", "alert_event_id", "sighting_event_id")):
            return True
        if data.get("person_id") in self.person_ids:
            return True
        entries = [e.get("entry_id") for e in data.get("entries") or () if isinstance(e, dict)]
        rivals = [c.get("person_id") for c in data.get("candidates") or () if isinstance(c, dict)]
        return bool(self.entry_ids.intersection(entries) or self.person_ids.intersection(rivals))


def cancel_concerning(s: Session, about: Concerning, reason: str, now: datetime | None = None) -> int:
    """In the erasing transaction ``s``: cancel every undelivered delivery (pending, being attempted, dead) whose
    event names what ``about`` removes, clear its body and log a body-less delivery-log row ``cancelled: <reason>``
    (``reason`` names no one, e.g. ``entry revoked``). The table's old row versions are scrubbed from the database's
    files after the commit (see :meth:`metrosight.store.uow.UnitOfWork.note_scrub`). Returns how many."""
    if not about:
        return 0
    now = now or datetime.now(UTC)
    rows = s.execute(
        select(WebhookDelivery.id, WebhookDelivery.event_id, WebhookDelivery.body, WebhookDelivery.attempts).where(
            WebhookDelivery.state.in_(UNDELIVERED)
        )
    ).all()
    hit = [(i, n) for i, ev, body, n in rows if about.matches(ev, body)]
    note = f"cancelled: {reason}"[:MAX_ERROR]
    for row_id, attempts in hit:
        s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == row_id)
            .values(state="cancelled", body=None, claim=None, lease_until=None, finished_at=now, last_error=note)
        )
        s.add(WebhookAttempt(delivery_id=row_id, number=attempts + 1, at=now, latency_ms=0.0, error=note))
    if hit:
        note_scrub(s, WebhookDelivery.__tablename__)
    return len(hit)


def purge_older_than(s: Session, before: datetime) -> int:
    """In the retention purge's transaction ``s``: delete every delivery created before ``before`` whatever its
    state (and its delivery log), so no outbox row outlives the alert retention. Returns how many."""
    ids = list(s.scalars(select(WebhookDelivery.id).where(WebhookDelivery.created_at < before)))
    if ids:
        s.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)))
        s.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(ids)))
    return len(ids)


def _alert_event_ids(s: Session, alert_ids: Collection[int]) -> frozenset[str]:
    if not alert_ids:
        return frozenset()
    first = s.scalars(select(AlertRecord.event_id).where(AlertRecord.id.in_(alert_ids)))
    more = s.scalars(select(Sighting.event_id).where(Sighting.alert_id.in_(alert_ids)))
    return frozenset([*first, *more])


def of_alerts(s: Session, alert_ids: Collection[int]) -> Concerning:
    """What the outbox must forget of alerts ``alert_ids`` (read before they are deleted): their ids and the event
    ids of them and their sightings."""
    return Concerning(alert_ids=frozenset(alert_ids), event_ids=_alert_event_ids(s, alert_ids))


def of_entries(s: Session, entry_ids: Collection[int]) -> Concerning:
    """What the outbox must forget of watchlist entries ``entry_ids`` (revoked, expired or shredded): the entries,
    their alerts (as the primary entry, or by a sighting) and, for a person left with no live entry, the person."""
    if not entry_ids:
        return Concerning()
    ids = frozenset(entry_ids)
    alerts = set(s.scalars(select(AlertRecord.id).where(AlertRecord.subject_id.in_(ids))))
    alerts.update(s.scalars(select(Sighting.alert_id).where(Sighting.entry_id.in_(ids))))
    persons = set(s.scalars(select(Subject.person_id).where(Subject.id.in_(ids))))
    still = s.scalars(
        select(Subject.person_id).where(
            Subject.person_id.in_(persons), Subject.id.not_in(ids), Subject.status.in_(LIVE_ENTRY)
        )
    )
    return Concerning(ids, frozenset(persons - set(still)), frozenset(alerts), _alert_event_ids(s, alerts))


def names_erased(s: Session, body: str) -> bool:
    """Whether the envelope ``body`` names a watchlist entry that was revoked, expired or shredded (``subject_id``,
    ``entries[].entry_id``, or the entry of the alert its ``alert_id`` names). An entry or alert this database does
    not hold does not count: its events are sent as they come."""
    try:
        data = json.loads(body).get("data")
    except (ValueError, AttributeError):
        return False
    if not isinstance(data, dict):
        return False
    named = {data.get("subject_id"), *(e.get("entry_id") for e in data.get("entries") or () if isinstance(e, dict))}
    alert_id = data.get("alert_id")
    if isinstance(alert_id, int):
        named.add(s.scalar(select(AlertRecord.subject_id).where(AlertRecord.id == alert_id)))
    ids = {i for i in named if isinstance(i, int)}
    if not ids:
        return False
    ended = select(Subject.id).where(Subject.id.in_(ids), Subject.status.in_(TERMINAL_ENTRY)).limit(1)
    return s.scalar(ended) is not None
