"""A lock one process holds at a time, across the processes and machines sharing one database: who runs a
singleton job (the audit log's syslog forwarder).

On PostgreSQL a session advisory lock on a dedicated autocommit connection (released by the server when the
process or its connection dies); on SQLite an exclusive ``flock`` on a file beside the database (released by the
kernel when the process dies). An in-memory SQLite database has one process: the lock is always free.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, text


def _key(name: str) -> int:
    """A signed 64-bit advisory lock id for ``name`` (stable across processes)."""
    return int.from_bytes(hashlib.sha256(f"metrosight:{name}".encode()).digest()[:8], "big", signed=True)


class ExclusiveLock:
    """Non-blocking: :meth:`acquire` returns whether this process now holds it; :meth:`release` lets it go.

    Args:
        engine: the store's database.
        name: what is locked (e.g. ``forward:syslog``).
    """

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine, self.name = engine, name
        self._conn: Connection | None = None
        self._file: IO[bytes] | None = None
        self.held = False

    def _sqlite_path(self) -> Path | None:
        db = self.engine.url.database
        if not db or db == ":memory:" or db.startswith("file::memory:"):
            return None
        return Path(db).with_name(Path(db).name + f".{self.name.replace(':', '-')}.lock")

    def acquire(self) -> bool:
        """Take the lock if it is free (or already ours). Raises sqlalchemy's OperationalError when the database
        cannot be reached, OSError when the lock file cannot be opened."""
        if self.held:
            return True
        if self.engine.dialect.name == "postgresql":
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            if conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _key(self.name)}).scalar():
                self._conn, self.held = conn, True
            else:
                conn.close()
            return self.held
        path = self._sqlite_path()
        if path is None:
            self.held = True
            return True
        f = open(path, "ab")  # noqa: SIM115 - held open while the lock is held
        os.chmod(path, 0o600)
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return False
        self._file, self.held = f, True
        return True

    def release(self) -> None:
        """Let the lock go (nothing when not held)."""
        conn, self._conn = self._conn, None
        f, self._file = self._file, None
        self.held = False
        if conn is not None:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _key(self.name)})
            finally:
                conn.close()
        if f is not None:
            f.close()  # closing the file drops the flock
