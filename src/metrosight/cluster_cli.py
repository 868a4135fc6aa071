"""Scale-out commands: ``metrosight worker``, ``metrosight consume``, ``metrosight db upgrade``, ``metrosight plan``."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

db_app = typer.Typer(help="Database administration (SQLite or PostgreSQL).", no_args_is_help=True)

BusOpt = Annotated[str, typer.Option("--bus", envvar="METROSIGHT_BUS", help="Redis URL, e.g. redis://host:6379/0")]
DbOpt = Annotated[
    str | None,
    typer.Option("--db", envvar="METROSIGHT_DB", help="database URL, e.g. postgresql://user@host/metrosight (default: the config's, else SQLite in the home)"),
]
PrefixOpt = Annotated[str, typer.Option("--prefix", help="Redis key prefix (several installations on one Redis)")]


def _settings_with_db(config: Path | None, db: str | None):  # type: ignore[no-untyped-def]
    from metrosight.cli import _settings

    settings = _settings(config)
    if db:
        settings = settings.model_copy(update={"storage": settings.storage.model_copy(update={"database_url": db})})
    return settings


def _runtime_for(config: Path | None, db: str | None, need_shared_key: bool = True):  # type: ignore[no-untyped-def]
    """The installation for a scale-out process; refuses to make up a master key nobody else has."""
    from metrosight.cli import fail, state
    from metrosight.config.home import Home
    from metrosight.pipeline.runtime import Runtime
    from metrosight.policy.crypto import MASTER_KEY_ENV
    from metrosight.store.db import StoreError

    settings = _settings_with_db(config, db)
    home = Home.resolve(state.home)
    url = settings.storage.database_url or ""
    if need_shared_key and not url.startswith("sqlite") and url and MASTER_KEY_ENV not in os.environ:
        if not (home.root / "master.key").exists():
            fail(
                f"{MASTER_KEY_ENV} is not set and {home.root / 'master.key'} does not exist: every node of a "
                "deployment must use the same master key (set it in the environment of every worker and server)"
            )
    try:
        return Runtime(home, settings)
    except StoreError as exc:
        fail(str(exc), 1)
    except OSError as exc:
        fail(f"cannot use home directory: {exc}", 1)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def _ping(url: str):  # type: ignore[no-untyped-def]
    from metrosight.bus.redis_streams import connect
    from metrosight.cli import fail

    client = connect(url)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - one clear line
        fail(f"cannot reach Redis at {url}: {exc}", 1)
    return client


def worker(
    bus: BusOpt,
    db: DbOpt = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML configuration file (with `cameras:`)")] = None,
    lease_seconds: Annotated[float, typer.Option("--lease-seconds", min=1.0, help="a dead worker's cameras move within this")] = 10.0,
    max_cameras: Annotated[int | None, typer.Option("--max-cameras", min=1, help="at most this many cameras here")] = None,
    name: Annotated[str | None, typer.Option("--name", help="this worker's name (default host-pid-random)")] = None,
    realtime: Annotated[bool, typer.Option("--realtime", help="read video files at their frame rate, like cameras")] = False,
    until_done: Annotated[bool, typer.Option("--until-done", help="exit once every camera is a finished video file")] = False,
    prefix: PrefixOpt = "metrosight",
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per alert published, and a summary")] = False,
) -> None:
    """Run cameras of the configuration claimed through leases in Redis; publish alerts and events to Redis
    Streams (a `consume` or `serve --bus` process stores them). Start one per core on any number of machines."""
    from metrosight.bus.leases import Leases
    from metrosight.bus.redis_streams import RedisStreamsBus
    from metrosight.cli import fail, out
    from metrosight.pipeline.cluster import ClusterError, ClusterOptions, ClusterWorker, worker_name

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rt = _runtime_for(config, db)
    client = _ping(bus)
    owner = name or worker_name()
    leases = Leases(client, owner, lease_seconds, prefix=prefix)
    rbus = RedisStreamsBus(bus, prefix=prefix, client=client)

    def on_alert(a) -> None:  # type: ignore[no-untyped-def]
        if as_json:
            print(json.dumps({"type": "alert", "worker": owner, "camera": a.camera_id, "subject": a.subject,
                              "event_id": a.event_id, "first_seen": a.first_seen, "wall": round(time.time(), 3)}),
                  flush=True)

    try:
        w = ClusterWorker(
            rt, rbus, leases, options=ClusterOptions(lease_seconds, max_cameras, realtime=realtime, until_done=until_done),
            on_alert=on_alert,
        )
    except ClusterError as exc:
        fail(str(exc))
    stop = _stop_on_signals()
    report = w.run(stop)
    summary = {"type": "summary", "worker": owner, "frames": report.frames, "alerts": report.alerts,
               "finished": report.finished, "lost": report.lost, "seconds": round(report.seconds, 1)}
    if as_json:
        print(json.dumps(summary), flush=True)
    else:
        out.print(
            f"worker {owner}: {report.frames} frames, {report.alerts} alert(s) published; finished "
            f"{', '.join(report.finished) or '-'}; lost {', '.join(report.lost) or '-'} in {report.seconds:.0f} s",
            highlight=False,
        )


def consume(
    bus: BusOpt,
    db: DbOpt = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML configuration file")] = None,
    name: Annotated[str | None, typer.Option("--name", help="consumer name in the group (default host-pid)")] = None,
    claim_idle: Annotated[float, typer.Option("--claim-idle", min=0.1, help="claim entries idle this long on a dead consumer, s")] = 10.0,
    prefix: PrefixOpt = "metrosight",
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per alert delivered")] = False,
) -> None:
    """Store what the workers publish (alerts, alert updates, behaviour events) into the database, exactly once per
    event id. Run several for availability; `serve --bus` does the same next to the API."""
    from metrosight.cli import out
    from metrosight.pipeline.consumer import StoreConsumer, make_bus

    rt = _runtime_for(config, db)
    _ping(bus)

    def on_alert(a, new: bool) -> None:  # type: ignore[no-untyped-def]
        if as_json:
            print(json.dumps({"type": "alert", "event_id": a.event_id, "camera": a.camera_id, "subject": a.subject,
                              "new": new}), flush=True)

    consumer = StoreConsumer(rt.store, rt.home.media, make_bus(bus, name, claim_idle, prefix), on_alert)
    stop = _stop_on_signals()
    consumer.run(stop)
    out.print(
        f"stored {consumer.stored_alerts} alert(s) ({consumer.duplicate_alerts} duplicate deliveries) and "
        f"{consumer.stored_events} event(s)",
        highlight=False,
    )


@db_app.command("upgrade")
def db_upgrade(
    db: DbOpt = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML configuration file")] = None,
) -> None:
    """Create or migrate the database schema to the newest revision (the same Alembic migrations for SQLite and
    PostgreSQL). Safe to run again; run it once before starting workers on a new database."""
    from sqlalchemy import text

    from metrosight.cli import fail, out, state
    from metrosight.config.home import Home
    from metrosight.store.db import StoreError, open_engine, safe_url

    settings = _settings_with_db(config, db)
    url = settings.storage.database_url or Home.resolve(state.home).ensure().database_url
    try:
        engine = open_engine(url)
        with engine.connect() as c:
            head = c.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except StoreError as exc:
        fail(str(exc), 1)
    out.print(f"{safe_url(url)}: schema at revision {head}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the scale-out commands to the main app."""
    app.command("worker")(worker)
    app.command("consume")(consume)
    app.add_typer(db_app, name="db")


log = logging.getLogger(__name__)
