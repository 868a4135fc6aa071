"""Watchlists and their keys: create, list, crypto-shred; templates and crops are sealed with a watchlist's key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from metrosight.core.names import human_name
from metrosight.core.types import Category
from metrosight.policy.crypto import CryptoError
from metrosight.policy.rules import Actor, require
from metrosight.policy.scope import EVERYTHING, View
from metrosight.store import outbox, version
from metrosight.store.db import StoreError
from metrosight.store.errors import Conflict, NotFound
from metrosight.store.models import Subject, Template, Watchlist, WatchlistKey
from metrosight.store.naming import find_named, lookalike_message
from metrosight.store.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class WatchlistInfo:
    name: str
    category: str
    subjects: int
    templates: int
    created_at: datetime


MAX_DIM = 4096  # descriptor sizes a model may have (dlib's: 128); each template row records its model


def encode_descriptor(vec: np.ndarray) -> bytes:
    """A descriptor ``(D,)`` (1 ≤ D ≤ 4096; dlib's model: 128) as float32 little-endian bytes."""
    arr = np.asarray(vec, dtype="<f4").reshape(-1)
    if not 0 < arr.shape[0] <= MAX_DIM:
        raise ValueError(f"descriptor must have 1 to {MAX_DIM} values, got {arr.shape[0]}")
    return arr.tobytes()


def decode_descriptor(blob: bytes) -> np.ndarray:
    if len(blob) % 4 or not 0 < len(blob) // 4 <= MAX_DIM:
        raise StoreError(f"stored descriptor of {len(blob)} bytes is not 1 to {MAX_DIM} float32 values")
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


def destroy_templates(s: Session, entry_id: int) -> int:
    """Delete every template of entry ``entry_id`` inside the write transaction ``s``; how many there were."""
    return s.execute(delete(Template).where(Template.subject_id == entry_id)).rowcount or 0  # type: ignore[attr-defined]


class WatchlistRepository:
    """Watchlists (``store.watchlists``): each has a category and its own key, wrapped by the master key."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def create(self, name: str, category: Category, actor: Actor) -> None:
        """Raises Conflict if ``name`` (normalised, :func:`metrosight.core.names.human_name`) exists or looks like
        an existing watchlist's name, Forbidden unless ``actor`` is an admin, InvalidInput for an unusable name."""
        require(actor, "create watchlists", "admin")
        name = human_name(name, "watchlist name")
        with self.uow.write() as s:
            if find_named(s, Watchlist, name) is not None:
                raise Conflict(f"watchlist {name!r} already exists")
            if (why := lookalike_message(s, Watchlist, name, "watchlist")) is not None:
                raise Conflict(why)
            wl = Watchlist(name=name, category=str(category), created_by=actor.name)
            s.add(wl)
            s.flush()
            s.add(WatchlistKey(watchlist_id=wl.id, wrapped_key=self.uow.keyring.new_wrapped_key()))
            self.uow.audit(s, actor.name, "watchlist.create", name, {"category": str(category)})
            version.bump(s)

    def category(self, name: str, view: View = EVERYTHING) -> Category:
        """Raises NotFound if there is no such watchlist, or ``view`` (a reader's scope) does not see it."""
        with self.uow.read() as s:
            wl = find_named(s, Watchlist, name)
            cat = wl.category if wl is not None and view.watchlist(wl.name) else None
        if cat is None:
            raise NotFound(
                f"no watchlist named {name!r}; create it with `metrosight watchlist create {name} --category …`"
            )
        return Category(cat)

    def all(self, *, view: View = EVERYTHING) -> list[WatchlistInfo]:
        """Every watchlist ``view`` sees, with how many entries and templates it holds, by name."""
        with self.uow.read() as s:
            rows = s.execute(
                select(
                    Watchlist.name,
                    Watchlist.category,
                    Watchlist.created_at,
                    func.count(func.distinct(Subject.id)),
                    func.count(Template.id),
                )
                .outerjoin(Subject, Subject.watchlist_id == Watchlist.id)
                .outerjoin(Template, Template.subject_id == Subject.id)
                .group_by(Watchlist.id)
                .order_by(Watchlist.name)
            ).all()
        return [WatchlistInfo(n, c, subj, tpl, created) for n, c, created, subj, tpl in rows if view.watchlist(n)]

    def shred(self, watchlist: str, actor: Actor) -> None:
        """Destroy a watchlist's key (crypto-shredding) and its templates; its entries end as revoked."""
        require(actor, "shred watchlists", "admin")
        with self.uow.write() as s:
            wl = find_named(s, Watchlist, watchlist)
            if wl is None:
                raise NotFound(f"no watchlist named {watchlist!r}")
            s.execute(delete(WatchlistKey).where(WatchlistKey.watchlist_id == wl.id))
            n = 0
            entries = list(s.scalars(select(Subject).where(Subject.watchlist_id == wl.id)))
            cancelled = outbox.cancel_concerning(s, outbox.of_entries(s, [e.id for e in entries]), "watchlist shredded")
            for e in entries:
                n += destroy_templates(s, e.id)
                if e.status in ("pending", "active"):
                    e.status, e.revoked_at, e.revoked_by, e.revoke_reason = (
                        "revoked",
                        datetime.now(UTC),
                        actor.name,
                        "watchlist shredded",
                    )
            details = {"templates_destroyed": n, **({"webhook_deliveries_cancelled": cancelled} if cancelled else {})}
            self.uow.audit(s, actor.name, "watchlist.shred", watchlist, details)
            version.bump(s)

    def wrapped_key(self, watchlist: str) -> bytes | None:
        """The watchlist's wrapped key; None once shredded (or if there is no such watchlist)."""
        with self.uow.read() as s:
            wl = find_named(s, Watchlist, watchlist)
            return s.scalar(select(WatchlistKey.wrapped_key).where(WatchlistKey.watchlist_id == wl.id)) if wl else None

    def encrypt_for(self, watchlist: str, data: bytes) -> bytes:
        """Encrypt ``data`` (e.g. a crop) with the watchlist's key. Raises CryptoError if the key is destroyed."""
        key = self.wrapped_key(watchlist)
        if key is None:
            raise CryptoError(f"watchlist {watchlist!r} has no key (shredded)")
        return self.uow.keyring.encrypt(key, data)
