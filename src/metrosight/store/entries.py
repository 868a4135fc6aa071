"""Watchlist entries: one authorisation for one person on one watchlist, with its encrypted templates.

Every change is an atomic, audited transition (:mod:`metrosight.store.transitions`): an entry is recorded
*pending* (or active at once when urgent, for 24 h), approved by someone who added none of its photos, revoked or
expired (its templates destroyed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from metrosight.core.names import free_text, human_name
from metrosight.policy.rules import Actor, Authorisation, PolicyError, aware, can_approve, require
from metrosight.policy.scope import EVERYTHING, View
from metrosight.store import outbox, transitions, version
from metrosight.store.errors import Conflict, NotFound
from metrosight.store.models import Person, Subject, Template, Watchlist, WatchlistKey
from metrosight.store.naming import find_named, lookalike_message
from metrosight.store.uow import UnitOfWork
from metrosight.store.watchlists import destroy_templates, encode_descriptor

SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class EntryInfo:
    id: int
    watchlist: str
    name: str
    status: str
    urgent: bool
    legal_basis: str | None
    authority: str | None
    reference: str | None
    scope: dict | None
    expires_at: datetime | None
    created_by: str | None
    approved_by: str | None
    templates: int
    person_id: int | None = None


@dataclass(frozen=True, slots=True)
class Photo:
    """One photo's template to enrol: its descriptor, the model that made it, and where it came from."""

    descriptor: np.ndarray
    model: str
    source_name: str
    source_sha256: str
    quality: float


def find_entry(s: Session, watchlist: str, name: str, view: View = EVERYTHING) -> Subject:
    """The entry ``name`` on ``watchlist``, both found by their normalised names (NFC, trimmed); NotFound else,
    and for a watchlist outside ``view`` (the scope of whoever acts on it)."""
    wl = find_named(s, Watchlist, watchlist)
    if wl is not None and not view.watchlist(wl.name):
        wl = None
    subj = find_named(s, Subject, name, Subject.watchlist_id == wl.id) if wl is not None else None
    if subj is None:
        raise NotFound(f"no entry {name!r} on watchlist {watchlist!r}")
    return subj


class EntryRepository:
    """Entries of every watchlist (``store.entries``).

    Args:
        uow: the store's unit of work.
        max_entry_days: the longest an entry may be authorised for.
        tz: the deployment's time zone: the last allowed expiry is the end of the day ``max_entry_days`` from now.
    """

    def __init__(self, uow: UnitOfWork, max_entry_days: int = 365, tz: tzinfo = UTC) -> None:
        self.uow = uow
        self.max_entry_days = max_entry_days
        self.tz = tz

    def enroll(
        self,
        watchlist: str,
        subject: str,
        descriptor: np.ndarray,
        model: str,
        source_name: str,
        source_sha256: str,
        quality: float,
        actor: Actor,
        auth: Authorisation | None = None,
        now: datetime | None = None,
        person_id: int | None = None,
        link_reason: str | None = None,
    ) -> tuple[int, bool]:
        """Store one encrypted template for ``subject`` on ``watchlist``, in one audited transaction.

        A new entry needs ``auth`` and is created *pending* (or active at once when urgent, for 24 h). It belongs to
        person ``person_id`` when given (the same person on another list; ``link_reason`` says why, for the audit
        log), else to a new person of its own. Adding a photo to an approved entry sends it back to *pending* (a
        changed template needs a fresh approval). On an urgent entry not approved yet, a photo added by anyone but
        its creator is *held* — not matched — until an approver who added no photo approves the entry; the entry
        keeps its 24-hour clock meanwhile. Whoever adds a photo may not approve the entry
        (:func:`metrosight.policy.rules.can_approve`).

        Returns:
            ``(subject_id, duplicate)``: ``duplicate`` is True when this photo (by SHA-256) was already enrolled
            for this subject, in which case nothing is written.

        Raises:
            NotFound: no such watchlist or person. Forbidden: ``actor`` may not record entries. PolicyError:
            missing or invalid authorisation, the entry is revoked/expired, or it belongs to another person than
            ``person_id``.
        """
        require(actor, "record watchlist entries", "approver", "admin")
        now = now or datetime.now(UTC)
        subject = human_name(subject, "the person's name")
        photo = Photo(descriptor, model, source_name, source_sha256, quality)
        view = self.uow.scoping.view(actor, ("approver", "admin"))
        with self.uow.write() as s:
            wl = find_named(s, Watchlist, watchlist)
            if wl is None or not view.watchlist(wl.name):  # a list outside the recorder's scope: as if absent
                raise NotFound(f"no watchlist named {watchlist!r}; create it with `metrosight watchlist create`")
            key = s.get(WatchlistKey, wl.id)
            if key is None:
                raise PolicyError(f"watchlist {watchlist!r} was shredded (its key is destroyed); create a new one")
            subj = find_named(s, Subject, subject, Subject.watchlist_id == wl.id)
            if subj is None:
                subj = self._create(s, wl, subject, actor, auth, now, person_id, link_reason)
            else:
                subj = self._existing(s, wl, subj, person_id)
            dup = s.scalar(
                select(Template.id).where(Template.subject_id == subj.id, Template.source_sha256 == source_sha256)
            )
            if dup is not None:
                return subj.id, True
            self._add_template(s, wl.name, subj, key.wrapped_key, photo, actor)
            version.bump(s)
            return subj.id, False

    def _create(
        self,
        s: Session,
        wl: Watchlist,
        subject: str,
        actor: Actor,
        auth: Authorisation | None,
        now: datetime,
        person_id: int | None,
        link_reason: str | None,
    ) -> Subject:
        """A new entry ``subject`` on ``wl`` under ``auth``, with its ``entry.create`` audit entry."""
        why = lookalike_message(s, Subject, subject, "entry", Subject.watchlist_id == wl.id)
        if why is not None:
            raise Conflict(f"{why} (on watchlist {wl.name!r})")
        if auth is None:
            raise PolicyError(
                f"{subject!r} is a new entry: give its legal basis, issuing authority, reference and expiry"
            )
        auth.validate(now, self.max_entry_days, self.tz)
        if person_id is not None:
            person = s.get(Person, person_id)
            if person is None:
                raise NotFound(f"no person {person_id} (see `metrosight person list`)")
        else:
            person = Person(name=subject, created_by=actor.name)
            s.add(person)
            s.flush()
        subj = Subject(
            watchlist_id=wl.id,
            person_id=person.id,
            name=subject,
            status="active" if auth.urgent else "pending",
            legal_basis=auth.legal_basis,
            issuing_authority=auth.issuing_authority,
            reference=auth.reference,
            scope=auth.scope(),
            valid_from=auth.valid_from,
            expires_at=auth.effective_expiry(now),
            requested_expires_at=auth.expires_at,
            urgent=auth.urgent,
            created_by=actor.name,
        )
        s.add(subj)
        s.flush()
        details = {
            "entry_id": subj.id,
            "status": subj.status,
            "urgent": auth.urgent,
            "legal_basis": auth.legal_basis,
            "authority": auth.issuing_authority,
            "reference": auth.reference,
            "expires_at": subj.expires_at.isoformat() if subj.expires_at else None,
            "scope": auth.scope(),
            "person_id": person.id,
            "linked": person_id is not None,
            "link_reason": link_reason,
        }
        self.uow.audit(s, actor.name, "entry.create", f"{wl.name}/{subject}", details)
        return subj

    @staticmethod
    def _existing(s: Session, wl: Watchlist, subj: Subject, person_id: int | None) -> Subject:
        """The entry a photo is added to, locked: revoke, approve and other photos wait (or go first)."""
        subj = transitions.lock_entry(s, subj.id)
        if subj.status in transitions.TERMINAL_ENTRY:
            raise PolicyError(f"entry {wl.name}/{subj.name} is {subj.status}; record a new authorisation instead")
        if person_id is not None and subj.person_id != person_id:
            raise PolicyError(
                f"entry {wl.name}/{subj.name} belongs to person {subj.person_id}, not {person_id}: "
                f"use `metrosight person link {person_id} {subj.person_id}` to record they are one person"
            )
        return subj

    def _add_template(
        self, s: Session, watchlist: str, subj: Subject, wrapped_key: bytes, photo: Photo, actor: Actor
    ) -> None:
        """Seal and store ``photo``'s template on ``subj``, with its ``entry.enrol`` audit entry."""
        subj_id, status, held, name = subj.id, subj.status, False, subj.name
        if subj.approved_by is not None:
            # a changed template needs a fresh approval, by someone who added none of them (urgent entries
            # included: their authorisation already ran past 24 h on the strength of the approval now undone)
            transitions.set_entry(s, subj, status, status="pending", approved_by=None, approved_at=None)
            status = "pending"
        elif subj.urgent and status == "active" and actor.name != subj.created_by:
            held = True  # an urgent entry acts on its creator's photos only until someone approves the rest
        s.add(
            Template(
                subject_id=subj_id,
                descriptor=self.uow.keyring.encrypt(wrapped_key, encode_descriptor(photo.descriptor)),
                model=photo.model,
                source_name=photo.source_name,
                source_sha256=photo.source_sha256,
                quality=float(photo.quality),
                added_by=actor.name,
                held=held,
            )
        )
        details = {
            "entry_id": subj_id,
            "photo": photo.source_name,
            "photo_sha256": photo.source_sha256,
            "status": status,
            **({"held_until_approved": True} if held else {}),
        }
        self.uow.audit(s, actor.name, "entry.enrol", f"{watchlist}/{name}", details)

    def all(self, watchlist: str | None = None, *, view: View = EVERYTHING) -> list[EntryInfo]:
        """Every entry (of ``watchlist`` only, when given) on the watchlists ``view`` sees, by watchlist and name,
        with its template count."""
        with self.uow.read() as s:
            q = (
                select(Subject, Watchlist.name, func.count(Template.id))
                .join(Watchlist, Subject.watchlist_id == Watchlist.id)
                .outerjoin(Template, Template.subject_id == Subject.id)
                .group_by(Subject.id, Watchlist.name)
                .order_by(Watchlist.name, Subject.name)
            )
            if watchlist is not None:
                wl = find_named(s, Watchlist, watchlist)
                q = q.where(Watchlist.id == (wl.id if wl is not None else -1))
            return [
                EntryInfo(
                    e.id,
                    wl,
                    e.name,
                    e.status,
                    e.urgent,
                    e.legal_basis,
                    e.issuing_authority,
                    e.reference,
                    e.scope,
                    aware(e.expires_at),
                    e.created_by,
                    e.approved_by,
                    n,
                    e.person_id,
                )
                for e, wl, n in s.execute(q).all()
                if view.watchlist(wl)
            ]

    def approve(self, watchlist: str, name: str, actor: Actor, now: datetime | None = None) -> str:
        """Activate a pending entry (or confirm an urgent one, lifting its 24 h limit, and releasing templates held
        until approval). Returns the new status. An atomic transition (:mod:`metrosight.store.transitions`).

        Raises:
            Forbidden: not an approver, or the approver recorded the entry or added one of its templates.
            PolicyError: nothing to approve, it expired meanwhile, or it changed under the approval (``Changed``).
        """
        require(actor, "approve watchlist entries", "approver")
        now = now or datetime.now(UTC)
        self.expire_due(now)
        view = self.uow.scoping.view(actor, ("approver",))
        with self.uow.write() as s:
            e = transitions.lock_entry(s, find_entry(s, watchlist, name, view).id)
            watchlist, name = s.get(Watchlist, e.watchlist_id).name, e.name  # type: ignore[union-attr]  # as stored
            can_approve(actor, e.created_by, e.status, e.urgent, e.approved_by, transitions.contributors(s, e))
            expires_at = e.requested_expires_at if e.urgent and e.requested_expires_at is not None else e.expires_at
            entry_id = e.id
            transitions.set_entry(
                s,
                e,
                e.status,
                Subject.expires_at.is_(None) | (Subject.expires_at > now),
                status="active",
                approved_by=actor.name,
                approved_at=now,
                expires_at=expires_at,
            )
            released = transitions.release_templates(s, entry_id)
            self.uow.audit(
                s,
                actor.name,
                "entry.approve",
                f"{watchlist}/{name}",
                {
                    "entry_id": entry_id,
                    "expires_at": aware(expires_at).isoformat() if expires_at else None,  # type: ignore[union-attr]
                    **({"templates_released": released} if released else {}),
                },
            )
            version.bump(s)
            return "active"

    def revoke(self, watchlist: str, name: str, actor: Actor, reason: str) -> int:
        """Stop matching an entry at once and destroy its templates. Returns how many templates were destroyed."""
        require(actor, "revoke watchlist entries", "approver", "admin")
        reason = free_text(reason, "reason")
        if not reason:
            raise PolicyError("a revocation needs a reason")
        view = self.uow.scoping.view(actor, ("approver", "admin"))
        with self.uow.write() as s:
            e = transitions.lock_entry(s, find_entry(s, watchlist, name, view).id)
            watchlist, name = s.get(Watchlist, e.watchlist_id).name, e.name  # type: ignore[union-attr]  # as stored
            if e.status in transitions.TERMINAL_ENTRY:
                raise PolicyError(f"entry {watchlist}/{name} is already {e.status}")
            entry_id = e.id
            transitions.set_entry(
                s,
                e,
                e.status,
                status="revoked",
                revoked_at=datetime.now(UTC),
                revoked_by=actor.name,
                revoke_reason=reason,
            )
            n = destroy_templates(s, entry_id)
            cancelled = outbox.cancel_concerning(s, outbox.of_entries(s, [entry_id]), "entry revoked")
            self.uow.audit(
                s,
                actor.name,
                "entry.revoke",
                f"{watchlist}/{name}",
                {
                    "entry_id": entry_id,
                    "reason": reason,
                    "templates_destroyed": n,
                    **({"webhook_deliveries_cancelled": cancelled} if cancelled else {}),
                },
            )
            version.bump(s)
            return n

    def expire_due(self, now: datetime | None = None) -> int:
        """Retire entries whose expiry has passed: status expired, templates destroyed. Returns how many."""
        now = now or datetime.now(UTC)
        with self.uow.read() as s:
            due = list(
                s.scalars(
                    select(Subject.id)
                    .where(
                        Subject.status.in_(("pending", "active")),
                        Subject.expires_at.is_not(None),
                        Subject.expires_at <= now,
                    )
                    .order_by(Subject.id)
                )
            )
        if not due:
            return 0
        done = 0
        with self.uow.write() as s:
            for eid in due:
                e = transitions.locked(s, Subject, eid)  # workers expire concurrently: one of them does it
                expired_at = aware(e.expires_at) if e is not None else None
                if e is None or e.status not in transitions.LIVE_ENTRY or expired_at is None or expired_at > now:
                    continue  # already retired, or approved meanwhile with a later expiry (or none)
                urgent_unapproved = bool(e.urgent and e.approved_by is None)
                transitions.set_entry(s, e, e.status, Subject.expires_at <= now, status="expired")
                n = destroy_templates(s, eid)
                details = {
                    "entry_id": eid,
                    "expired_at": expired_at.isoformat(),
                    "templates_destroyed": n,
                    "urgent_unapproved": urgent_unapproved,
                }
                cancelled = outbox.cancel_concerning(s, outbox.of_entries(s, [eid]), "entry expired", now)
                if cancelled:
                    details["webhook_deliveries_cancelled"] = cancelled
                self.uow.audit(s, SYSTEM, "entry.expire", f"entry:{eid}", details)
                done += 1
            if done:
                version.bump(s)
        return done
