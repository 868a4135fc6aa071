"""Real Redis and PostgreSQL servers for integration tests, started by the tests themselves on loopback.

- :class:`RedisServer`: ``redis-server`` on a free port; without persistence by default (``--save ''
  --appendonly no``), or with an append-only file fsynced on every write (``persist=True``) so that a kill and
  restart keeps every acknowledged entry — the setting the deployment guide asks for.
- :class:`PostgresServer`: a throwaway cluster (``initdb`` into a temporary folder, run as the ``postgres`` user
  when the tests run as root), ``fsync=off``, on a free port; :meth:`PostgresServer.create_database` gives each
  test its own database.

Fixtures: ``redis_server`` (per test), ``postgres_server`` (per session), ``pg_url`` (a fresh database per test).
They skip with a reason when the binaries are missing, and fail where ``.ci/run`` installed them
(:func:`tests.conftest.missing_system`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from tests.conftest import missing_system
from tests.integration.procs import free_port, kill_process, stop_process


def _missing(what: str) -> NoReturn:
    missing_system(f"{what} is not installed (.ci/run installs it with apt-get)")


def pg_binary(name: str) -> str | None:
    """A PostgreSQL server program: on PATH, or in Debian's versioned folder (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]), reverse=True
    )
    return candidates[0] if candidates else None


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1.

    Args:
        workdir: where it keeps its append-only file (``persist``) and log.
        persist: append-only file with ``appendfsync always`` (survives kill -9 with every acknowledged write).
    """

    def __init__(self, workdir: Path, persist: bool = False, fsync: str = "always") -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            _missing("redis-server")
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.persist = persist
        self.fsync = fsync
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def wait_for_group(self, group: str, streams: tuple[str, ...], timeout: float = 10.0) -> None:
        """Wait until consumer group ``group`` exists on every stream in ``streams`` (full keys). A consumer
        creates its groups one stream after another, at the streams' end for the outbound group, so whatever a test
        publishes before the group exists on that stream is not the consumer's.

        Raises:
            AssertionError: a group is still missing after ``timeout`` seconds.
        """
        import redis

        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        try:
            for stream in streams:
                while True:
                    with contextlib.suppress(redis.ResponseError):  # the stream does not exist yet
                        if any(g["name"] == group.encode() for g in client.xinfo_groups(stream)):
                            break
                    if time.monotonic() > deadline:
                        raise AssertionError(f"consumer group {group} was not created on {stream}")
                    time.sleep(0.05)
        finally:
            client.close()

    def start(self, timeout: float = 10.0) -> None:
        args = [
            str(self.binary),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
            "--logfile",
            str(self.workdir / "redis.log"),
        ]
        args += ["--appendonly", "yes", "--appendfsync", self.fsync] if self.persist else ["--appendonly", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        deadline = time.monotonic() + timeout
        while True:
            try:
                if redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5).ping():
                    return
            except redis.ConnectionError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.workdir / "redis.log").read_text() if (self.workdir / "redis.log").exists() else ""
                raise RuntimeError(f"redis-server did not start on port {self.port}: {log[-2000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        kill_process(self.proc)
        self.proc = None

    def stop(self) -> None:
        stop_process(self.proc, grace=10)
        self.proc = None


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (run as ``postgres`` when we are root)."""

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable  # fsync and synchronous commits on (benchmarks); off for tests
        self.initdb = pg_binary("initdb")
        self.pg_ctl = pg_binary("pg_ctl")
        if self.initdb is None or self.pg_ctl is None:
            _missing("PostgreSQL (initdb, pg_ctl)")
        self.root = Path(tempfile.mkdtemp(prefix="metrosight-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            runuser = shutil.which("runuser")
            if runuser is None:
                _missing("runuser (util-linux)")
            self.as_user = [str(runuser), "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        res = subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=120, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {res.stdout[-1500:]} {res.stderr[-1500:]}")

    def start(self) -> None:
        self._run(str(self.initdb), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            str(self.pg_ctl),
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run(str(self.pg_ctl), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop the database of ``url``, ending every connection still open to it (a test's pooled engine, a
        background thread it left running): without this, connections leaked by finished tests piled up until the
        server's ``max_connections`` refused every later test."""
        import gc

        import psycopg

        gc.collect()  # engines nobody holds any more close their pools first
        name = url.rsplit("/", 1)[1]
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c,
        ):
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        import gc

        gc.collect()  # close the tests' pooled connections while the server is still up (no noise at exit)
        server.stop()


@pytest.fixture()
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped (its connections ended) after it."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


@pytest.fixture()
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """Redis with an append-only file fsynced on every write (survives kill -9 and restart on the same port)."""
    server = RedisServer(tmp_path / "redis-aof", persist=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()
