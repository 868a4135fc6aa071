"""The store's unit of work: one database, one session factory, one audit chain.

Every repository of the store (:mod:`metrosight.store.repo`) shares one :class:`UnitOfWork`. A change runs in one
write transaction (:meth:`UnitOfWork.write`) and writes its audit entry in that same transaction
(:meth:`UnitOfWork.audit`): no action without its entry, no entry without its action. On SQLite a write transaction
takes the database's write lock before its first read (``BEGIN IMMEDIATE``), on PostgreSQL an advisory lock (see
:mod:`metrosight.store.db`); the audit chain's appends are serialised the same way (:mod:`metrosight.store.chain`).

After a transaction that deleted rows, the deleted bytes are made to leave the database's files (see
:meth:`UnitOfWork._scrub_after_delete`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Final

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from metrosight.audit.checkpoint import CheckpointFile
from metrosight.audit.log import AuditLog
from metrosight.policy.crypto import KeyRing
from metrosight.policy.scope import NO_GROUPS, CameraGroups
from metrosight.store.chain import AuditChain
from metrosight.store.db import Sessions
from metrosight.store.models import AuditEntry
from metrosight.store.scoping import Scoping

log = logging.getLogger(__name__)

# tables whose deleted rows must leave the database's files: template ciphertext (its watchlist key lives on for
# the other entries), wrapped watchlist keys, wrapped keys of removed webhook subscriptions (their URL and
# signing secret), reset TOTP factors (secret and key) and webhook deliveries cancelled by an erasure or purged
# (their bodies name the person); crops are files (unlinked), sightings and alerts hold no biometrics
SCRUBBED_TABLES = ("templates", "watchlist_keys", "webhook_keys", "totp_factors", "webhook_deliveries")
# a deletion in one of these tables removes rows of those by ON DELETE CASCADE, which the session does not see
_CASCADES: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {"subjects": ("templates",), "watchlists": ("templates", "watchlist_keys")}
)
PG_SCRUB_LOCK_TIMEOUT = "5s"  # VACUUM FULL waits this long for its ACCESS EXCLUSIVE lock, then retries later


def _deleted_tables(session: Session) -> set[str]:
    return session.info.setdefault("deleted_tables", set())


def _note_delete(state: ORMExecuteState) -> None:
    if state.is_delete:
        table = getattr(state.statement, "table", None)
        _deleted_tables(state.session).add(getattr(table, "name", "?"))


def _note_flush_delete(session: Session, _ctx: UOWTransaction) -> None:
    for obj in session.deleted:
        _deleted_tables(session).add(getattr(type(obj), "__tablename__", "?"))


def note_scrub(session: Session, table: str) -> None:
    """Have the old versions of rows of ``table`` that this transaction cleared (not deleted: e.g. an outbox body
    set to NULL) leave the database's files after the commit, as deleted rows do."""
    _deleted_tables(session).add(table)


def scrub_targets(deleted: set[str]) -> list[str]:
    """Which of :data:`SCRUBBED_TABLES` lost rows when rows of the tables ``deleted`` were deleted (directly or
    by cascade), in a fixed order."""
    hit = set(deleted)
    for t in deleted:
        hit.update(_CASCADES.get(t, ()))
    return [t for t in SCRUBBED_TABLES if t in hit]


class UnitOfWork:
    """The database, its sessions and the audit chain, shared by every repository of one store.

    Args:
        engine: the database (:func:`metrosight.store.db.open_engine`).
        keyring: encrypts templates and crops with a key per watchlist; the audit chain's keys derive from it.
        checkpoints: the audit log's signed checkpoint file (see :mod:`metrosight.audit.log`); None keeps none.
        groups: the configuration's camera groups, which users' scopes name (``scoping``: what every read of a
            scoped user is filtered by).
    """

    def __init__(
        self, engine: Engine, keyring: KeyRing, checkpoints: Path | None = None, groups: CameraGroups = NO_GROUPS
    ) -> None:
        self.engine = engine
        self.keyring = keyring
        self.scoping = Scoping(groups)
        chain_key, signer = keyring.audit_keys()
        self.log = AuditLog(chain_key, CheckpointFile(checkpoints, signer) if checkpoints is not None else None)
        self._chain = AuditChain(self.log)
        self._sessions = Sessions(engine)
        self._sessions.listen("after_commit", self._after_commit)
        self._scrub_pending: set[str] = set()  # PostgreSQL tables whose rewrite failed: retried at the next one
        self._sessions.listen("do_orm_execute", _note_delete)
        self._sessions.listen("after_flush", _note_flush_delete)
        self._sessions.listen("after_commit", self._scrub_after_delete)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return str(self.engine.dialect.name)

    def read(self) -> Session:
        """A session for reads (``with uow.read() as s: …``); it writes nothing."""
        return self._sessions()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: committed at the end of the ``with`` block, rolled back on an exception. It takes
        the write lock first (see :mod:`metrosight.store.db`)."""
        with self._sessions.begin() as s:
            yield s

    def audit(
        self, s: Session, actor: str, action: str, target: str | None = None, details: dict | None = None
    ) -> AuditEntry:
        """Append the audit entry of the change being made in ``s`` (a :meth:`write` transaction): it commits or
        rolls back with the change."""
        return self._chain.append(s, actor, action, target, details)

    def record(self, actor: str, action: str, target: str | None, details: dict) -> None:
        """Write a standalone audit entry (e.g. an identify call or a login) in its own transaction."""
        with self.write() as s:
            self.audit(s, actor, action, target, details)

    def checkpoint(self) -> None:
        """Sign the newest audit head this process wrote into the checkpoint file (at the end of a command)."""
        self.log.checkpoint()

    def _after_commit(self, session: Session) -> None:
        self.log.after_commit(session.info)

    def _scrub_after_delete(self, session: Session) -> None:
        """After a transaction that deleted rows (revoked or expired templates, a shredded key, purged alerts), make
        the deleted bytes leave the database's files: a revoked template's ciphertext could otherwise be carved and
        decrypted with its (still live) watchlist key.

        - SQLite: ``secure_delete`` has zeroed the deleted content in the new page images, but the WAL still holds
          the old ones until a checkpoint: move the WAL into the database and truncate it to zero bytes.
        - PostgreSQL: MVCC leaves deleted rows as dead tuples in the table's pages (plain VACUUM only marks the space
          reusable): ``VACUUM (FULL)`` rewrites each of :data:`SCRUBBED_TABLES` that lost rows (and its TOAST table
          and indexes) into new files without them; the old files are truncated. It takes an ACCESS EXCLUSIVE lock on
          the table for the rewrite (milliseconds for a gallery of 10 000 templates, see README) and cannot run in a
          transaction (autocommit connection). A rewrite that cannot get its lock within
          :data:`PG_SCRUB_LOCK_TIMEOUT` or fails is logged and retried after the next deletion. What remains in
          PostgreSQL's WAL segments and the filesystem's free blocks is described in README (At rest).
        """
        deleted = session.info.pop("deleted_tables", None)
        if not deleted:
            return
        if self.dialect == "postgresql":
            self._vacuum_full(scrub_targets(deleted))
            return
        if self.dialect != "sqlite":
            return
        try:
            with self.engine.connect() as c:
                busy, _log, _done = c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
            if busy:
                log.warning(
                    "the WAL could not be truncated after a deletion (a reader was busy); it will be at the "
                    "next checkpoint"
                )
        except SQLAlchemyError as exc:
            log.error("cannot checkpoint the WAL after a deletion: %s", exc)

    def _vacuum_full(self, tables: list[str]) -> None:
        """``VACUUM (FULL)`` each of ``tables`` (and any left over from a failed attempt) on PostgreSQL."""
        todo = [t for t in SCRUBBED_TABLES if t in self._scrub_pending or t in tables]
        if not todo:
            return
        self._scrub_pending.update(todo)  # until done
        try:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.exec_driver_sql(f"SET lock_timeout = '{PG_SCRUB_LOCK_TIMEOUT}'")
                try:
                    for t in todo:
                        # VACUUM by a role that does not own the table only warns and skips it: say so instead
                        if not c.exec_driver_sql(
                            "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass(%(t)s)",
                            {"t": t},
                        ).scalar():
                            log.error(
                                "deleted rows of %s stay in its files: the database user does not own the "
                                "table (run VACUUM (FULL) %s as its owner)",
                                t,
                                t,
                            )
                            self._scrub_pending.discard(t)
                            continue
                        c.exec_driver_sql(f"VACUUM (FULL) {t}")
                        self._scrub_pending.discard(t)
                finally:
                    c.exec_driver_sql("RESET lock_timeout")
        except SQLAlchemyError as exc:
            log.error(
                "deleted rows of %s are still in the table's files (VACUUM (FULL) failed: %s); retried after "
                "the next deletion",
                ", ".join(sorted(self._scrub_pending)),
                str(exc.orig if hasattr(exc, "orig") else exc).splitlines()[0],
            )
