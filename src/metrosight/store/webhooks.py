"""Webhook subscriptions and their delivery log, for admins (``store.webhooks``): every change audited.

A subscription's URL may carry credentials (user information, a token in the query or the path); it is stored
encrypted, with the server-generated signing secret, under the subscription's own data key (wrapped by the
master key, as templates are: :class:`~metrosight.policy.crypto.KeyRing`), and shown only without its
credentials (:func:`shown_url`). The secret is returned once, by :meth:`WebhookRepository.create`. Removing a
subscription deletes its key (the URL and secret become unreadable; the key's bytes are scrubbed from the
database's files) and cancels what it had queued; the delivery log stays.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from metrosight.core.names import InvalidInput, free_text, same_identifier
from metrosight.core.source import SourceSpec
from metrosight.core.types import Category
from metrosight.policy.rules import Actor, PolicyError, aware, require
from metrosight.store.errors import NotFound
from metrosight.store.models import Watchlist
from metrosight.store.naming import find_named
from metrosight.store.uow import UnitOfWork, note_scrub
from metrosight.store.webhook_models import (
    DELIVERY_STATES,
    WebhookAttempt,
    WebhookDelivery,
    WebhookKey,
    WebhookSubscription,
)

MAX_URL = 2048
SECRET_PREFIX = "whsec_"
# a path segment that reads as a key: 16+ characters mixing letters and digits, or 20+ mixing upper and lower case
# letters (a random key without a digit); ":" as in Telegram's bot<id>:<key>
_TOKEN_LIKE = re.compile(
    r"^(?:(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_\-.~%+=:]{16,}|(?=.*[a-z])(?=.*[A-Z])[A-Za-z0-9_\-.~%+=:]{20,})$"
)


def shown_url(url: str) -> str:
    """``url`` as it may be shown or logged: no user information, ``***`` for secret query values and for path
    segments that look like keys (16+ characters mixing letters and digits, or 20+ mixing upper and lower case, as
    chat and automation services put them in the path). Never raises."""
    try:
        shown = SourceSpec.parse(url).display
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as its origin only
        try:
            parts = urlsplit(url)
            return f"{parts.scheme}://{parts.hostname or '?'}/***"
        except ValueError:  # not even that (a malformed [host]): nothing of it
            return "***"
    head, qmark, query = shown.partition("?")
    scheme, sep, rest = head.partition("://")
    if not sep:  # not a URL (``user:pw@host``, ``//user:pw@host/…``): its host only, without user information
        authority = head.lstrip("/").partition("/")[0]
        host = authority.rpartition("@")[2]
        return f"{head[: len(head) - len(head.lstrip('/'))]}{'***@' if '@' in authority else ''}{host or '?'}/***"
    host, slash, path = rest.partition("/")
    path = "/".join("***" if _TOKEN_LIKE.match(seg) else seg for seg in path.split("/"))
    return f"{scheme}{sep}{host}{slash}{path}{qmark}{query}"


def check_url(url: str) -> str:
    """``url`` trimmed, when it can be a webhook receiver: ``http`` or ``https``, a host, no fragment, no spaces or
    control characters, at most :data:`MAX_URL` characters.

    Raises:
        InvalidInput: what is wrong (never echoing the credentials).
    """
    url = url.strip() if isinstance(url, str) else ""
    if not url:
        raise InvalidInput("a webhook needs a URL (http:// or https://)")
    if len(url) > MAX_URL:
        raise InvalidInput(f"the webhook URL is longer than {MAX_URL} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise InvalidInput("the webhook URL contains spaces or control characters; percent-encode them")
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        raise InvalidInput(f"the webhook URL cannot be parsed: {shown_url(url)}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidInput(
            f"webhook URLs must be http:// or https:// (not {parts.scheme or 'a bare address'}:): {shown_url(url)}"
        )
    if not parts.hostname:
        raise InvalidInput(f"the webhook URL names no host: {shown_url(url)}")
    if parts.fragment:
        raise InvalidInput("the webhook URL has a #fragment, which is never sent to the receiver; remove it")
    return url


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    """A subscription as admins see it (never its URL's credentials or its secret)."""

    id: int
    name: str
    url: str
    event_types: tuple[str, ...]
    watchlists: tuple[str, ...]
    categories: tuple[str, ...]
    camera_groups: tuple[str, ...]
    enabled: bool
    created_at: datetime
    created_by: str
    removed_at: datetime | None
    pending: int = 0
    dead: int = 0
    delivered: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryInfo:
    """One outbox row as the delivery log shows it (not its body)."""

    id: int
    subscription_id: int
    event_id: str
    event_type: str
    idempotency_key: str
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    last_latency_ms: float | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    """One delivery attempt: when, the receiver's status code (None: no response), latency, error."""

    number: int
    at: datetime
    status_code: int | None
    latency_ms: float
    error: str | None


def _info(sub: WebhookSubscription, counts: dict[str, int]) -> SubscriptionInfo:
    return SubscriptionInfo(
        sub.id,
        sub.name,
        sub.url_shown,
        tuple(sub.event_types),
        tuple(sub.watchlists),
        tuple(sub.categories),
        tuple(sub.camera_groups),
        sub.enabled,
        aware(sub.created_at) or sub.created_at,
        sub.created_by,
        aware(sub.removed_at),
        counts.get("pending", 0) + counts.get("delivering", 0),
        counts.get("dead", 0),
        counts.get("delivered", 0),
    )


def _delivery(d: WebhookDelivery) -> DeliveryInfo:
    live = d.state in ("pending", "delivering")
    return DeliveryInfo(
        d.id,
        d.subscription_id,
        d.event_id,
        d.event_type,
        d.idempotency_key,
        d.state,
        d.attempts,
        aware(d.created_at) or d.created_at,
        aware(d.next_attempt_at) if live else None,
        d.last_status,
        d.last_error,
        d.last_latency_ms,
        aware(d.finished_at),
    )


def _known_watchlists(s: Session, names: Sequence[str]) -> list[str]:
    """The stored names of the watchlists ``names`` (compared as the filter compares them: up to case, Unicode form
    and look-alike letters); InvalidInput naming the first that does not exist."""
    out = []
    stored: list[str] | None = None
    for w in names:
        row = find_named(s, Watchlist, w)
        if row is not None:
            out.append(row.name)
            continue
        stored = list(s.scalars(select(Watchlist.name))) if stored is None else stored
        match = next((n for n in stored if same_identifier(n, w)), None)
        if match is None:
            known = ", ".join(sorted(stored)) or "none yet"
            raise InvalidInput(
                f"no watchlist {w!r} (known: {known}); a filter naming it would never deliver anything: "
                "check the spelling or create the list first"
            )
        out.append(match)
    return out


def _known_categories(names: Sequence[str]) -> list[str]:
    """``names`` as categories (case-insensitive); InvalidInput naming the first that is not one."""
    known = [c.value for c in Category]
    out = []
    for c in names:
        value = next((k for k in known if same_identifier(k, str(c))), None)
        if value is None:
            raise InvalidInput(f"no category {c!r} (known: {', '.join(known)}); check the spelling")
        out.append(value)
    return out


class WebhookRepository:
    """Webhook subscriptions, their delivery log and retries (``store.webhooks``); admins only."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def create(
        self,
        actor: Actor,
        name: str,
        url: str,
        event_types: Sequence[str],
        watchlists: Sequence[str] = (),
        categories: Sequence[str] = (),
        camera_groups: Sequence[str] = (),
    ) -> tuple[SubscriptionInfo, str]:
        """A new, enabled subscription; ``event_types`` are checked by the caller
        (:func:`metrosight.outbound.webhooks.add_subscription`). Returns ``(info, secret)``: the signing secret, shown
        once and never again. ``watchlists`` are stored under their stored names.

        Raises:
            Forbidden: not an admin. InvalidInput: a bad name or URL (see :func:`check_url`); a watchlist that does
            not exist, a category that is not one, or a camera group the configuration does not have (a filter
            naming one would never deliver anything; the message lists the known names).
        """
        require(actor, "add webhooks", "admin")
        name = free_text(name, "webhook name", 128)
        if not name:
            raise InvalidInput("a webhook needs a name (what receives it)")
        url = check_url(url)
        shown = shown_url(url)
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        keyring = self.uow.keyring
        wrapped = keyring.new_wrapped_key()
        with self.uow.write() as s:
            watchlists = _known_watchlists(s, watchlists)
            categories = _known_categories(categories)
            self.uow.scoping.check_groups(camera_groups)
            sub = WebhookSubscription(
                name=name,
                url_shown=shown,
                url_enc=keyring.encrypt(wrapped, url.encode()),
                secret_enc=keyring.encrypt(wrapped, secret.encode()),
                event_types=sorted(set(event_types)),
                watchlists=sorted(set(watchlists)),
                categories=sorted(set(categories)),
                camera_groups=sorted(set(camera_groups)),
                enabled=True,
                created_by=actor.name,
            )
            s.add(sub)
            s.flush()
            s.add(WebhookKey(subscription_id=sub.id, wrapped_key=wrapped))
            details = {
                "url": shown,
                "event_types": sub.event_types,
                "watchlists": sub.watchlists,
                "categories": sub.categories,
                "camera_groups": sub.camera_groups,
            }
            self.uow.audit(s, actor.name, "webhook.add", f"webhook:{sub.id}", details)
            info = _info(sub, {})
        return info, secret

    def _get(self, s: Session, sub_id: int) -> WebhookSubscription:
        sub = s.get(WebhookSubscription, sub_id)
        if sub is None or sub.removed_at is not None:
            raise NotFound(f"no webhook {sub_id} (see `metrosight webhooks list`)")
        return sub

    def all(self, actor: Actor, include_removed: bool = False) -> list[SubscriptionInfo]:
        """Every subscription (removed ones too with ``include_removed``), with its deliveries counted by state.

        Raises:
            Forbidden: not an admin.
        """
        require(actor, "list webhooks", "admin")
        with self.uow.read() as s:
            q = select(WebhookSubscription).order_by(WebhookSubscription.id)
            if not include_removed:
                q = q.where(WebhookSubscription.removed_at.is_(None))
            subs = list(s.scalars(q))
            counts: dict[int, dict[str, int]] = {}
            rows = s.execute(
                select(WebhookDelivery.subscription_id, WebhookDelivery.state, func.count()).group_by(
                    WebhookDelivery.subscription_id, WebhookDelivery.state
                )
            )
            for sub_id, state, n in rows:
                counts.setdefault(sub_id, {})[state] = n
            return [_info(sub, counts.get(sub.id, {})) for sub in subs]

    def set_enabled(self, actor: Actor, sub_id: int, enabled: bool) -> None:
        """Pause (nothing new is queued; what is queued waits) or resume a subscription.

        Raises:
            Forbidden: not an admin. NotFound: no such subscription.
        """
        require(actor, "change webhooks", "admin")
        with self.uow.write() as s:
            sub = self._get(s, sub_id)
            sub.enabled = enabled
            action = "webhook.enable" if enabled else "webhook.disable"
            self.uow.audit(s, actor.name, action, f"webhook:{sub_id}", {"url": sub.url_shown})

    def remove(self, actor: Actor, sub_id: int) -> int:
        """Remove a subscription: its key is deleted (URL and secret unreadable), its queued deliveries are
        cancelled; the delivery log stays. Returns how many deliveries were cancelled.

        Raises:
            Forbidden: not an admin. NotFound: no such subscription (or already removed).
        """
        require(actor, "remove webhooks", "admin")
        now = datetime.now(UTC)
        with self.uow.write() as s:
            sub = self._get(s, sub_id)
            sub.removed_at, sub.removed_by, sub.enabled = now, actor.name, False
            sub.url_enc = sub.secret_enc = None
            key = s.get(WebhookKey, sub_id)
            if key is not None:
                s.delete(key)
            res = s.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.subscription_id == sub_id,
                    WebhookDelivery.state.in_(("pending", "delivering", "dead")),
                )
                .values(state="cancelled", body=None, claim=None, lease_until=None, finished_at=now)
                .execution_options(synchronize_session=False)
            )
            cancelled = int(res.rowcount)  # type: ignore[attr-defined]
            if cancelled:
                note_scrub(s, WebhookDelivery.__tablename__)  # the cleared bodies leave the files too
            self.uow.audit(
                s, actor.name, "webhook.remove", f"webhook:{sub_id}", {"url": sub.url_shown, "cancelled": cancelled}
            )
        return cancelled

    def secrets_for_test(self, actor: Actor, sub_id: int) -> tuple[str, str]:
        """The URL and secret of a subscription, to send it a test request now (audited as ``webhook.test``);
        never shown to the actor.

        Raises:
            Forbidden: not an admin. NotFound: no such subscription.
        """
        require(actor, "test webhooks", "admin")
        with self.uow.write() as s:
            sub = self._get(s, sub_id)
            key = s.get(WebhookKey, sub_id)
            if key is None or sub.url_enc is None or sub.secret_enc is None:
                raise NotFound(f"no webhook {sub_id} (see `metrosight webhooks list`)")
            ring = self.uow.keyring
            url = ring.decrypt(key.wrapped_key, sub.url_enc).decode()
            secret = ring.decrypt(key.wrapped_key, sub.secret_enc).decode()
            self.uow.audit(s, actor.name, "webhook.test", f"webhook:{sub_id}", {"url": sub.url_shown})
        return url, secret

    def deliveries(
        self, actor: Actor, sub_id: int | None = None, state: str | None = None, limit: int = 50
    ) -> list[DeliveryInfo]:
        """The newest deliveries (of one subscription, in one state), newest first.

        Raises:
            Forbidden: not an admin. InvalidInput: an unknown state.
        """
        require(actor, "read the webhook delivery log", "admin")
        if state is not None and state not in DELIVERY_STATES:
            raise InvalidInput(f"unknown delivery state {state!r} (one of {', '.join(DELIVERY_STATES)})")
        with self.uow.read() as s:
            q = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(max(1, min(limit, 1000)))
            if sub_id is not None:
                q = q.where(WebhookDelivery.subscription_id == sub_id)
            if state is not None:
                q = q.where(WebhookDelivery.state == state)
            return [_delivery(d) for d in s.scalars(q)]

    def attempts(self, actor: Actor, delivery_id: int) -> list[AttemptInfo]:
        """Every attempt of one delivery, oldest first.

        Raises:
            Forbidden: not an admin. NotFound: no such delivery.
        """
        require(actor, "read the webhook delivery log", "admin")
        with self.uow.read() as s:
            if s.get(WebhookDelivery, delivery_id) is None:
                raise NotFound(f"no webhook delivery {delivery_id}")
            rows = s.scalars(
                select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id).order_by(WebhookAttempt.number)
            )
            return [AttemptInfo(a.number, aware(a.at) or a.at, a.status_code, a.latency_ms, a.error) for a in rows]

    def retry(
        self,
        actor: Actor,
        delivery_id: int | None = None,
        sub_id: int | None = None,
        give_up_after: timedelta = timedelta(hours=24),
    ) -> int:
        """Queue dead deliveries again (one, or every dead one of a subscription), at once, with a fresh give-up
        time. Returns how many.

        Raises:
            Forbidden: not an admin. PolicyError: neither or both of ``delivery_id`` and ``sub_id``; the delivery
            is not dead (pending ones are retried anyway; delivered and cancelled ones are final). NotFound: no such
            delivery or subscription.
        """
        require(actor, "retry webhook deliveries", "admin")
        if (delivery_id is None) == (sub_id is None):
            raise PolicyError("retry one delivery or every dead delivery of one webhook")
        now = datetime.now(UTC)
        with self.uow.write() as s:
            cond = [WebhookDelivery.state == "dead"]
            if delivery_id is not None:
                d = s.get(WebhookDelivery, delivery_id)
                if d is None:
                    raise NotFound(f"no webhook delivery {delivery_id}")
                if d.state != "dead":
                    raise PolicyError(f"delivery {delivery_id} is {d.state}: only dead deliveries are retried")
                self._get(s, d.subscription_id)  # a removed subscription's deliveries are cancelled
                cond.append(WebhookDelivery.id == delivery_id)
            else:
                self._get(s, sub_id)  # type: ignore[arg-type]
                cond.append(WebhookDelivery.subscription_id == sub_id)
            res = s.execute(
                update(WebhookDelivery)
                .where(*cond)
                .values(state="pending", next_attempt_at=now, give_up_at=now + give_up_after, finished_at=None)
                .execution_options(synchronize_session=False)
            )
            n = int(res.rowcount)  # type: ignore[attr-defined]
            target = f"webhook-delivery:{delivery_id}" if delivery_id is not None else f"webhook:{sub_id}"
            self.uow.audit(s, actor.name, "webhook.retry", target, {"deliveries": n})
        return n
