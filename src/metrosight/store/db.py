"""Opening the database, bringing its schema up to date with Alembic, and the store's session factory.

Concurrency: a *write* transaction (``Sessions.begin()``) takes the database's write lock before its first read, so
that what it reads cannot change under it (read-check-write is atomic) and writers never deadlock: on SQLite it
starts with ``BEGIN IMMEDIATE`` (writers queue on the lock, waiting up to ``busy_timeout``), on PostgreSQL with a
transaction-scoped advisory lock (``pg_advisory_xact_lock``), the same for every process on the database. Row
locks and compare-and-set updates (:mod:`metrosight.store.transitions`) come on top. Writes are short; a plain
session (``Sessions()``) is for reads: one consistent snapshot that never waits for writers (SQLite's WAL,
PostgreSQL's MVCC).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from metrosight.core.credentials import safe_url
from metrosight.core.names import InvalidInput

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")


class StoreError(Exception):
    """The database cannot be opened, migrated or written; the message says which and why."""


SQLITE_BUSY_TIMEOUT_MS = 30_000  # a writer waits this long for the write lock before giving up (StoreError → 503)
WRITE = "metrosight_write"  # execution option of write transactions (BEGIN IMMEDIATE on SQLite)
PG_WRITE_LOCK = 0x6D73_7772_6974_65  # PostgreSQL advisory lock id of write transactions ("mswrite")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA secure_delete=ON")  # deleted templates are overwritten, not left in free pages
    cur.close()
    # pysqlite would start transactions itself, lazily, before the first INSERT/UPDATE only: a transaction's reads
    # ran outside it and a concurrent writer could change what was read. SQLAlchemy emits BEGIN instead (below).
    dbapi_conn.isolation_level = None


def _pg_begin(conn: Connection) -> None:
    """Write transactions queue on one advisory lock first (released at commit or rollback)."""
    if conn.get_execution_options().get(WRITE):
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_WRITE_LOCK})")


def _sqlite_begin(conn: Connection) -> None:
    """``BEGIN IMMEDIATE`` for write transactions (the write lock first), ``BEGIN`` (a read snapshot) otherwise."""
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")


def alembic_config(url: str) -> Config:
    """Alembic's configuration for ``url`` with metrosight's migrations.

    Alembic is imported here, not at the top: it costs ~0.3–0.8 s, and commands that refuse their input before
    opening the store (and every import of the CLI) should not pay it."""
    from alembic.config import Config  # alembic: only when migrating or checking migrations

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def normalize_url(url: str) -> str:
    """``postgresql://…`` (and ``postgres://…``) use psycopg 3, the driver metrosight installs; other URLs as given."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def open_engine(url: str, upgrade: bool = True) -> Engine:
    """Create an engine for ``url`` and (by default) run migrations to the latest revision.

    ``postgresql://`` URLs use psycopg 3 with a pool that checks connections before use (a restarted server is
    reconnected transparently).

    Raises:
        StoreError: the URL cannot be read, the database is unreachable, not a database, or a migration failed.
    """
    url = normalize_url(url)
    try:
        make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a bad port, an unencoded reserved character in the password
        raise StoreError(
            f"cannot open database {safe_url(url)}: the URL cannot be read — check its host and port, and "
            "percent-encode reserved characters in the user name and password (@ as %40, : as %3A, / as %2F)"
        ) from None
    try:
        # Pools sized for the service's thread pool (40 threads run blocking routes): connections are opened
        # lazily, so a worker process that uses one or two keeps one or two.
        if url.startswith("postgresql"):
            engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=30, pool_timeout=60)
        elif url.startswith("sqlite") and _sqlite_file(url):
            engine = create_engine(url, pool_size=20, max_overflow=30, pool_timeout=60)
        else:
            engine = create_engine(url)
        event.listen(engine, "before_cursor_execute", _refuse_nul)  # the same refusal on SQLite and PostgreSQL
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        elif engine.dialect.name == "postgresql":
            event.listen(engine, "begin", _pg_begin)
        if upgrade:
            from alembic import command  # heavy; see alembic_config

            with engine.begin() as conn:
                cfg = alembic_config(url)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot open database {safe_url(url)}: {exc.__class__.__name__}: {exc.args[0] if exc.args else exc}"
        ) from None
    return engine


def upgrade_schema(url: str) -> str | None:
    """Create or migrate the schema of the database at ``url`` to the newest revision (:func:`open_engine`); the
    revision it is at now.

    Raises:
        StoreError: the database cannot be reached or migrated (one line).
    """
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    return None if head is None else str(head)


def _refuse_nul(
    conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    """No text with a NUL character is written or looked up: PostgreSQL cannot hold one (a server error that
    became a 500 or a traceback) while SQLite would store it. Raises InvalidInput (422 in the API, one line in the
    CLI); names, ids and free text are refused earlier by their rules (:mod:`metrosight.core.names`)."""
    for row in parameters if executemany else (parameters,):
        for v in (row.values() if isinstance(row, dict) else row) or ():
            if isinstance(v, str) and "\x00" in v:
                raise InvalidInput(f"{v[:40]!r} contains a NUL character (U+0000), which cannot be stored or looked up")


def _sqlite_file(url: str) -> bool:
    db = make_url(url).database or ""
    return bool(db) and db != ":memory:" and not db.startswith("file::memory:")


class Sessions:
    """The store's session factory: ``sessions()`` for reads, ``sessions.begin()`` for a write transaction
    (committed at the end of the ``with`` block, rolled back on an exception). Every change goes through
    ``begin()``: on SQLite only it takes the write lock before the transaction's first read (see the module
    docstring); a change made through a plain session could fail with ``database is locked`` under load."""

    def __init__(self, engine: Engine) -> None:
        self.read = sessionmaker(engine, expire_on_commit=False)
        self.write = sessionmaker(engine.execution_options(**{WRITE: True}), expire_on_commit=False)

    def __call__(self) -> Session:
        return self.read()

    def begin(self) -> AbstractContextManager[Session]:  # a context manager yielding the Session
        return self.write.begin()

    def listen(self, name: str, fn: Callable[..., Any]) -> None:
        """Register a session event (e.g. ``after_commit``) on reads and writes alike."""
        event.listen(self.read, name, fn)
        event.listen(self.write, name, fn)


def session_factory(engine: Engine) -> Sessions:
    return Sessions(engine)
