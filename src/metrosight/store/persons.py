"""Persons in the store: which watchlist entries are one human being, and which look-alikes are not.

An entry (one authorisation on one watchlist) belongs to one person; a person may be on several watchlists.
Linking two persons (their entries become one person's) and recording that two persons are different people are
operator decisions: each is audited in the same transaction, and linking changes what the matcher treats as one
candidate, so it bumps the gallery version (running cameras pick it up like an approval).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from metrosight.policy.rules import Actor, Forbidden, PolicyError, require
from metrosight.store import version
from metrosight.store.errors import NotFound
from metrosight.store.models import Person, PersonDistinct, Subject, Watchlist
from metrosight.store.uow import UnitOfWork

RECORDERS = ("approver", "admin")  # who links, unlinks and separates persons (each within their scope)


@dataclass(frozen=True, slots=True)
class PersonEntry:
    entry_id: int
    watchlist: str
    name: str
    status: str
    reference: str | None


@dataclass(frozen=True, slots=True)
class PersonInfo:
    """A person, their entries (one per watchlist authorisation) and the persons recorded as different people."""

    id: int
    name: str
    entries: tuple[PersonEntry, ...]
    distinct_from: tuple[int, ...]


def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


class PersonRepository:
    """Persons (``store.persons``); linking changes what the matcher treats as one candidate (gallery version)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def _person(self, s: Session, person_id: int, actor: Actor | None = None) -> Person:
        """The person ``person_id``; with ``actor``, one whose every entry is on a watchlist of the actor's scope
        (approver or admin): NotFound when none is, Forbidden when some are not."""
        p = s.get(Person, person_id)
        if p is None:
            raise NotFound(f"no person {person_id} (see `metrosight person list`)")
        if actor is not None:
            view = self.uow.scoping.view(actor, RECORDERS)
            lists = s.scalars(
                select(Watchlist.name)
                .join(Subject, Subject.watchlist_id == Watchlist.id)
                .where(Subject.person_id == p.id)
            ).all()
            seen = [w for w in lists if view.watchlist(w)]
            if lists and not seen:
                raise NotFound(f"no person {person_id} (see `metrosight person list`)")
            if len(seen) < len(lists):
                raise Forbidden(
                    f"person {person_id} has entries on watchlists outside {actor.name}'s scope; an approver or admin "
                    "whose scope covers them must do this"
                )
        return p

    def all(self, person_id: int | None = None) -> list[PersonInfo]:
        """Persons with their entries, by id (only ``person_id`` when given; NotFound if it does not exist)."""
        with self.uow.read() as s:
            if person_id is not None:
                self._person(s, person_id)
            q = (
                select(Person, Subject, Watchlist.name)
                .outerjoin(Subject, Subject.person_id == Person.id)
                .outerjoin(Watchlist, Watchlist.id == Subject.watchlist_id)
                .order_by(Person.id, Watchlist.name, Subject.id)
            )
            if person_id is not None:
                q = q.where(Person.id == person_id)
            rows = s.execute(q).all()
            pairs = list(s.execute(select(PersonDistinct.person_a, PersonDistinct.person_b)).all())
        distinct: dict[int, list[int]] = {}
        for a, b in pairs:
            distinct.setdefault(a, []).append(b)
            distinct.setdefault(b, []).append(a)
        by_id: dict[int, tuple[Person, list[PersonEntry]]] = {}
        for p, e, wl in rows:
            _, entries = by_id.setdefault(p.id, (p, []))
            if e is not None:
                entries.append(PersonEntry(e.id, wl, e.name, e.status, e.reference))
        return [
            PersonInfo(p.id, p.name, tuple(entries), tuple(sorted(distinct.get(p.id, []))))
            for p, entries in by_id.values()
            if entries or person_id is not None
        ]

    def person_of(self, watchlist: str, name: str) -> int:
        """The person of the entry ``name`` on ``watchlist`` (NotFound if there is no such entry)."""
        with self.uow.read() as s:
            pid = s.scalar(
                select(Subject.person_id)
                .join(Watchlist, Watchlist.id == Subject.watchlist_id)
                .where(Watchlist.name == watchlist, Subject.name == name)
            )
        if pid is None:
            raise NotFound(f"no entry {name!r} on watchlist {watchlist!r}")
        return int(pid)

    def distinct_pairs(self) -> set[tuple[int, int]]:
        """Pairs of persons recorded as different people, each as ``(smaller id, larger id)``."""
        with self.uow.read() as s:
            return {(int(a), int(b)) for a, b in s.execute(select(PersonDistinct.person_a, PersonDistinct.person_b))}

    def link(self, keep: int, other: int, actor: Actor, reason: str) -> int:
        """Record that persons ``keep`` and ``other`` are one human being: every entry of ``other`` moves to
        ``keep`` (approvals stay per entry). Returns how many entries moved.

        Raises:
            Forbidden: not an approver or admin. NotFound: no such person. PolicyError: the same person, no
            reason, or the two were recorded as different people.
        """
        require(actor, "link persons", "approver", "admin")
        if not reason.strip():
            raise PolicyError("linking two persons needs a reason (it is recorded in the audit log)")
        if keep == other:
            raise PolicyError(f"person {keep} cannot be linked to itself")
        with self.uow.write() as s:
            a, b = self._person(s, keep, actor), self._person(s, other, actor)
            lo, hi = _pair(keep, other)
            if s.scalar(select(PersonDistinct.id).where(PersonDistinct.person_a == lo, PersonDistinct.person_b == hi)):
                raise PolicyError(
                    f"persons {keep} and {other} were recorded as different people; they cannot be linked"
                )
            moved = list(s.scalars(select(Subject).where(Subject.person_id == other)))
            for e in moved:
                e.person_id = keep
            # what was recorded about the other person now holds for the linked one
            for d in list(
                s.scalars(
                    select(PersonDistinct).where(
                        or_(PersonDistinct.person_a == other, PersonDistinct.person_b == other)
                    )
                )
            ):
                third = d.person_b if d.person_a == other else d.person_a
                s.delete(d)
                s.flush()
                lo3, hi3 = _pair(keep, third)
                if (
                    third != keep
                    and s.scalar(
                        select(PersonDistinct.id).where(PersonDistinct.person_a == lo3, PersonDistinct.person_b == hi3)
                    )
                    is None
                ):
                    s.add(PersonDistinct(person_a=lo3, person_b=hi3, reason=d.reason, created_by=d.created_by))
            self.uow.audit(
                s,
                actor.name,
                "person.link",
                f"person:{keep}",
                {
                    "person_id": keep,
                    "name": a.name,
                    "linked_person_id": other,
                    "linked_name": b.name,
                    "entries_moved": [e.id for e in moved],
                    "reason": reason,
                },
            )
            version.bump(s)
            return len(moved)

    def unlink_entry(self, watchlist: str, name: str, actor: Actor, reason: str) -> int:
        """Give the entry ``name`` on ``watchlist`` a person of its own (undoes a wrong link). Returns the new
        person's id.

        Raises:
            Forbidden, NotFound, PolicyError (no reason, or the entry is already its person's only entry).
        """
        require(actor, "unlink persons", "approver", "admin")
        if not reason.strip():
            raise PolicyError("unlinking needs a reason (it is recorded in the audit log)")
        with self.uow.write() as s:
            e = s.scalar(
                select(Subject)
                .join(Watchlist, Watchlist.id == Subject.watchlist_id)
                .where(Watchlist.name == watchlist, Subject.name == name)
            )
            if e is None or not self.uow.scoping.view(actor, RECORDERS).watchlist(watchlist):
                raise NotFound(f"no entry {name!r} on watchlist {watchlist!r}")
            others = s.scalar(select(Subject.id).where(Subject.person_id == e.person_id, Subject.id != e.id).limit(1))
            if others is None:
                raise PolicyError(f"entry {watchlist}/{name} is already the only entry of person {e.person_id}")
            old = e.person_id
            p = Person(name=e.name, created_by=actor.name)
            s.add(p)
            s.flush()
            e.person_id = p.id
            self.uow.audit(
                s,
                actor.name,
                "person.unlink",
                f"{watchlist}/{name}",
                {"entry_id": e.id, "from_person_id": old, "person_id": p.id, "reason": reason},
            )
            version.bump(s)
            return p.id

    def mark_distinct(self, a: int, b: int, actor: Actor, reason: str) -> None:
        """Record that persons ``a`` and ``b`` are different people (look-alikes): enrolment no longer warns
        about the pair and they cannot be linked. Idempotent.

        Raises:
            Forbidden, NotFound, PolicyError (the same person, or no reason).
        """
        require(actor, "record distinct persons", "approver", "admin")
        if not reason.strip():
            raise PolicyError("recording two persons as different needs a reason (it is recorded in the audit log)")
        if a == b:
            raise PolicyError(
                f"person {a} is one person; to separate an entry from it use `metrosight person unlink WATCHLIST NAME`"
            )
        lo, hi = _pair(a, b)
        with self.uow.write() as s:
            pa, pb = self._person(s, lo, actor), self._person(s, hi, actor)
            if s.scalar(select(PersonDistinct.id).where(PersonDistinct.person_a == lo, PersonDistinct.person_b == hi)):
                return
            s.add(
                PersonDistinct(
                    person_a=lo, person_b=hi, reason=reason, created_by=actor.name, created_at=datetime.now(UTC)
                )
            )
            self.uow.audit(
                s,
                actor.name,
                "person.distinct",
                f"person:{lo}",
                {"person_a": lo, "name_a": pa.name, "person_b": hi, "name_b": pb.name, "reason": reason},
            )
