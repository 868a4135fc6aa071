"""``metrosight plan``: what a camera network needs (nodes, bus and database load, storage, false alerts),
from the per-camera costs measured by ``bench/node.py`` and the bus throughput measured by ``bench/bus.py``."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from metrosight.cli.common import fail
from metrosight.cli.context import cli_context
from metrosight.config.operating_points import POINTS, PROFILES
from metrosight.pipeline.capacity import NodeFigures, Plan, PlanError, PlanInput, default_figures, node_figures
from metrosight.pipeline.capacity import plan as make_plan

DEFAULT_FACES_PER_CORE = 125.0  # descriptors one core computes a second (~8 ms each), without a node benchmark
DEFAULT_FRAME_MS = 55.0  # decode + detection + tracking per analysed frame on one core, without a node benchmark
REPO = Path(__file__).resolve().parents[3]
REPO_RESULTS = REPO / "bench" / "results"  # a source checkout's own measurements (git-ignored)
PUBLISHED_NODE = REPO / "docs" / "measurements" / "node-cpu.json"  # the figures the README cites

CamerasOpt = Annotated[int, typer.Option("--cameras", min=1, help="cameras in the network")]
FacesOpt = Annotated[float, typer.Option("--faces-per-second", min=0.0, help="face descriptors a second per camera")]
NodeBenchOpt = Annotated[
    Path | None,
    typer.Option(
        "--node-benchmark",
        help="JSON written by bench/node.py (default: bench/results/node.json, else docs/measurements/node-cpu.json, "
        "if present)",
    ),
]
PointOpt = Annotated[
    str,
    typer.Option(
        "--operating-point", help="today (every speed-up off) or tuned (the defaults and an installer's settings)"
    ),
]
CameraKindOpt = Annotated[
    str, typer.Option("--camera-kind", help="hd (1920x1080) or sd (640x360): which measured camera to plan with")
]
BusBenchOpt = Annotated[
    Path | None,
    typer.Option("--bus-benchmark", help="JSON written by bench/bus.py (default: bench/results/bus.json if present)"),
]
FacesPerCoreOpt = Annotated[
    float | None,
    typer.Option(
        "--faces-per-core-per-second",
        min=1.0,
        help="plan from per-operation costs instead of a node benchmark: descriptors one core computes a second "
        f"(default {DEFAULT_FACES_PER_CORE:g})",
    ),
]
FrameMsOpt = Annotated[
    float | None,
    typer.Option(
        "--frame-ms",
        min=0.0,
        help="plan from per-operation costs instead of a node benchmark: decode + detection + tracking per analysed "
        f"frame, ms on one core (default {DEFAULT_FRAME_MS:g})",
    ),
]
AnalysisFpsOpt = Annotated[
    float | None,
    typer.Option("--analysis-fps", min=0.1, help="analysed frames a second per camera (default: the benchmark's)"),
]
FrameScaleOpt = Annotated[
    float,
    typer.Option(
        "--frame-scale", min=0.1, help="per-frame cost relative to the benchmark's frames (e.g. 2 for HD vs 640x360)"
    ),
]
CoresOpt = Annotated[int, typer.Option("--cores-per-node", min=1)]
UtilisationOpt = Annotated[float, typer.Option("--utilisation", min=0.1, max=1.0, help="target CPU use of a node")]
EventsOpt = Annotated[
    float, typer.Option("--events-per-camera-hour", min=0.0, help="behaviour events a camera raises an hour")
]
WatchlistOpt = Annotated[int, typer.Option("--watchlist-size", min=1, help="active entries")]
FpirOpt = Annotated[
    float,
    typer.Option(
        "--fpir",
        min=0.0,
        max=1.0,
        help="false positive identification rate per search at the operating threshold, measured with "
        "--fpir-gallery entries",
    ),
]
FpirGalleryOpt = Annotated[
    int, typer.Option("--fpir-gallery", min=1, help="gallery size FPIR was measured at (LFW fold 1: 163)")
]
FootfallOpt = Annotated[float, typer.Option("--footfall", min=0.0, help="people passing a day")]
SearchesOpt = Annotated[
    float,
    typer.Option("--searches-per-person", min=0.0, help="tracks (searches) a person makes a day across cameras"),
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML configuration (retention, policy refresh)")]


def gb(n: float) -> str:
    """Bytes as ``12.3 GB`` (``1.2 TB`` from a terabyte up)."""
    return f"{n / 1e9:,.1f} GB" if n < 1e12 else f"{n / 1e12:,.1f} TB"


def _finite(options: dict[str, float | None]) -> None:
    """Refuse an infinite or NaN option value in one line (the option parser lets ``inf`` through a minimum)."""
    for name, value in options.items():
        if value is not None and not math.isfinite(value):
            fail(f"{name} must be a finite number (got {value})")


def _node_file(node_benchmark: Path | None) -> Path | None:
    if node_benchmark is not None:
        return node_benchmark
    return next((f for f in (REPO_RESULTS / "node.json", PUBLISHED_NODE) if f.exists()), None)


def _figures(
    node_benchmark: Path | None,
    per_op: tuple[float | None, float | None],
    fps: float | None,
    point: str,
    kind: str,
) -> tuple[Path | None, NodeFigures, NodeFigures | None]:
    """The node benchmark used (None: per-operation costs), the figures to plan with, and those of today's pipeline
    from the same run (None without them). ``per_op``: ``(--faces-per-core-per-second, --frame-ms)`` as given;
    either one given plans from per-operation costs, and refuses a ``--node-benchmark`` given with it."""
    if point not in POINTS:
        fail(f"unknown --operating-point {point!r}: use {' or '.join(POINTS)}")
    if kind not in PROFILES:
        fail(f"unknown --camera-kind {kind!r}: use {' or '.join(PROFILES)}")
    faces_per_core, frame_ms = per_op
    given = faces_per_core is not None or frame_ms is not None
    if given and node_benchmark is not None:
        fail("give either --node-benchmark or per-operation costs (--faces-per-core-per-second, --frame-ms), not both")
    node_file = None if given else _node_file(node_benchmark)
    try:
        if node_file is None:
            per_face_ms = 1000.0 / (faces_per_core or DEFAULT_FACES_PER_CORE)
            fig = default_figures(per_face_ms, DEFAULT_FRAME_MS if frame_ms is None else frame_ms, fps or 18.0)
            return None, fig, None
        data = json.loads(node_file.read_text())
        fig = node_figures(data, str(node_file), point, kind)
        today = node_figures(data, str(node_file), "today", kind) if "points" in data and point != "today" else None
        return node_file, fig, today
    except (OSError, ValueError, PlanError) as exc:
        fail(f"cannot use the node benchmark {node_file}: {exc}")


def _consumers(bus_benchmark: Path | None, pl: Plan) -> tuple[Path | None, float | None, float | None]:
    """``(bus benchmark file, consumer processes, measured msg/s per consumer)``; None without a benchmark."""
    bus_file = bus_benchmark or (REPO_RESULTS / "bus.json" if (REPO_RESULTS / "bus.json").exists() else None)
    if bus_file is None:
        return None, None, None
    try:
        b = json.loads(bus_file.read_text())
        sustained = float(b["sustained_msgs_per_s"]) / max(1, int(b.get("consumers", 1)))
        consumers = max(1, -(-pl.bus_msgs_per_s // (sustained * 0.5)))  # at half of the measured rate each
    except (OSError, ValueError, KeyError, TypeError) as exc:
        fail(f"cannot use the bus benchmark {bus_file}: {exc}")
    return bus_file, consumers, sustained


def plan_table(
    p: PlanInput,
    fig: NodeFigures,
    pl: Plan,
    bus: tuple[Path | None, float | None, float | None],
    today: Plan | None = None,
) -> Table:
    """The plan as the table ``plan`` prints: each figure with how it was reached (and today's pipeline's nodes,
    measured in the same benchmark run, when ``today`` is given)."""
    bus_file, consumers, sustained = bus
    t = Table("", "value", "how", title=f"metrosight plan: {p.cameras:,} cameras, {p.faces_per_s:g} faces/s each")
    t.add_row(
        "per-camera cost",
        f"{pl.cores_per_camera:.2f} cores",
        f"{fig.source}: {fig.cores_per_camera:.2f} cores at {fig.faces_per_s:.1f} faces/s, {fig.analysis_fps:g} fps; "
        f"{fig.face_share:.0%} of it per face",
    )
    t.add_row("CPU", f"{pl.cores:,.0f} cores", f"{p.cameras:,} × {pl.cores_per_camera:.2f}")
    t.add_row(
        "nodes", f"{pl.nodes:,}", f"{pl.cameras_per_node} cameras a {p.cores_per_node}-core node at {p.utilisation:.0%}"
    )
    if today is not None:
        t.add_row(
            "today's pipeline",
            f"{today.nodes:,} nodes",
            f"same benchmark run, every speed-up off: {today.cores_per_camera:.2f} cores a camera, "
            f"{today.cameras_per_node} a node; this plan: {pl.nodes / max(1, today.nodes):.2f}× the nodes",
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
    _storage_rows(t, p, pl)
    return t


def plan_json(
    p: PlanInput,
    fig: NodeFigures,
    pl: Plan,
    bus: tuple[Path | None, float | None, float | None],
    point: tuple[str, str] | None,
    today: tuple[NodeFigures | None, Plan | None],
) -> dict[str, object]:
    """The plan as ``plan --json`` prints it: inputs, figures, plan, the benchmark's operating point and camera kind
    (None without a benchmark), today's figures and plan from the same run (None without them), consumers."""
    today_fig, today_plan = today
    return {
        "input": asdict(p),
        "figures": asdict(fig),
        "plan": pl.as_dict(),
        "operating_point": point[0] if point else None,
        "camera_kind": point[1] if point else None,
        "today": {"figures": asdict(today_fig), "plan": today_plan.as_dict()} if today_fig and today_plan else None,
        "consumers": bus[1],
        "consumer_msgs_per_s_measured": bus[2],
    }


def _storage_rows(t: Table, p: PlanInput, pl: Plan) -> None:
    t.add_row(
        "storage a day",
        gb(pl.storage_bytes_per_day),
        f"{pl.alerts_per_day:,.0f} alerts (row + audit + crop), {pl.events_per_day:,.0f} events (row + snapshot)",
    )
    t.add_row(
        "storage kept",
        gb(pl.storage_bytes_steady),
        f"retention: alerts {p.alerts_days} d, crops {p.crops_days} d, events {p.events_days} d, "
        f"audit {p.audit_days} d",
    )
    t.add_row(
        "searches a day",
        f"{pl.searches_per_day:,.0f}",
        f"{p.footfall_per_day:,.0f} people × {p.searches_per_person:g} tracks",
    )
    t.add_row(
        "false alerts a day",
        f"{pl.false_alerts_per_day:,.0f}",
        f"FPIR {p.fpir:g} at {p.fpir_gallery} entries → {pl.fpir_at_watchlist:.2e} at {p.watchlist_size:,}",
    )


def plan(
    ctx: typer.Context,
    cameras: CamerasOpt = 12_300,
    faces_per_second: FacesOpt = 15.0,
    node_benchmark: NodeBenchOpt = None,
    bus_benchmark: BusBenchOpt = None,
    faces_per_core_per_second: FacesPerCoreOpt = None,
    frame_ms: FrameMsOpt = None,
    analysis_fps: AnalysisFpsOpt = None,
    frame_scale: FrameScaleOpt = 1.0,
    cores_per_node: CoresOpt = 32,
    utilisation: UtilisationOpt = 0.75,
    events_per_camera_hour: EventsOpt = 30.0,
    watchlist_size: WatchlistOpt = 1_000,
    fpir: FpirOpt = 0.003,
    fpir_gallery: FpirGalleryOpt = 163,
    footfall: FootfallOpt = 7_000_000,
    searches_per_person: SearchesOpt = 6.0,
    config: ConfigOpt = None,
    operating_point: PointOpt = "tuned",
    camera_kind: CameraKindOpt = "hd",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """How many nodes, how much Redis and PostgreSQL load, storage and false alerts a camera network needs —
    from the per-camera costs measured by bench/node.py (and the bus throughput measured by bench/bus.py)."""
    c = cli_context(ctx)
    _finite(
        {
            "--faces-per-second": faces_per_second,
            "--faces-per-core-per-second": faces_per_core_per_second,
            "--frame-ms": frame_ms,
            "--analysis-fps": analysis_fps,
            "--frame-scale": frame_scale,
            "--utilisation": utilisation,
            "--events-per-camera-hour": events_per_camera_hour,
            "--fpir": fpir,
            "--footfall": footfall,
            "--searches-per-person": searches_per_person,
        }
    )
    node_file, fig, today_fig = _figures(
        node_benchmark, (faces_per_core_per_second, frame_ms), analysis_fps, operating_point, camera_kind
    )
    settings = c.settings(config)
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
    try:
        pl = make_plan(p, fig)
        today = make_plan(p, today_fig) if today_fig is not None else None
    except PlanError as exc:
        fail(str(exc))
    bus = _consumers(bus_benchmark, pl)
    if as_json:
        point = (operating_point, camera_kind) if node_file is not None else None
        c.emit(json.dumps(plan_json(p, fig, pl, bus, point, (today_fig, today))))
        return
    c.out.print(plan_table(p, fig, pl, bus, today))
    c.out.print(
        f"Each false alert is a person an operator must look at; two operators confirm before anyone acts. "
        f"To keep them under 100 a day at {watchlist_size:,} entries the threshold needs an FPIR of "
        f"{100 / max(pl.searches_per_day, 1) * fpir_gallery / watchlist_size:.1e} at {fpir_gallery} entries "
        "(`metrosight calibrate --target-fpir`).",
        highlight=False,
    )
