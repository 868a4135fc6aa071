"""PostgreSQL's own dump and restore programs, run against a database URL without putting its password on a
command line (libpq environment variables instead)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Final

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

#: libpq connection parameters of a URL's query string and the environment variables the programs read them from
LIBPQ_ENV: Final[Mapping[str, str]] = MappingProxyType(
    {
        "host": "PGHOST",
        "hostaddr": "PGHOSTADDR",
        "port": "PGPORT",
        "user": "PGUSER",
        "password": "PGPASSWORD",
        "dbname": "PGDATABASE",
        "sslmode": "PGSSLMODE",
        "sslrootcert": "PGSSLROOTCERT",
        "sslcert": "PGSSLCERT",
        "sslkey": "PGSSLKEY",
        "sslcrl": "PGSSLCRL",
        "connect_timeout": "PGCONNECT_TIMEOUT",
        "options": "PGOPTIONS",
        "application_name": "PGAPPNAME",
        "target_session_attrs": "PGTARGETSESSIONATTRS",
        "gssencmode": "PGGSSENCMODE",
        "passfile": "PGPASSFILE",
    }
)


class PgToolError(Exception):
    """A PostgreSQL program is missing or failed; the message says which and why (no password in it)."""


def pg_program(name: str) -> str:
    """``pg_dump`` or ``pg_restore``: on PATH, else the newest in Debian's ``/usr/lib/postgresql/*/bin``.

    Raises:
        PgToolError: not installed.
    """
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if not versions:
        raise PgToolError(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return versions[-1]


def libpq_env(url: str) -> dict[str, str]:
    """The environment that points libpq programs at ``url``: its host, port, user, password and database, then the
    libpq parameters of its query string (:data:`LIBPQ_ENV`: a Unix socket's ``?host=``, ``sslmode``, …).

    Raises:
        PgToolError: not a PostgreSQL URL.
    """
    try:
        u = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a bad port
        raise PgToolError("not a database URL (check its host and port)") from None
    if not u.drivername.startswith(("postgresql", "postgres")):
        raise PgToolError(f"not a PostgreSQL URL ({u.drivername})")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for var, value in (
        ("PGHOST", u.host),
        ("PGPORT", u.port),
        ("PGUSER", u.username),
        ("PGPASSWORD", u.password),
        ("PGDATABASE", u.database),
    ):
        if value:
            env[var] = str(value)
    # libpq parameters given in the query string (``?host=/run/postgresql`` for a Unix socket, ``sslmode``, …),
    # which the application's driver reads too: without them the programs would reach another server
    for key, raw in u.query.items():
        given = str(raw[-1] if isinstance(raw, tuple) else raw)
        env_name = LIBPQ_ENV.get(key)
        if env_name and given and env_name not in env:  # the URL's own host, user, … come first
            env[env_name] = given
    return env


def _run(args: list[str], url: str, what: str) -> None:
    try:
        res = subprocess.run(args, env=libpq_env(url), capture_output=True, text=True, timeout=3600, check=False)
    except subprocess.TimeoutExpired:
        raise PgToolError(f"{what} took over an hour and was stopped") from None
    if res.returncode != 0:
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        raise PgToolError(f"{what} failed: {lines[-1] if lines else f'exit code {res.returncode}'}")


def dump(url: str, out: Path) -> None:
    """``pg_dump`` of the whole database in its custom format (one consistent snapshot) to ``out``.

    Raises:
        PgToolError: pg_dump is missing or failed (unreachable server, a pg_dump older than the server, …).
    """
    _run(
        [pg_program("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", "--file", str(out)], url, "pg_dump"
    )


def restore(url: str, dump_file: Path) -> None:
    """``pg_restore`` of ``dump_file`` into the (empty) database of ``url``, in one transaction: all or nothing.

    Raises:
        PgToolError: pg_restore is missing or failed.
    """
    _run(
        [
            pg_program("pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            "--dbname",
            libpq_env(url).get("PGDATABASE", "postgres"),
            str(dump_file),
        ],
        url,
        "pg_restore",
    )
