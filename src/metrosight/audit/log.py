"""The append-only, keyed hash chain of the audit log, its signed checkpoints, and its verifier.

Each entry's hash is ``HMAC-SHA256(key, prev_hash || canonical-JSON(seq, at, actor, action, target, details))``
with a key derived from the installation's master key (never stored in the database); the first entry chains from
64 zeros (after a retention purge, from the hash of the last purged entry, which the purge records in its own
entry and in a signed checkpoint). Whoever can write the database but not read the key cannot produce a valid
link, so an edited row cannot be hidden by recomputing the chain around it.

The head of the chain is also written, signed with an Ed25519 key derived from the same master key, to the
append-only checkpoint file (:mod:`metrosight.audit.checkpoint`): at a process's first append, then every
:attr:`AuditLog.every` entries or :attr:`AuditLog.every_seconds`, and when a command or the service ends
(:meth:`AuditLog.checkpoint`). Deleting entries at the end of the log (or all of them), re-chaining, or removing or
truncating the checkpoint file is then detected by :func:`verify`.

Logs written before the chain was keyed (unkeyed SHA-256 links) stay verifiable: the first keyed append records an
``audit.keyed`` entry naming the last unkeyed entry, and a ``legacy`` checkpoint; only entries up to there are
checked without the key.

Entries are appended in the same database transaction as the action they record: no action without its entry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import socket
import threading
import time
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from metrosight.audit.checkpoint import Checkpoint, CheckpointFile, CheckpointRead

log = logging.getLogger(__name__)

GENESIS = "0" * 64
AUDIT_LOCK_KEY = 0x6D73_6175_6469_74  # PostgreSQL advisory lock id of the chain ("msaudit")
KEYED_ACTION = "audit.keyed"
LEGACY_META = "audit_legacy_through"  # set by migration 0007: the last entry of an unkeyed log
STARTED_ACTION = "audit.checkpoints_started"  # a checkpoint file joined a log that has entries (another replica)
# what a transaction notes in its session's ``info`` for :meth:`AuditLog.after_commit`
HEADS = "audit_heads"  # [(seq, hash)] appended
DUE = "audit_checkpoints"  # [(kind, seq, hash, fields)] checkpoints due once it commits (purge, legacy, started)
REGISTERED = "audit_file_registered"  # this process's checkpoint file was registered in the log


def checkpoint_file_id(path: Any) -> str:
    """Which checkpoint file this is, across replicas: ``host:absolute path``."""
    return f"{socket.gethostname()}:{os.path.abspath(path)}"


class ChainEntry(Protocol):
    """One stored entry of the chain (the store's ``audit_log`` row): what hashing and verification read."""

    seq: int
    at: str
    actor: str
    action: str
    target: str | None
    details: str
    prev_hash: str
    hash: str


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def link_hash(
    prev_hash: str,
    seq: int,
    at: str,
    actor: str,
    action: str,
    target: str | None,
    details: str,
    key: bytes | None = None,
) -> str:
    """The link of one entry: HMAC-SHA256 under ``key``; plain SHA-256 for the unkeyed links of old logs."""
    body = canonical({"seq": seq, "at": at, "actor": actor, "action": action, "target": target, "details": details})
    data = (prev_hash + body).encode("utf-8")
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def entry_hash(e: ChainEntry, key: bytes | None) -> str:
    return link_hash(e.prev_hash, e.seq, e.at, e.actor, e.action, e.target, e.details, key)


def next_link(
    last: ChainEntry | None, actor: str, action: str, target: str | None, details: dict, key: bytes | None
) -> dict[str, Any]:
    """The fields of the entry that follows ``last`` (None: the first entry ever), stamped now and keyed with
    ``key``: ``seq, at, actor, action, target, details, prev_hash, hash``."""
    seq = (last.seq + 1) if last else 1
    prev = last.hash if last else GENESIS
    at = datetime.now(UTC).isoformat(timespec="microseconds")
    det = canonical(details)
    return {
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "target": target,
        "details": det,
        "prev_hash": prev,
        "hash": link_hash(prev, seq, at, actor, action, target, det, key),
    }


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of :func:`verify`: ``ok``, how many entries were checked, and the first broken link."""

    ok: bool
    checked: int
    broken_seq: int | None = None
    reason: str | None = None
    checkpoints: int = 0
    mismatches: tuple[str, ...] = ()  # governed rows the keyed log does not back (:mod:`metrosight.audit.governed`)


class AuditLog:
    """The chain's key and its signed checkpoints of the head: what a process appended (entries are appended by
    the store, :mod:`metrosight.store.chain`, in the transaction of the action they record) and when the next
    checkpoint is due.

    Args:
        key: the HMAC-SHA256 chain key (32 bytes, from :meth:`metrosight.policy.crypto.KeyRing.audit_keys`).
        checkpoints: the checkpoint file; None keeps none (then only the keyed chain protects the log).
        every: write a checkpoint after this many new entries …
        every_seconds: … or when this long has passed since the last one (at the next commit, or by a timer).
    """

    def __init__(
        self, key: bytes, checkpoints: CheckpointFile | None = None, every: int = 16, every_seconds: float = 10.0
    ) -> None:
        self.key = key
        self.checkpoints = checkpoints
        self.every = every
        self.every_seconds = every_seconds
        self._lock = threading.Lock()
        self._pending: tuple[int, str] | None = None  # newest committed head of this process
        self._written_seq = 0  # newest head this process checkpointed
        self._written_at: float | None = None
        self._extra: list[tuple[str, int, str, dict]] = []  # purge/legacy checkpoints due after commit
        self.fresh = False  # this process started the chain (first entry, or first keyed entry after upgrade)
        self.file_seen = False  # the checkpoint file held lines (or was registered) when this process looked
        self._timer: threading.Timer | None = None

    def after_commit(self, info: MutableMapping[str, Any]) -> None:
        """Called when a transaction that appended entries committed (``info``: what the transaction noted, its
        session's ``info``): checkpoints when one is due. A checkpoint that cannot be written (full disk,
        permissions) is logged; the committed action stands."""
        heads = info.pop(HEADS, None)
        extra = info.pop(DUE, None)
        if info.pop(REGISTERED, False):
            self.file_seen = True
        if not heads:
            return
        with self._lock:
            seq, digest = max(heads)
            if self._pending is None or seq > self._pending[0]:
                self._pending = (seq, digest)
            self._extra.extend(extra or [])
            due = (
                self._written_at is None
                or self._extra
                or seq - self._written_seq >= self.every
                or time.monotonic() - self._written_at >= self.every_seconds
            )
        if due:
            self.checkpoint()
        else:
            self._arm_timer()

    def _arm_timer(self) -> None:
        """Checkpoint what is still unsigned after :attr:`every_seconds` even if nothing else is committed (a
        service that goes quiet); one timer at a time, a daemon thread (a command's exit does not wait for it)."""
        with self._lock:
            if self._timer is not None:
                return
            self._timer = threading.Timer(self.every_seconds, self._timed)
            self._timer.daemon = True
            self._timer.start()

    def _timed(self) -> None:
        with self._lock:
            self._timer = None
        self.checkpoint()

    def note_purge(self, info: MutableMapping[str, Any], through_seq: int, through_hash: str) -> None:
        """Inside the purge's transaction (``info``: its session's): a signed ``purge`` checkpoint is written once it
        commits."""
        info.setdefault(DUE, []).append(
            ("purge", through_seq, through_hash, {"through_seq": through_seq, "through_hash": through_hash})
        )

    def checkpoint(self) -> None:
        """Sign and append the newest head this process committed (if not yet written), after any purge or legacy
        checkpoints due. Called at the end of every CLI command and at service shutdown as well."""
        if self.checkpoints is None:
            return
        with self._lock:
            extra, self._extra = self._extra, []
            pending = self._pending
            try:
                for kind, seq, digest, fields in extra:
                    self.checkpoints.append(seq, digest, kind, **fields)
                if pending is not None and pending[0] > self._written_seq:
                    if self.fresh or self.checkpoints.has_any():
                        self.checkpoints.append(pending[0], pending[1])
                    else:  # the log has entries but the file is gone: start it again, marked as such
                        log.error(
                            "the audit checkpoint file %s is missing: started again at entry %d; "
                            "`metrosight audit verify` reports this",
                            self.checkpoints.path,
                            pending[0],
                        )
                        self.checkpoints.append(pending[0], pending[1], "reopened")
                    self._written_seq = pending[0]
                self._written_at = time.monotonic()
            except OSError as exc:
                self._extra = extra + self._extra  # try again at the next commit
                log.error("cannot write the audit checkpoint file %s: %s", self.checkpoints.path, exc)

    def read_checkpoints(self) -> CheckpointRead | None:
        return None if self.checkpoints is None else self.checkpoints.read()


def _fail(checked: int, seq: int | None, reason: str, cps: int = 0) -> VerifyResult:
    return VerifyResult(False, checked, seq, reason, cps)


def verify(
    entries: Sequence[ChainEntry],
    key: bytes | None,
    checkpoints: CheckpointRead | None = None,
    checkpoint_path: str | None = None,
    has_audited_rows: bool = False,
    unkeyed_through: int | None = None,
) -> VerifyResult:
    """Check the chain of ``entries`` (ordered by ``id``, i.e. by insertion) and the signed checkpoints.

    Args:
        entries: the whole log.
        key: the chain's HMAC key (None checks only unkeyed links: for tests of old logs).
        checkpoints: what the checkpoint file holds (None: the store keeps no checkpoint file).
        checkpoint_path: named in messages.
        has_audited_rows: the database holds rows whose creation is always audited (users): an empty log then
            means its entries were deleted.
        unkeyed_through: where migration 0007 recorded an old, unkeyed log to end, while no keyed entry follows
            yet (``meta.audit_legacy_through``): such a log has no checkpoint file yet and is checked unkeyed.

    Detects an edited entry (its link no longer matches its content under the key), a deleted entry (a gap in
    ``seq`` or a ``prev_hash`` that does not match), a reordering, entries deleted at the end or all of them, a
    re-chained log (a signed checkpoint's head differs), a start that no purge accounts for, and a missing,
    truncated, edited or forged checkpoint file.
    """
    cps = checkpoints.checkpoints if checkpoints is not None else []
    ncp = len(cps)
    where = checkpoint_path or "the checkpoint file"
    not_keyed_yet = bool(entries) and unkeyed_through is not None and entries[-1].seq == unkeyed_through and not cps
    bad = _check_file(entries, checkpoints, where, not_keyed_yet)
    if bad is not None:
        return bad
    if not entries:
        return _check_empty(cps, where, has_audited_rows)
    legacy = _legacy_through(entries, key, (unkeyed_through or 0) if not_keyed_yet else 0, not_keyed_yet)
    if isinstance(legacy, VerifyResult):
        return legacy
    bad = _check_start(entries, ncp) or _check_links(entries, key, legacy, ncp) or _check_heads(entries, cps, where)
    return bad or VerifyResult(True, len(entries), checkpoints=ncp)


def _check_file(
    entries: Sequence[ChainEntry], checkpoints: CheckpointRead | None, where: str, not_keyed_yet: bool
) -> VerifyResult | None:
    """A checkpoint file that cannot be read, or is missing while the log holds entries."""
    if checkpoints is None:
        return None
    ncp = len(checkpoints.checkpoints)
    if checkpoints.problem:
        return _fail(0, None, checkpoints.problem, ncp)
    if not checkpoints.exists and entries and not not_keyed_yet:
        return _fail(
            0,
            None,
            f"{where} is missing while the log holds {len(entries)} entries: it was removed (every "
            "log is checkpointed from its first entry)",
            ncp,
        )
    return None


def _check_empty(cps: Sequence[Checkpoint], where: str, has_audited_rows: bool) -> VerifyResult:
    """An empty log: fine only if nothing vouches for entries (signed checkpoints, audited rows)."""
    ncp = len(cps)
    if cps:
        top = max(cps, key=lambda c: c.seq)
        return _fail(0, 1, f"the log is empty but {where} vouches for {top.seq} entries: all were deleted", ncp)
    if has_audited_rows:
        return _fail(
            0,
            1,
            "the log is empty but the database holds users, whose creation is always audited: its entries were deleted",
            ncp,
        )
    return VerifyResult(True, 0)


def _legacy_through(
    entries: Sequence[ChainEntry], key: bytes | None, default: int, not_keyed_yet: bool
) -> int | VerifyResult:
    """Where unkeyed links end: at the first ``audit.keyed`` entry that is itself validly keyed (``default``
    when there is none); a failure when that entry is misplaced."""
    if key is None or not_keyed_yet:
        return default
    for e in entries:
        if e.action == KEYED_ACTION and entry_hash(e, key) == e.hash:
            through = int(json.loads(e.details).get("legacy_through", 0))
            if e.seq != through + 1:
                return _fail(0, e.seq, f"entry {e.seq} claims an unkeyed log up to {through}: misplaced")
            return through
    return default


def _check_start(entries: Sequence[ChainEntry], ncp: int) -> VerifyResult | None:
    """A log that does not start at 1 was purged for retention: a purge entry (keyed) must vouch for exactly
    where it starts now."""
    first = entries[0]
    if first.seq == 1:
        return None
    for e in entries:
        if e.action == "audit.purge":
            d = json.loads(e.details)
            if d.get("through_seq") == first.seq - 1 and d.get("through_hash") == first.prev_hash:
                return None
    return _fail(0, first.seq, f"entries before {first.seq} are missing and no purge accounts for them", ncp)


def _check_links(
    entries: Sequence[ChainEntry], key: bytes | None, legacy_through: int, ncp: int
) -> VerifyResult | None:
    """Every entry follows the one before (no gap, no reordering) and its keyed link matches its content."""
    prev_hash: str | None = None
    prev_seq: int | None = None
    for i, e in enumerate(entries):
        if prev_seq is not None and e.seq != prev_seq + 1:
            if any(x.seq == prev_seq + 1 for x in entries[i + 1 :]) or e.seq <= prev_seq:
                return _fail(i, prev_seq + 1, f"entry {prev_seq + 1} is out of place: entries were reordered", ncp)
            return _fail(i, e.seq, f"entry {e.seq} follows entry {prev_seq}: entries between were deleted", ncp)
        if prev_hash is None and e.seq == 1 and e.prev_hash != GENESIS:
            return _fail(1, 1, "the first entry does not start the chain", ncp)
        if prev_hash is not None and e.prev_hash != prev_hash:
            return _fail(i, e.seq, f"entry {e.seq} does not link to entry {prev_seq}", ncp)
        if entry_hash(e, key if e.seq > legacy_through else None) != e.hash:
            return _fail(
                i, e.seq, f"entry {e.seq} was altered after it was written (its keyed link does not match)", ncp
            )
        prev_hash, prev_seq = e.hash, e.seq
    return None


def _check_heads(entries: Sequence[ChainEntry], cps: Sequence[Checkpoint], where: str) -> VerifyResult | None:
    """The signed checkpoints: none reopened, none beyond the log's end, each head equal to its entry's hash."""
    ncp = len(cps)
    reopened = next((c for c in cps if c.kind == "reopened"), None)
    if reopened is not None:
        return _fail(
            len(entries),
            None,
            f"{where} was removed and started again at entry {reopened.seq} (checkpoint "
            f"{reopened.n}): entries up to {reopened.seq} are not covered by the signed checkpoints",
            ncp,
        )
    by_seq = {e.seq: e for e in entries}
    last_seq = entries[-1].seq
    top = max(cps, key=lambda c: c.seq, default=None)
    if top is not None and top.seq > last_seq:
        return _fail(
            len(entries),
            last_seq + 1,
            f"entries after {last_seq} up to {top.seq} were deleted (signed checkpoint {top.n} in {where})",
            ncp,
        )
    for c in cps:
        hit = by_seq.get(c.seq)
        if hit is not None and hit.hash != c.head:
            return _fail(
                len(entries),
                c.seq,
                f"entry {c.seq} differs from signed checkpoint {c.n}: the log was re-chained or rewritten",
                ncp,
            )
    return None
