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
    typer.Option(
        "--db",
        envvar="METROSIGHT_DB",
        help="database URL, e.g. postgresql://user@host/metrosight (default: the config's, else SQLite in the home)",
    ),
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
    shared = need_shared_key and url and not url.startswith("sqlite")
    if shared and MASTER_KEY_ENV not in os.environ and not (home.root / "master.key").exists():
        fail(
            f"{MASTER_KEY_ENV} is not set and {home.root / 'master.key'} does not exist: every node of a "
            "deployment must use the same master key (set it in the environment of every worker and server)"
        )
    try:
        return Runtime.open(home, settings)
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
    from metrosight.bus.leases import Leases
    from metrosight.bus.redis_streams import RedisStreamsBus
    from metrosight.cli import fail, out
    from metrosight.core.names import InvalidInput, identifier
    from metrosight.pipeline.cluster import ClusterError, ClusterOptions, ClusterWorker, worker_name

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:  # a worker's name owns its leases: the camera id rule, and no second live worker by that name
        owner = identifier(name, "--name") if name is not None else worker_name()
    except InvalidInput as exc:
        fail(str(exc))
    rt = _runtime_for(config, db)
    _ = rt.services.models.embedder  # a gallery of another descriptor model is refused before any lease is taken
    client = _ping(bus)
    leases = Leases(client, owner, lease_seconds, prefix=prefix)
    if owner in leases.live_workers():
        fail(
            f"a worker named {owner!r} is already running: two would both renew its leases and run the same "
            f"cameras twice; give this one another --name (or wait {lease_seconds:g} s if it has just stopped)"
        )
    rbus = RedisStreamsBus(bus, prefix=prefix, client=client)

    def on_alert(a) -> None:  # type: ignore[no-untyped-def]
        if as_json:
            print(
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
                ),
                flush=True,
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
    stop = _stop_on_signals()
    report = w.run(stop)
    summary = {
        "type": "summary",
        "worker": owner,
        "frames": report.frames,
        "alerts": report.alerts,
        "finished": report.finished,
        "lost": report.lost,
        "seconds": round(report.seconds, 1),
    }
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
    claim_idle: Annotated[
        float,
        typer.Option("--claim-idle", min=0.1, help="claim entries idle this long on a dead consumer, s"),
    ] = 10.0,
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
            print(
                json.dumps(
                    {
                        "type": "alert",
                        "event_id": a.event_id,
                        "camera": a.camera_id,
                        "subject": a.subject,
                        "new": new,
                    }
                ),
                flush=True,
            )

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


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n < 1e12 else f"{n / 1e12:,.1f} TB"


def plan(
    cameras: Annotated[int, typer.Option("--cameras", min=1, help="cameras in the network")] = 12_300,
    faces_per_second: Annotated[
        float, typer.Option("--faces-per-second", min=0.0, help="face descriptors a second per camera")
    ] = 15.0,
    node_benchmark: Annotated[
        Path | None,
        typer.Option(
            "--node-benchmark",
            help="JSON written by bench/node.py (default: bench/results/node.json if present)",
        ),
    ] = None,
    bus_benchmark: Annotated[
        Path | None,
        typer.Option(
            "--bus-benchmark",
            help="JSON written by bench/bus.py (default: bench/results/bus.json if present)",
        ),
    ] = None,
    faces_per_core_per_second: Annotated[
        float,
        typer.Option(
            "--faces-per-core-per-second",
            min=1.0,
            help="without a node benchmark: descriptors one core computes a second",
        ),
    ] = 125.0,
    frame_ms: Annotated[
        float,
        typer.Option(
            "--frame-ms",
            min=0.0,
            help="without a node benchmark: decode + detection + tracking per analysed frame, ms on one core",
        ),
    ] = 55.0,
    analysis_fps: Annotated[
        float | None,
        typer.Option("--analysis-fps", min=0.1, help="analysed frames a second per camera (default: the benchmark's)"),
    ] = None,
    frame_scale: Annotated[
        float,
        typer.Option(
            "--frame-scale",
            min=0.1,
            help="per-frame cost relative to the benchmark's frames (e.g. 2 for HD vs 640x360)",
        ),
    ] = 1.0,
    cores_per_node: Annotated[int, typer.Option("--cores-per-node", min=1)] = 32,
    utilisation: Annotated[
        float, typer.Option("--utilisation", min=0.1, max=1.0, help="target CPU use of a node")
    ] = 0.75,
    events_per_camera_hour: Annotated[
        float,
        typer.Option("--events-per-camera-hour", min=0.0, help="behaviour events a camera raises an hour"),
    ] = 30.0,
    watchlist_size: Annotated[int, typer.Option("--watchlist-size", min=1, help="active entries")] = 1_000,
    fpir: Annotated[
        float,
        typer.Option(
            "--fpir",
            min=0.0,
            max=1.0,
            help="false positive identification rate per search at the operating threshold, measured with --fpir-gallery entries",
        ),
    ] = 0.003,
    fpir_gallery: Annotated[
        int, typer.Option("--fpir-gallery", min=1, help="gallery size FPIR was measured at (LFW fold 1: 163)")
    ] = 163,
    footfall: Annotated[float, typer.Option("--footfall", min=0.0, help="people passing a day")] = 7_000_000,
    searches_per_person: Annotated[
        float,
        typer.Option("--searches-per-person", min=0.0, help="tracks (searches) a person makes a day across cameras"),
    ] = 6.0,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML configuration (retention, policy refresh)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """How many nodes, how much Redis and PostgreSQL load, storage and false alerts a camera network needs —
    from the per-camera costs measured by bench/node.py (and the bus throughput measured by bench/bus.py)."""
    from rich.table import Table

    from metrosight.cli import _settings, fail, out
    from metrosight.pipeline.capacity import PlanError, PlanInput, default_figures, node_figures
    from metrosight.pipeline.capacity import plan as make_plan

    repo_results = Path(__file__).resolve().parents[2] / "bench" / "results"
    node_file = node_benchmark or (repo_results / "node.json" if (repo_results / "node.json").exists() else None)
    try:
        if node_file is not None:
            fig = node_figures(json.loads(node_file.read_text()), str(node_file))
        else:
            fig = default_figures(1000.0 / faces_per_core_per_second, frame_ms, analysis_fps or 18.0)
    except (OSError, ValueError, PlanError) as exc:
        fail(f"cannot use the node benchmark {node_file}: {exc}")
    settings = _settings(config)
    r = settings.privacy.retention
    p = PlanInput(
        cameras=cameras,
        faces_per_s=faces_per_second,
        analysis_fps=analysis_fps,
        frame_scale=frame_scale,
        cores_per_node=cores_per_node,
        utilisation=utilisation,
        events_per_camera_hour=events_per_camera_hour,
        watchlist_size=watchlist_size,
        fpir=fpir,
        fpir_gallery=fpir_gallery,
        footfall_per_day=footfall,
        searches_per_person=searches_per_person,
        policy_refresh_seconds=settings.privacy.policy_refresh_seconds,
        alerts_days=r.alerts_days,
        crops_days=r.crops_days,
        events_days=r.events_days,
        audit_days=r.audit_days,
    )
    pl = make_plan(p, fig)
    bus_file = bus_benchmark or (repo_results / "bus.json" if (repo_results / "bus.json").exists() else None)
    consumers = None
    sustained = None
    if bus_file is not None:
        try:
            b = json.loads(bus_file.read_text())
            sustained = float(b["sustained_msgs_per_s"]) / max(1, int(b.get("consumers", 1)))
            consumers = max(1, -(-pl.bus_msgs_per_s // (sustained * 0.5)))  # at half of the measured rate each
        except (OSError, ValueError, KeyError, TypeError) as exc:
            fail(f"cannot use the bus benchmark {bus_file}: {exc}")
    if as_json:
        from dataclasses import asdict

        print(
            json.dumps(
                {
                    "input": asdict(p),
                    "figures": asdict(fig),
                    "plan": pl.as_dict(),
                    "consumers": consumers,
                    "consumer_msgs_per_s_measured": sustained,
                }
            )
        )
        return
    t = Table("", "value", "how", title=f"metrosight plan: {cameras:,} cameras, {faces_per_second:g} faces/s each")
    t.add_row(
        "per-camera cost",
        f"{pl.cores_per_camera:.2f} cores",
        f"{fig.source}: {fig.cores_per_camera:.2f} cores at {fig.faces_per_s:.1f} faces/s, {fig.analysis_fps:g} fps; "
        f"{fig.face_share:.0%} of it per face",
    )
    t.add_row("CPU", f"{pl.cores:,.0f} cores", f"{cameras:,} × {pl.cores_per_camera:.2f}")
    t.add_row(
        "nodes",
        f"{pl.nodes:,}",
        f"{pl.cameras_per_node} cameras a {cores_per_node}-core node at {utilisation:.0%}",
    )
    t.add_row(
        "reference",
        f"{p.reference_servers} servers",
        f"{pl.reference_cameras_per_server:.1f} cameras a server; this plan: {pl.reference_ratio:.2f}× the servers",
    )
    t.add_row(
        "bus",
        f"{pl.bus_msgs_per_s:,.0f} msg/s",
        f"{pl.bus_bytes_per_s / 1e6:.2f} MB/s; Redis ≈ {pl.redis_ops_per_s:,.0f} ops/s with lease renewals",
    )
    if consumers is not None:
        t.add_row(
            "consumers",
            f"{consumers:.0f}",
            f"measured {sustained:,.0f} msg/s per consumer process ({bus_file}); planned at half",
        )
    t.add_row(
        "PostgreSQL writes",
        f"{pl.db_rows_per_s:,.1f} rows/s",
        f"of which {pl.db_alert_tx_per_s:.2f} alert transactions/s (audited)",
    )
    t.add_row(
        "PostgreSQL policy reads",
        f"{(consumers or 1) * 10:,.0f} q/s",
        "workers read the gallery version from Redis; the mirror in each consumer reads the database 5×/s "
        f"(without Redis: {pl.db_policy_queries_per_s:,.0f} q/s from {pl.worker_processes:,} worker processes)",
    )
    t.add_row(
        "storage a day",
        _gb(pl.storage_bytes_per_day),
        f"{pl.alerts_per_day:,.0f} alerts (row + audit + crop), {pl.events_per_day:,.0f} events (row + snapshot)",
    )
    t.add_row(
        "storage kept",
        _gb(pl.storage_bytes_steady),
        f"retention: alerts {r.alerts_days} d, crops {r.crops_days} d, events {r.events_days} d, audit {r.audit_days} d",
    )
    t.add_row(
        "searches a day",
        f"{pl.searches_per_day:,.0f}",
        f"{footfall:,.0f} people × {searches_per_person:g} tracks",
    )
    t.add_row(
        "false alerts a day",
        f"{pl.false_alerts_per_day:,.0f}",
        f"FPIR {fpir:g} at {fpir_gallery} entries → {pl.fpir_at_watchlist:.2e} at {watchlist_size:,}",
    )
    out.print(t)
    out.print(
        f"Each false alert is a person an operator must look at; two operators confirm before anyone acts. "
        f"To keep them under 100 a day at {watchlist_size:,} entries the threshold needs an FPIR of "
        f"{100 / max(pl.searches_per_day, 1) * fpir_gallery / watchlist_size:.1e} at {fpir_gallery} entries "
        "(`metrosight calibrate --target-fpir`).",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add the scale-out commands to the main app."""
    app.command("worker")(worker)
    app.command("consume")(consume)
    app.add_typer(db_app, name="db")
    app.command("plan")(plan)


log = logging.getLogger(__name__)
