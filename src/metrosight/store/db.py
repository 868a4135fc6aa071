"""Opening the database and bringing its schema up to date with Alembic."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")


class StoreError(Exception):
    """The database cannot be opened, migrated or written; the message says which and why."""


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA secure_delete=ON")  # deleted templates are overwritten, not left in free pages
    cur.close()


def alembic_config(url: str) -> Config:
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
        StoreError: the database is unreachable, not a database, or a migration failed.
    """
    url = normalize_url(url)
    try:
        if url.startswith("postgresql"):
            engine = create_engine(url, future=True, pool_pre_ping=True, pool_size=5, max_overflow=5)
        else:
            engine = create_engine(url, future=True)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        if upgrade:
            with engine.begin() as conn:
                cfg = alembic_config(url)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open database {safe_url(url)}: {exc.__class__.__name__}: {exc.args[0] if exc.args else exc}") from None
    return engine


def safe_url(url: str) -> str:
    """``url`` with any password hidden."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown as given, minus nothing to hide
        return url


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, future=True)
