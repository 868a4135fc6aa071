"""Outbound webhooks against a real receiver on loopback (it checks every signature), on SQLite and, with
``--pg``, on a throwaway PostgreSQL server.

- **offer**: N alert events offered to the webhook channel (what the camera loop pays: filter + outbox insert), a
  second.
- **backlog**: the N queued deliveries, then a delivery worker starts (``--workers`` threads): deliveries a second
  until the receiver has them all, each accepted once.
- **latency**: events offered one at a time while the worker runs: offer → arrival at the receiver (p50 / p95 /
  max).

    python bench/webhooks.py [--events 1000] [--workers 2] [--pg] [--out bench/results/webhooks.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 1) if xs else float("nan")


def _alert(i: int):  # type: ignore[no-untyped-def]
    from metrosight.bus.payloads import AlertV1, EntryRefV1

    return AlertV1(
        event_id=f"cam-1:bench:{i}",
        camera_id="cam-1",
        track_id=i,
        subject_id=1,
        subject="Bench Person",
        watchlist="wl",
        category="wanted",
        score=0.97,
        distance=0.03,
        first_seen=1.0,
        last_seen=2.0,
        samples=3,
        entries=(EntryRefV1(entry_id=1, name="Bench Person", watchlist="wl", category="wanted"),),
    )


def rows_for(url: str, backend: str, n: int, workers: int) -> list[dict]:
    from cryptography.fernet import Fernet

    from metrosight.config.webhooks import WebhooksConfig
    from metrosight.outbound.delivery import DeliveryWorker
    from metrosight.outbound.events import to_outbound
    from metrosight.outbound.webhooks import WebhookChannel, add_subscription
    from metrosight.policy.crypto import KeyRing
    from metrosight.store.db import open_engine
    from metrosight.store.repo import Store
    from tests.integration.receivers import WebhookReceiver

    store = Store(open_engine(url), KeyRing(Fernet.generate_key()))
    store.users.add("ada", ["admin"], None)
    rx = WebhookReceiver().start()
    _, rx.secret = add_subscription(store.webhooks, store.users.actor("ada"), "bench", rx.url, ["alert"])
    cfg = WebhooksConfig(workers=workers, poll_seconds=0.2)
    channel = WebhookChannel(store.outbox, cfg)  # no worker yet: the backlog builds up
    events = [to_outbound("alerts", _alert(i), {}, time.time()) for i in range(n)]
    t0 = time.perf_counter()
    for e in events:
        channel.offer(e)
    offer_s = time.perf_counter() - t0
    worker = DeliveryWorker(store.outbox, cfg).start()
    t0 = time.perf_counter()
    got = rx.wait_for(n, 1200)
    backlog_s = time.perf_counter() - t0
    assert len({r.key for r in got}) == n == len(got), "missing or repeated deliveries"
    live = WebhookChannel(store.outbox, cfg, worker)
    lat = []
    for i in range(50):
        e = to_outbound("alerts", _alert(n + i), {}, time.time())
        t = time.perf_counter()
        live.offer(e)
        assert len({r.key for r in rx.wait_for(n + i + 1, 30)}) >= n + i + 1
        lat.append((time.perf_counter() - t) * 1000)
    worker.stop()
    rx.stop()
    store.engine.dispose()
    return [
        {
            "backend": backend,
            "what": f"{n} alerts offered (outbox insert)",
            "per_second": round(n / offer_s),
            "seconds": round(offer_s, 2),
        },
        {
            "backend": backend,
            "what": f"{n} queued, delivered by {workers} threads",
            "per_second": round(n / backlog_s),
            "seconds": round(backlog_s, 2),
        },
        {
            "backend": backend,
            "what": "offer → received, one at a time",
            "p50_ms": _pct(lat, 0.5),
            "p95_ms": _pct(lat, 0.95),
            "max_ms": round(max(lat), 1),
        },
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pg", action="store_true", help="also on a throwaway PostgreSQL server")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "webhooks.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="metrosight-bench-") as tmp:
        rows = rows_for(f"sqlite:///{Path(tmp) / 'm.db'}", "sqlite", args.events, args.workers)
    if args.pg:
        from tests.integration.servers import PostgresServer

        pg = PostgresServer()
        pg.start()
        try:
            rows += rows_for(pg.create_database(), "postgresql", args.events, args.workers)
        finally:
            pg.stop()
    print(f"{'backend':10} {'what':42} {'per s':>7} {'s':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for r in rows:
        print(
            f"{r['backend']:10} {r['what']:42} {r.get('per_second', ''):>7} {r.get('seconds', ''):>7} "
            f"{r.get('p50_ms', ''):>8} {r.get('p95_ms', ''):>8} {r.get('max_ms', ''):>8}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "cpus": os.cpu_count(), "workers": args.workers}, indent=2) + "\n")


if __name__ == "__main__":
    main()
