"""Load test of the scale-out path: synthetic events from many simulated cameras through Redis into PostgreSQL.

A producer process plays N cameras publishing what a camera worker publishes (behaviour events, alerts with an
8 KB crop), through the real :class:`RedisStreamsBus`; K consumer processes run the real
:class:`~metrosight.pipeline.consumer.StoreConsumer` (alerts: crop encrypted to disk, row + audit entry; events:
row) into a real PostgreSQL with fsync on. It starts its own redis-server (append-only file, ``--fsync``) and
PostgreSQL cluster on loopback.

Phases (same run, same servers):
1. **direct**: one process inserts events straight into PostgreSQL (the baseline: what the store alone does);
2. **offered**: the producer offers ``cameras × per-camera`` messages a second for ``--seconds``; reports the
   rate stored and the end-to-end latency (publish → committed in PostgreSQL) p50/p99;
3. **saturation**: the producer publishes as fast as it can (pipelined) for ``--saturate-seconds``; reports the
   rate the consumers sustain and the backlog left in Redis.

Per-camera assumption (``--per-camera``, default 0.1 message/s, i.e. 6 a minute): what leaves a camera worker
and is stored — behaviour events and their end updates (loitering, fast movement; a busy platform camera might
raise one or two a minute), alerts and their updates (rare: watchlist hits), camera state changes. Faces that
match nothing never leave the worker (match-or-forget), so the 15 faces/s per camera of the reference are not bus
traffic. 12,300 cameras × 0.1 = 1,230 messages/s.

    python bench/bus.py [--cameras 12300] [--per-camera 0.1] [--alert-share 0.02] [--seconds 15]
                        [--saturate-seconds 10] [--consumers 2] [--fsync everysec] [--out bench/results/bus.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

KEY = b"0" * 43 + b"="  # a valid Fernet key (the bench's own; nothing secret is stored)
CROP = bytes(random.Random(1).getrandbits(8) for _ in range(8 * 1024))


def percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def make_store(url: str):  # type: ignore[no-untyped-def]
    from metrosight.policy.crypto import KeyRing
    from metrosight.store.db import open_engine
    from metrosight.store.repo import Store

    return Store(open_engine(url, upgrade=False), KeyRing(KEY))


def setup_db(url: str) -> int:
    """Migrate, and create the watchlist and entry the synthetic alerts refer to. Returns the entry id."""
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from metrosight.core.types import Category
    from metrosight.policy.crypto import KeyRing
    from metrosight.policy.rules import Authorisation
    from metrosight.store.db import open_engine
    from metrosight.store.repo import Store

    st = Store(open_engine(url), KeyRing(KEY))
    st.users.add("bench", ["admin", "approver"], None)
    actor = st.users.actor("bench")
    st.watchlists.create("bench", Category.WANTED, actor)
    auth = Authorisation("bench", "bench", "B-1", datetime.now(UTC) + timedelta(days=1))
    sid, _ = st.entries.enroll(
        "bench", "Synthetic", np.ones(128, np.float32), "m", "x.jpg", "ab" * 32, 0.9, actor, auth
    )
    return sid


def payload(cam: int, seq: int, alert: bool, sid: int):  # type: ignore[no-untyped-def]
    from metrosight.bus.payloads import AlertV1, EventV1

    eid = f"b:c{cam}:{seq}:{time.time():.6f}"  # the publish time rides in the id (latency)
    if alert:
        return "alerts", AlertV1(
            event_id=eid,
            camera_id=f"c{cam}",
            track_id=seq,
            subject_id=sid,
            subject="Synthetic",
            watchlist="bench",
            category="wanted",
            score=0.95,
            distance=0.31,
            first_seen=1.0,
            last_seen=2.5,
            samples=3,
            crop_jpeg=CROP,
        )
    return "events", EventV1(
        event_id=eid,
        camera_id=f"c{cam}",
        kind="loitering",
        start_ts=12.5,
        track_id=seq,
        data={"zone": "platform", "duration_s": 61.0, "person": seq},
    )


def producer(
    redis_url: str,
    cameras: int,
    rate: float | None,
    seconds: float,
    alert_share: float,
    sid: int,
    seed: int,
    result: mp.Queue,
) -> None:  # type: ignore[type-arg]
    from metrosight.bus.base import encode
    from metrosight.bus.redis_streams import RedisStreamsBus

    bus = RedisStreamsBus(redis_url, prefix="bench")
    rng = random.Random(seed)
    sent = 0
    start = time.perf_counter()
    end = start + seconds
    if rate is not None:  # offered load: one XADD per message, as a worker publishes
        while (now := time.perf_counter()) < end:
            due = int(rate * (now - start)) - sent
            for _ in range(due):
                topic, p = payload(rng.randrange(cameras), sent, rng.random() < alert_share, sid)
                bus.publish(topic, p)
                sent += 1
            if due <= 0:
                time.sleep(0.002)
    else:  # saturation: pipelined batches
        while time.perf_counter() < end:
            pipe = bus.client.pipeline(transaction=False)
            for _ in range(200):
                topic, p = payload(rng.randrange(cameras), sent, rng.random() < alert_share, sid)
                pipe.xadd(bus.stream_key(topic), encode(p), maxlen=bus.maxlen, approximate=True)
                sent += 1
            pipe.execute()
    result.put({"sent": sent, "seconds": time.perf_counter() - start})


def consumer(redis_url: str, db_url: str, media: str, name: str, stop: mp.Event, result: mp.Queue) -> None:  # type: ignore[type-arg]
    import threading

    from metrosight.pipeline.consumer import StoreConsumer, make_bus

    bus = make_bus(redis_url, name, claim_idle_seconds=5.0, prefix="bench")
    sc = StoreConsumer(make_store(db_url), Path(media), bus)
    lat: list[float] = []

    def record(p) -> None:  # type: ignore[no-untyped-def]
        lat.append(time.time() - float(p.event_id.rsplit(":", 1)[1]))

    bus.subscribe("alerts", record)  # runs after the store handler succeeded (handlers run in order)
    bus.subscribe_batch("events", lambda batch: [record(p) for p in batch])  # after the batch was committed
    local = threading.Event()
    t = threading.Thread(target=lambda: (stop.wait(), local.set()), daemon=True)
    t.start()
    sc.run(local)
    result.put({"name": name, "latencies": lat, "alerts": sc.stored_alerts, "events": sc.stored_events})


def direct(db_url: str, seconds: float) -> dict:
    st = make_store(db_url)  # the same repository call the consumer makes, one process, no bus
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        st.events.save(f"direct:{n}", "c0", "loitering", 12.5, None, n, {"zone": "platform", "duration_s": 61.0})
        n += 1
    el = time.perf_counter() - start
    return {"events": n, "seconds": el, "per_s": n / el}


_ENGINES: dict = {}


def stored(db_url: str) -> int:
    """Synthetic alerts and events stored so far (one engine per URL, reused)."""
    from sqlalchemy import text

    from metrosight.store.db import open_engine

    engine = _ENGINES.get(db_url) or _ENGINES.setdefault(db_url, open_engine(db_url, upgrade=False))
    with engine.connect() as c:
        q = "SELECT (SELECT count(*) FROM events WHERE event_id LIKE 'b:%') + (SELECT count(*) FROM alerts)"
        return int(c.execute(text(q)).scalar())


def run_phase(
    ctx, redis_url: str, db_url: str, media: Path, args, rate: float | None, seconds: float, sid: int
) -> dict:  # type: ignore[no-untyped-def]
    before = stored(db_url)
    stop = ctx.Event()
    res: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    cons = [
        ctx.Process(target=consumer, args=(redis_url, db_url, str(media), f"c{i}", stop, res))
        for i in range(args.consumers)
    ]
    for p in cons:
        p.start()
    time.sleep(2.0)  # consumers connected and subscribed
    prod_q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    prod = ctx.Process(target=producer, args=(redis_url, args.cameras, rate, seconds, args.alert_share, sid, 7, prod_q))
    t0 = time.perf_counter()
    prod.start()
    p_res = prod_q.get(timeout=seconds + 120)
    prod.join(30)
    sent = p_res["sent"]
    window_end = time.perf_counter()
    at_window_end = stored(db_url) - before
    deadline = time.perf_counter() + args.drain_seconds
    while stored(db_url) - before < sent and time.perf_counter() < deadline:
        time.sleep(0.2)
    drained = stored(db_url) - before
    t_all = time.perf_counter() - t0
    t_window = window_end - t0
    stop.set()
    outs = [res.get(timeout=60) for _ in cons]
    for p in cons:
        p.join(30)
    lat = [x for o in outs for x in o["latencies"]]
    return {
        "offered_per_s": rate,
        "published": sent,
        "publish_per_s": round(sent / p_res["seconds"], 1),
        "stored_in_window": at_window_end,
        "stored_per_s_in_window": round(at_window_end / (window_end - t0), 1),
        "stored_total": drained,
        "all_stored": drained >= sent,
        "seconds_to_store_all": round(t_all, 2) if drained >= sent else None,
        "backlog_at_window_end": sent - at_window_end,
        # after the producer stopped: what the consumers store per second with a backlog and the CPU to themselves
        "drain_per_s": round((drained - at_window_end) / (t_all - t_window), 1)
        if drained > at_window_end and t_all > t_window
        else None,
        "latency_p50_ms": round(percentile(lat, 0.5) * 1000, 1) if lat else None,
        "latency_p99_ms": round(percentile(lat, 0.99) * 1000, 1) if lat else None,
        "latency_mean_ms": round(statistics.fmean(lat) * 1000, 1) if lat else None,
        "alerts": sum(o["alerts"] for o in outs),
        "events": sum(o["events"] for o in outs),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, default=12300)
    ap.add_argument("--per-camera", type=float, default=0.1, help="messages a second per camera (stored)")
    ap.add_argument("--alert-share", type=float, default=0.02, help="fraction of messages that are alerts")
    ap.add_argument("--seconds", type=float, default=15.0, help="offered-load window")
    ap.add_argument(
        "--rates",
        default=None,
        help="offered loads to try, msgs/s (default: a quarter of the need, and the need)",
    )
    ap.add_argument("--saturate-seconds", type=float, default=10.0)
    ap.add_argument("--direct-seconds", type=float, default=5.0)
    ap.add_argument("--drain-seconds", type=float, default=120.0)
    ap.add_argument("--consumers", type=int, default=2)
    ap.add_argument("--fsync", default="everysec", choices=["always", "everysec", "no"], help="Redis appendfsync")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "bus.json"))
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    from tests.integration.servers import PostgresServer, RedisServer, pg_binary

    console = Console()
    if shutil.which("redis-server") is None or pg_binary("initdb") is None:
        console.print("[red]error:[/] needs redis-server and PostgreSQL (apt-get install redis-server postgresql)")
        return 2
    ctx = mp.get_context("spawn")
    rate = args.cameras * args.per_camera
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        redis_srv = RedisServer(root / "redis", persist=True, fsync=args.fsync)
        pg = PostgresServer(durable=True)
        redis_srv.start()
        pg.start()
        try:
            db_url = pg.create_database("bench")
            sid = setup_db(db_url)
            media = root / "media"
            media.mkdir()
            console.print(f"[dim]direct inserts for {args.direct_seconds:g} s …[/]")
            base = direct(db_url, args.direct_seconds)
            rates = [float(x) for x in args.rates.split(",")] if args.rates else [round(rate / 4), rate]
            offered = []
            for r in rates:
                console.print(f"[dim]offered load {r:g}/s for {args.seconds:g} s …[/]")
                offered.append(run_phase(ctx, redis_srv.url, db_url, media, args, r, args.seconds, sid))
            console.print(f"[dim]saturation for {args.saturate_seconds:g} s …[/]")
            sat = run_phase(ctx, redis_srv.url, db_url, media, args, None, args.saturate_seconds, sid)
        finally:
            redis_srv.stop()
            pg.stop()
    sustained = sat["drain_per_s"] or sat["stored_per_s_in_window"]
    table = Table(
        width=150,
        title=f"Redis Streams → PostgreSQL, {args.consumers} consumer process(es), {os.cpu_count()} cores (shared)",
    )
    for c in (
        "phase",
        "offered/s",
        "published/s",
        "stored/s",
        "drain/s",
        "vs direct",
        "backlog",
        "p50 ms",
        "p99 ms",
        "all stored",
    ):
        table.add_column(c, justify="right")
    table.add_row("direct (baseline)", "-", "-", f"{base['per_s']:.0f}", "-", "1.00×", "-", "-", "-", "-")
    for name, r in [*(("offered", o) for o in offered), ("saturation", sat)]:
        best = (
            max(r["stored_per_s_in_window"], r["drain_per_s"] or 0.0)
            if name == "saturation"
            else r["stored_per_s_in_window"]
        )
        table.add_row(
            name,
            f"{r['offered_per_s']:.0f}" if r["offered_per_s"] else "max",
            f"{r['publish_per_s']:.0f}",
            f"{r['stored_per_s_in_window']:.0f}",
            f"{r['drain_per_s']:.0f}" if r["drain_per_s"] else "-",
            f"{best / base['per_s']:.1f}×",
            str(r["backlog_at_window_end"]),
            str(r["latency_p50_ms"]) if name == "offered" else "-",
            str(r["latency_p99_ms"]) if name == "offered" else "-",
            "yes" if r["all_stored"] else "no",
        )
    console.print(table)
    need = rate
    console.print(
        f"12,300-camera need at {args.per_camera:g} msg/s a camera: {args.cameras * args.per_camera:.0f} msg/s; "
        f"sustained here {sustained:.0f} msg/s with {args.consumers} consumer(s) on a shared 2-core machine "
        f"({sustained / need:.2f}× the need)"
    )
    result = {
        "bench": "bus",
        "machine": {
            "cores": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "shared": True,
        },
        "assumption": {
            "cameras": args.cameras,
            "per_camera_msgs_per_s": args.per_camera,
            "alert_share": args.alert_share,
            "need_msgs_per_s": need,
        },
        "redis_appendfsync": args.fsync,
        "postgres": "fsync on, synchronous_commit on",
        "consumers": args.consumers,
        "direct": base,
        "offered": offered,
        "saturation": sat,
        "sustained_msgs_per_s": sustained,
        "ratio_to_need": round(sustained / need, 3) if need else None,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
