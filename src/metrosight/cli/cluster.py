"""Scale-out commands: ``metrosight worker``, ``metrosight consume``, ``metrosight db upgrade``."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from redis import Redis

from metrosight.bus.leases import Leases
from metrosight.bus.redis_streams import RedisStreamsBus, connect
from metrosight.cli.common import fail, require_decoder
from metrosight.cli.context import CliContext, cli_context
from metrosight.cli.models import require_parity
from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.core.credentials import safe_url
from metrosight.core.names import InvalidInput, identifier
from metrosight.policy.crypto import MASTER_KEY_ENV
from metrosight.store.db import StoreError, upgrade_schema

if TYPE_CHECKING:
    from metrosight.bus.payloads import AlertV1
    from metrosight.pipeline.cluster import WorkerReport
    from metrosight.pipeline.runtime import Runtime

db_app = typer.Typer(help="Database administration (SQLite or PostgreSQL).", no_args_is_help=True)

BusOpt = Annotated[str, typer.Option("--bus", envvar="METROSIGHT_BUS", help="Redis URL, e.g. redis://host:6379/0")]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="METROSIGHT_DB",
        help="database URL, e.g. postgresql://user@host/metrosight (default: the config's, else SQLite in the home)",
    ),
]
PrefixOpt = Annotated[str, typer.Option("--prefix", help="Redis key prefix (several installations on one Redis)")]


def settings_with_db(c: CliContext, config: Path | None, db: str | None) -> Settings:
    """The settings of ``config`` with ``--db`` (when given) as the database URL."""
    settings = c.settings(config)
    if db:
        settings = settings.model_copy(update={"storage": settings.storage.model_copy(update={"database_url": db})})
    return settings


def runtime_for(c: CliContext, config: Path | None, db: str | None, need_shared_key: bool = True) -> Runtime:
    """The host of the installation for a scale-out process; refuses to make up a master key nobody else has."""
    # heavy: the host loads the model backends (OpenCV, dlib, onnxruntime)
    from metrosight.pipeline.runtime import Runtime

    settings = settings_with_db(c, config, db)
    home = Home.resolve(c.home_dir)
    url = settings.storage.database_url or ""
    shared = need_shared_key and url and not url.startswith("sqlite")
    if shared and MASTER_KEY_ENV not in os.environ and not (home.root / "master.key").exists():
        fail(
            f"{MASTER_KEY_ENV} is not set and {home.root / 'master.key'} does not exist: every node of a "
            "deployment must use the same master key (set it in the environment of every worker and server)"
        )
    require_parity(settings, home.cache)  # a faster model variant without measured parity: one line
    return Runtime(c.services(settings=settings))


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (the process then stops cleanly)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def ping(url: str) -> Redis:
    """A client of the Redis at ``url``, once it answered; exits with one line when it does not."""
    try:
        client = connect(url)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - one clear line (a URL that cannot be read: ValueError), no password
        fail(f"cannot reach Redis at {safe_url(url)}: {exc}", 1)
    return client


def worker(
    ctx: typer.Context,
    bus: BusOpt,
    db: DbOpt = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML configuration file (with `cameras:`)")] = None,
    lease_seconds: Annotated[
        float, typer.Option("--lease-seconds", min=1.0, help="a dead worker's cameras move within this")
    ] = 10.0,
    max_cameras: Annotated[
        int | None, typer.Option("--max-cameras", min=1, help="at most this many cameras here")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="this worker's name (default host-pid-random)")] = None,
    realtime: Annotated[
        bool, typer.Option("--realtime", help="read video files at their frame rate, like cameras")
    ] = False,
    until_done: Annotated[
        bool, typer.Option("--until-done", help="exit once every camera is a finished video file")
    ] = False,
    prefix: PrefixOpt = "metrosight",
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per alert published, and a summary")] = False,
) -> None:
    """Run cameras of the configuration claimed through leases in Redis; publish alerts and events to Redis
    Streams (a `consume` or `serve --bus` process stores them). Start one per core on any number of machines."""
    # heavy: the cluster worker loads the frame loop and the model backends (OpenCV, dlib, onnxruntime)
    from metrosight.pipeline.cluster import ClusterError, ClusterOptions, ClusterWorker, worker_name

    c = cli_context(ctx)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:  # a worker's name owns its leases: the camera id rule, and no second live worker by that name
        owner = identifier(name, "--name") if name is not None else worker_name()
    except InvalidInput as exc:
        fail(str(exc))
    rt = runtime_for(c, config, db)
    require_decoder(rt.settings.ingest)  # before any lease is taken
    _ = rt.services.models.embedder  # a gallery of another descriptor model is refused before any lease is taken
    client = ping(bus)
    leases = Leases(client, owner, lease_seconds, prefix=prefix)
    if owner in leases.live_workers():
        fail(
            f"a worker named {owner!r} is already running: two would both renew its leases and run the same "
            f"cameras twice; give this one another --name (or wait {lease_seconds:g} s if it has just stopped)"
        )
    rbus = RedisStreamsBus(bus, prefix=prefix, client=client)

    def on_alert(a: AlertV1) -> None:
        if as_json:
            c.emit(
                json.dumps(
                    {
                        "type": "alert",
                        "worker": owner,
                        "camera": a.camera_id,
                        "subject": a.subject,
                        "event_id": a.event_id,
                        "first_seen": a.first_seen,
                        "wall": round(time.time(), 3),
                    }
                )
            )

    try:
        w = ClusterWorker(
            rt,
            rbus,
            leases,
            options=ClusterOptions(lease_seconds, max_cameras, realtime=realtime, until_done=until_done),
            on_alert=on_alert,
        )
    except ClusterError as exc:
        fail(str(exc))
    report = w.run(stop_on_signals())
    _print_worker_report(c, owner, report, as_json)


def _print_worker_report(c: CliContext, owner: str, report: WorkerReport, as_json: bool) -> None:
    if as_json:
        summary = {
            "type": "summary",
            "worker": owner,
            "frames": report.frames,
            "alerts": report.alerts,
            "finished": report.finished,
            "lost": report.lost,
            "seconds": round(report.seconds, 1),
        }
        c.emit(json.dumps(summary))
    else:
        c.out.print(
            f"worker {owner}: {report.frames} frames, {report.alerts} alert(s) published; finished "
            f"{', '.join(report.finished) or '-'}; lost {', '.join(report.lost) or '-'} in {report.seconds:.0f} s",
            highlight=False,
        )


def consume(
    ctx: typer.Context,
    bus: BusOpt,
    db: DbOpt = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML configuration file")] = None,
    name: Annotated[str | None, typer.Option("--name", help="consumer name in the group (default host-pid)")] = None,
    claim_idle: Annotated[
        float,
        typer.Option("--claim-idle", min=0.1, help="claim entries idle this long on a dead consumer, s"),
    ] = 10.0,
    prefix: PrefixOpt = "metrosight",
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per alert delivered")] = False,
) -> None:
    """Store what the workers publish (alerts, alert updates, behaviour events) into the database, exactly once per
    event id, and hand them to the outbound channels (webhooks, …). Run several for availability; `serve --bus`
    does the same next to the API."""
    # heavy: the consumer loads the store's sinks and the services
    from metrosight.outbound.hosts import start_redis
    from metrosight.outbound.mqtt import problem as mqtt_problem
    from metrosight.outbound.syslog import start_syslog
    from metrosight.pipeline.consumer import StoreConsumer, make_bus

    c = cli_context(ctx)
    rt = runtime_for(c, config, db)
    if (why := mqtt_problem(rt.settings.outbound.mqtt)) is not None:
        fail(why)  # before anything is consumed
    ping(bus)

    def on_alert(a: AlertV1, new: bool) -> None:
        if as_json:
            c.emit(
                json.dumps(
                    {
                        "type": "alert",
                        "event_id": a.event_id,
                        "camera": a.camera_id,
                        "subject": a.subject,
                        "new": new,
                    }
                )
            )

    consumer = StoreConsumer(rt.store, rt.home.media, make_bus(bus, name, claim_idle, prefix), on_alert)
    stop = stop_on_signals()
    halt_outbound = start_redis(rt.services, bus, prefix, name)  # the outbound channels, in group "outbound"
    stop_syslog = start_syslog(rt.services)  # the audit log to the SIEM (one forwarder per installation at a time)
    try:
        consumer.run(stop)
    finally:
        halt_outbound()
        stop_syslog()
    c.out.print(
        f"stored {consumer.stored_alerts} alert(s) ({consumer.duplicate_alerts} duplicate deliveries) and "
        f"{consumer.stored_events} event(s)",
        highlight=False,
    )


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    db: DbOpt = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML configuration file")] = None,
) -> None:
    """Create or migrate the database schema to the newest revision (the same Alembic migrations for SQLite and
    PostgreSQL). Safe to run again; run it once before starting workers on a new database."""
    c = cli_context(ctx)
    settings = settings_with_db(c, config, db)
    url = settings.storage.database_url or Home.resolve(c.home_dir).ensure().database_url
    try:
        head = upgrade_schema(url)
    except StoreError as exc:
        fail(str(exc), 1)
    c.out.print(f"{safe_url(url)}: schema at revision {head}", highlight=False)
