"""Appending to the keyed audit chain (:mod:`metrosight.audit.log`) inside the store's transactions.

An entry is appended in the transaction of the action it records (:meth:`metrosight.store.uow.UnitOfWork.audit`).
Appends are serialised across processes and machines: on PostgreSQL by a transaction-scoped advisory lock taken
before the newest entry is read (``SELECT … FOR UPDATE`` alone does not do it under READ COMMITTED: a waiting writer
would re-read the same old newest row and reuse its ``seq``); on SQLite by the write lock the store's write
transactions take before their first read (``BEGIN IMMEDIATE``, see :mod:`metrosight.store.db`). Either way ``seq``
is unique and gap-free.
"""

from __future__ import annotations

import json

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from metrosight.audit.log import (
    AUDIT_LOCK_KEY,
    DUE,
    HEADS,
    KEYED_ACTION,
    LEGACY_META,
    REGISTERED,
    STARTED_ACTION,
    AuditLog,
    checkpoint_file_id,
    entry_hash,
    next_link,
)
from metrosight.store.models import AuditEntry, Meta, User, Watchlist


def _empty_installation(session: Session) -> bool:
    """At the first entry ever: no users but the one being added, and no watchlist (else the log was emptied)."""
    users = session.scalar(select(func.count()).select_from(User)) or 0
    return users <= 1 and not session.scalar(select(func.count()).select_from(Watchlist))


class AuditChain:
    """Appends keyed entries of ``log`` (its key, its checkpoint file and this process's state) to ``audit_log``."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    def append(
        self, session: Session, actor: str, action: str, target: str | None = None, details: dict | None = None
    ) -> AuditEntry:
        """Add one entry inside the caller's write transaction (committed with the action); see the module
        docstring for how appends are serialised."""
        lg = self.log
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})
        last = session.execute(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1).with_for_update()).scalar()
        if last is None:
            lg.fresh = lg.fresh or _empty_installation(session)
        elif entry_hash(last, lg.key) != last.hash and self._starts_keying(session, last):
            last = self._add(
                session, last, "system", KEYED_ACTION, None, {"legacy_through": last.seq, "legacy_head": last.hash}
            )
            session.info.setdefault(DUE, []).append(("legacy", last.seq, last.hash, {"legacy_through": last.seq - 1}))
            lg.fresh = True
        elif not (lg.fresh or lg.file_seen or session.info.get(HEADS)) and lg.checkpoints is not None:
            last = self._join(session, last)  # this process's first append to a log with entries
        return self._add(session, last, actor, action, target, details or {})

    def _join(self, session: Session, last: AuditEntry) -> AuditEntry:
        """At this process's first append to a log that has entries: make sure its checkpoint file is registered in
        the keyed log (``audit.checkpoints_started``, keyed, so a database writer cannot forge or drop it unseen).

        A file that holds no line yet is either new — a replica on another host, or another home, joining the
        installation — or was removed; the registration tells which. A new file is registered now, in the action's
        transaction, and starts with a ``started`` checkpoint of that entry; a registered file that is empty was
        removed, and :meth:`AuditLog.checkpoint` starts it again marked ``reopened`` (reported by ``verify``). A
        file that holds lines but is not registered (written before registration existed, or by the process that
        started the log) is registered once, so that its removal is told apart from a new replica afterwards.
        """
        cps = self.log.checkpoints
        if cps is None:
            return last
        has_lines = cps.has_any()
        ident = checkpoint_file_id(cps.path)
        for e in session.scalars(select(AuditEntry).where(AuditEntry.action == STARTED_ACTION)):
            if entry_hash(e, self.log.key) == e.hash and json.loads(e.details).get("file") == ident:
                self.log.file_seen = True
                return last  # registered: an empty file was removed since
        session.info[REGISTERED] = True  # once it commits (a rolled-back action registers nothing)
        last = self._add(
            session,
            last,
            "system",
            STARTED_ACTION,
            str(cps.path),
            {"file": ident, "from_seq": last.seq + 1, "had_checkpoints": has_lines},
        )
        if not has_lines:
            session.info.setdefault(DUE, []).append(("started", last.seq, last.hash, {"file": ident}))
        return last

    def _starts_keying(self, session: Session, last: AuditEntry) -> bool:
        """The newest entry is not keyed: either the log predates keying — an unkeyed link, exactly where
        migration 0007 recorded the unkeyed log to end (``meta.audit_legacy_through``, used once), and no
        checkpoint file yet — or it was tampered with (then nothing is vouched for: verification reports it)."""
        if entry_hash(last, None) != last.hash:
            return False
        if self.log.checkpoints is not None and self.log.checkpoints.has_any():
            return False
        mark = session.get(Meta, LEGACY_META)
        if mark is None or mark.value != str(last.seq):
            return False
        session.delete(mark)
        return True

    def _add(
        self, session: Session, last: AuditEntry | None, actor: str, action: str, target: str | None, details: dict
    ) -> AuditEntry:
        entry = AuditEntry(**next_link(last, actor, action, target, details, self.log.key))
        session.add(entry)
        session.flush()
        session.info.setdefault(HEADS, []).append((entry.seq, entry.hash))
        return entry
