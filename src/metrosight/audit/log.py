"""The append-only, hash-chained audit log and its verifier.

Each entry's hash is ``sha256(prev_hash || canonical-JSON(seq, at, actor, action, target, details))``; the first
entry chains from 64 zeros (or, after a retention purge, from the hash of the last purged entry, which the purge
records in its own entry). The newest ``seq`` and hash are also written to ``<home>/audit.head`` after every
append, so that deleting entries at the end of the log is detected too.

Entries are appended in the same database transaction as the action they record: no action without its entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from metrosight.audit.anchor import read_anchor, write_anchor
from metrosight.store.models import AuditEntry

log = logging.getLogger(__name__)

GENESIS = "0" * 64
AUDIT_LOCK_KEY = 0x6D73_6175_6469_74  # PostgreSQL advisory lock id of the chain ("msaudit")


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def link_hash(prev_hash: str, seq: int, at: str, actor: str, action: str, target: str | None, details: str) -> str:
    body = canonical({"seq": seq, "at": at, "actor": actor, "action": action, "target": target, "details": details})
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of :func:`verify`: ``ok``, how many entries were checked, and the first broken link."""

    ok: bool
    checked: int
    broken_seq: int | None = None
    reason: str | None = None


class AuditLog:
    """Appends entries; ``head_path`` (optional) is the anchor file that records the newest link."""

    def __init__(self, head_path: Path | None = None) -> None:
        self.head_path = head_path

    def append(
        self, session: Session, actor: str, action: str, target: str | None = None, details: dict | None = None
    ) -> AuditEntry:
        """Add one entry inside the caller's transaction (commit happens with the action).

        Appends are serialised across processes and machines: on PostgreSQL by a transaction-scoped advisory lock
        taken before the newest entry is read (``SELECT … FOR UPDATE`` alone does not do it under READ COMMITTED:
        a waiting writer would re-read the same old newest row and reuse its ``seq``); on SQLite by the write lock
        the store's write transactions take before their first read (``BEGIN IMMEDIATE``, see
        :mod:`metrosight.store.db`). Either way ``seq`` is unique and gap-free.
        """
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})
        last = session.execute(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1).with_for_update()).scalar()
        seq = (last.seq + 1) if last else 1
        prev = last.hash if last else self._anchor_prev()
        at = datetime.now(UTC).isoformat(timespec="microseconds")
        det = canonical(details or {})
        entry = AuditEntry(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            target=target,
            details=det,
            prev_hash=prev,
            hash=link_hash(prev, seq, at, actor, action, target, det),
        )
        session.add(entry)
        session.flush()
        session.info.setdefault("audit_heads", []).append((seq, entry.hash))
        return entry

    def _anchor_prev(self) -> str:
        return GENESIS

    def write_head(self, seq: int, digest: str) -> None:
        """Record the newest link in the anchor file (after the transaction committed; see
        :func:`metrosight.audit.anchor.write_anchor`: atomic, forward only, safe for concurrent writers)."""
        if self.head_path is None:
            return
        try:
            write_anchor(self.head_path, seq, digest)
        except OSError as exc:  # the action is committed: report, do not fail it
            log.error("cannot write the audit anchor %s: %s", self.head_path, exc)

    def read_head(self) -> tuple[int, str] | None:
        if self.head_path is None:
            return None
        return read_anchor(self.head_path)


def verify(entries: list[AuditEntry], head: tuple[int, str] | None = None) -> VerifyResult:
    """Check the chain of ``entries`` (ordered by ``id``, i.e. by insertion).

    Detects an edited entry (its hash no longer matches its content), a deleted entry (a gap in ``seq`` or a
    ``prev_hash`` that does not match the previous entry's hash), a reordering (``seq`` out of order), and deleted
    entries at the end (the anchor ``head`` is ahead of the log).
    """
    prev_hash: str | None = None
    prev_seq: int | None = None
    if entries and entries[0].seq != 1:
        # the log was purged for retention: a purge entry must vouch for exactly where it starts now
        first = entries[0]
        vouched = False
        for e in entries:
            if e.action == "audit.purge":
                d = json.loads(e.details)
                if d.get("through_seq") == first.seq - 1 and d.get("through_hash") == first.prev_hash:
                    vouched = True
                    break
        if not vouched:
            return VerifyResult(False, 0, first.seq, f"entries before {first.seq} are missing and no purge accounts for them")
    for i, e in enumerate(entries):
        if prev_seq is not None and e.seq != prev_seq + 1:
            if any(x.seq == prev_seq + 1 for x in entries[i + 1 :]) or e.seq <= prev_seq:
                return VerifyResult(
                    False, i, prev_seq + 1, f"entry {prev_seq + 1} is out of place: entries were reordered"
                )
            return VerifyResult(False, i, e.seq, f"entry {e.seq} follows entry {prev_seq}: entries between were deleted")
        expected_prev = prev_hash if prev_hash is not None else e.prev_hash
        if prev_hash is None and e.seq == 1 and e.prev_hash != GENESIS:
            return VerifyResult(False, 1, 1, "the first entry does not start the chain")
        if e.prev_hash != expected_prev:
            return VerifyResult(False, e.seq, e.seq, f"entry {e.seq} does not link to entry {prev_seq}")
        if link_hash(e.prev_hash, e.seq, e.at, e.actor, e.action, e.target, e.details) != e.hash:
            return VerifyResult(False, e.seq, e.seq, f"entry {e.seq} was altered after it was written")
        prev_hash, prev_seq = e.hash, e.seq
    if head is not None:
        hseq, hdigest = head
        if prev_seq is None or prev_seq < hseq:
            return VerifyResult(
                False, len(entries), (prev_seq or 0) + 1, f"entries after {prev_seq or 0} up to {hseq} were deleted"
            )
        match = next((e for e in entries if e.seq == hseq), None)
        if match is not None and match.hash != hdigest:
            return VerifyResult(False, len(entries), hseq, f"entry {hseq} differs from the recorded head")
    return VerifyResult(True, len(entries))
