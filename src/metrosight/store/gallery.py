"""The gallery: the decrypted, fused templates of the entries that may be matched now (or be compared with at
enrolment); its version is read by :class:`metrosight.store.policy.PolicyReads`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import func, select

from metrosight.core.types import Category
from metrosight.policy.rules import aware, in_scope
from metrosight.recognize.gallery import GalleryEntry, fuse
from metrosight.store.auditing import AuditRepository
from metrosight.store.entries import EntryRepository
from metrosight.store.models import Person, Subject, Template, Watchlist, WatchlistKey
from metrosight.store.uow import UnitOfWork
from metrosight.store.watchlists import decode_descriptor

log = logging.getLogger(__name__)

Grouped = tuple[Subject, str, str, str, list[np.ndarray]]  # entry, watchlist, category, person name, descriptors


class GalleryRepository:
    """What the matcher loads (``store.gallery``); reading it first retires expired entries (``entries``) and
    leaves out entries whose approval the keyed audit log does not back (``audit``)."""

    def __init__(self, uow: UnitOfWork, entries: EntryRepository, audit: AuditRepository) -> None:
        self.uow = uow
        self.entries = entries
        self.audit = audit

    def active(
        self, model: str, camera_id: str | None = None, now: datetime | None = None, line: str | None = None
    ) -> list[GalleryEntry]:
        """Templates of every entry that may be matched now: active, inside its validity window and in scope for
        ``camera_id``/``line``. Expired entries are retired first (their templates destroyed). One fused template
        per entry, with the entry's person. An entry the database says is active but the keyed audit log does not
        (a forged approval, :meth:`AuditRepository.unbacked_active`) is left out and logged as an error."""
        now = now or datetime.now(UTC)
        self.entries.expire_due(now)
        out = []
        forged = self.audit.unbacked_active()  # active in the database but not in the keyed log: never matched
        for why in forged.values():
            log.error("not matching %s: `metrosight audit verify` reports it", why)
        for subj, wl_name, cat, person_name, descs in self._templates(model, ("active",), held=False):
            if subj.id in forged:
                continue
            vf, exp = aware(subj.valid_from), aware(subj.expires_at)
            if (vf is not None and now < vf) or (exp is not None and now >= exp):
                continue
            if not in_scope(subj.scope, camera_id, line):
                continue
            out.append(_entry(subj, wl_name, cat, person_name, descs))
        return out

    def for_enrolment(self, model: str) -> list[GalleryEntry]:
        """One fused template per entry that is pending or active (any scope or validity window), with its person:
        what a new enrolment is compared with to find the same person enrolled before."""
        return [_entry(*g) for g in self._templates(model, ("active", "pending"))]

    def template_models(self) -> dict[str, int]:
        """How many templates of pending or active entries each descriptor model holds (shredded lists left out):
        matching refuses to start when any are of a model other than the configured embedder's."""
        with self.uow.read() as s:
            live = select(WatchlistKey.watchlist_id)
            rows = s.execute(
                select(Template.model, func.count())
                .join(Subject, Template.subject_id == Subject.id)
                .where(Subject.status.in_(("active", "pending")), Subject.watchlist_id.in_(live))
                .group_by(Template.model)
            ).all()
        return {str(m): int(n) for m, n in rows}

    def _templates(self, model: str, statuses: tuple[str, ...], held: bool = True) -> list[Grouped]:
        """Decrypted descriptors of entries in ``statuses``, grouped per entry: ``(entry, watchlist, category,
        person name, descriptors)``; shredded watchlists are left out, and held photos unless ``held``."""
        with self.uow.read() as s:
            keys = {k.watchlist_id: k.wrapped_key for k in s.scalars(select(WatchlistKey))}
            rows = s.execute(
                select(Subject, Watchlist.name, Watchlist.category, Person.name, Template.descriptor)
                .join(Watchlist, Subject.watchlist_id == Watchlist.id)
                .join(Person, Person.id == Subject.person_id)
                .join(Template, Template.subject_id == Subject.id)
                .where(
                    Subject.status.in_(statuses),
                    Template.model == model,
                    *(() if held else (Template.held.is_(False),)),
                )
                .order_by(Subject.id, Template.id)
            ).all()
        grouped: dict[int, Grouped] = {}
        for subj, wl_name, cat, person_name, blob in rows:
            if subj.watchlist_id not in keys:
                continue  # shredded
            vec = decode_descriptor(self.uow.keyring.decrypt(keys[subj.watchlist_id], blob))
            grouped.setdefault(subj.id, (subj, wl_name, cat, person_name, []))[4].append(vec)
        return list(grouped.values())


def _entry(subj: Subject, wl_name: str, cat: str, person_name: str, descs: list[np.ndarray]) -> GalleryEntry:
    return GalleryEntry(
        subj.id,
        subj.name,
        wl_name,
        Category(cat),
        fuse(np.stack(descs)),
        subj.person_id,
        person_name,
        subj.reference,
    )
