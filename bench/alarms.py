"""The alarm workflow under load, on SQLite and on a throwaway PostgreSQL (fsync on).

- **Claims at once**: for each of R alarms, 8 operators claim it at the same moment (threads released together):
  how many won (must be exactly one per alarm), and the latency of a claim (winner or refused).
- **Escalation by several service processes**: N alarms with a 2 s escalation time are raised while three alarm
  clocks (each with its own store and connections, as three ``serve`` processes have; a tick a second) run: how
  many escalations and publications there were (must be N each, none twice), and how late each escalation came
  after its due time (p50 / p95 / max).

    python bench/alarms.py [--alarms 300] [--races 20] [--out bench/results/alarms.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

ESCALATE_AFTER_S = 2


def _store(url: str, key: bytes, upgrade: bool = True):  # type: ignore[no-untyped-def]
    from metrosight.policy.crypto import KeyRing
    from metrosight.store.db import open_engine
    from metrosight.store.repo import Store

    return Store(open_engine(url, upgrade=upgrade), KeyRing(key))


def _prepare(store, ada, bob):  # type: ignore[no-untyped-def]
    import numpy as np

    from metrosight.core.types import Category, Match
    from metrosight.policy.alarms import AlarmPolicy
    from metrosight.policy.rules import Authorisation

    store.users.add("ada", ["admin", "approver", "operator"], None)
    store.users.add("bob", ["approver", "operator"], ada)
    store.watchlists.create("wl", Category.WANTED, ada)
    store.alarms.set_policy("wl", AlarmPolicy("critical", None, True, (), ESCALATE_AFTER_S, "admin"), ada)
    v = np.random.default_rng(1).normal(size=128).astype(np.float32)
    auth = Authorisation("law", "court", "R-1", datetime.now(UTC) + timedelta(days=3))
    store.entries.enroll("wl", "Eve", v / np.linalg.norm(v), "m", "e.jpg", "e" * 64, 0.9, ada, auth)
    store.entries.approve("wl", "Eve", bob)
    e = store.entries.all("wl")[0]
    return Match(e.id, "Eve", "wl", Category.WANTED, 0.95, 0.3)


def _raise(store, match, n: int) -> int:  # type: ignore[no-untyped-def]
    from metrosight.bus.payloads import AlertV1

    alert = AlertV1.of_match(
        match,
        camera_id="cam-1",
        track_id=n,
        first_seen=1.0,
        last_seen=2.0,
        event_id=f"cam-1:bench:{n}",
        samples=3,
        media_origin=1.8e9 + 3600 * n,  # an hour apart: each its own episode
    )
    return int(store.alerts.store_sighting(alert, None).alert_id)


def claims(store, match, races: int) -> dict:  # type: ignore[no-untyped-def]
    from metrosight.policy.rules import Actor

    ops = [Actor(f"op{i}", frozenset({"operator"})) for i in range(8)]
    latencies: list[float] = []
    winners: list[int] = []
    for r in range(races):
        aid = _raise(store, match, 100_000 + r)
        gate = threading.Barrier(len(ops))

        def claim(op: Actor, aid: int = aid, gate: threading.Barrier = gate) -> tuple[bool, float]:
            gate.wait()
            t0 = time.perf_counter()
            try:
                store.alarms.act(aid, op, "claim")
                ok = True
            except Exception:  # noqa: BLE001 - refused: someone else won
                ok = False
            return ok, time.perf_counter() - t0

        with ThreadPoolExecutor(len(ops)) as pool:
            out = list(pool.map(claim, ops))
        winners.append(sum(ok for ok, _ in out))
        latencies.extend(dt for _, dt in out)
    q = statistics.quantiles(latencies, n=20)
    return {
        "races": races,
        "claimants": len(ops),
        "exactly_one_winner": sum(w == 1 for w in winners),
        "claim_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "claim_p95_ms": round(q[18] * 1000, 1),
    }


def escalation(store, url: str, key: bytes, match, n: int) -> dict:  # type: ignore[no-untyped-def]
    from metrosight.services.alarms import AlarmClock

    escalations: list[tuple[int, str]] = []  # (alert id, step event id) of every escalation published
    lock = threading.Lock()

    def publish(p) -> None:  # type: ignore[no-untyped-def]
        with lock:
            if p.transition == "escalate":
                escalations.append((p.alert_id, p.event_id))

    others = [_store(url, key, upgrade=False) for _ in range(3)]
    clocks = [AlarmClock(st.alarms, publish, 1.0) for st in others]
    stops = [c.start() for c in clocks]
    t0 = time.monotonic()
    ids = [_raise(store, match, i) for i in range(n)]
    raise_s = time.monotonic() - t0
    mine = set(ids)
    deadline = time.monotonic() + 120
    while sum(a in mine for a, _ in escalations) < n and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.5)  # two more ticks: nothing escalates or is published twice
    for stop in stops:
        stop()
    for st in others:
        st.engine.dispose()
    published = [e for a, e in escalations if a in mine]
    rows = [a for a in store.alerts.all() if a.id in mine]
    late = sorted(a.escalated_at - a.escalate_at for a in rows if a.escalated_at is not None)
    steps = Counter(t.action for hist in store.alarms.history(ids).values() for t in hist)
    q = statistics.quantiles(late, n=20) if len(late) > 1 else late * 19
    return {
        "alarms": n,
        "raise_per_s": round(n / raise_s, 1),
        "escalated": len(late),
        "escalate_steps": steps["escalate"],
        "escalations_published": len(published),
        "published_twice": len(published) - len(set(published)),
        "late_p50_s": round(statistics.median(late), 2),
        "late_p95_s": round(q[18], 2),
        "late_max_s": round(late[-1], 2),
    }


def one_database(kind: str, url: str, alarms: int, races: int) -> dict:
    from cryptography.fernet import Fernet

    from metrosight.policy.rules import Actor

    key = Fernet.generate_key()
    store = _store(url, key)
    ada = Actor("ada", frozenset({"admin", "approver", "operator"}))
    bob = Actor("bob", frozenset({"approver", "operator"}))
    match = _prepare(store, ada, bob)
    try:
        return {"database": kind, **claims(store, match, races), **escalation(store, url, key, match, alarms)}
    finally:
        store.engine.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alarms", type=int, default=300)
    ap.add_argument("--races", type=int, default=20)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "alarms.json")
    args = ap.parse_args()
    import tempfile

    from rich.console import Console
    from rich.table import Table

    from tests.integration.servers import PostgresServer, pg_binary

    console = Console(width=200)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(one_database("sqlite", f"sqlite:///{tmp}/bench.db", args.alarms, args.races))
    if pg_binary("initdb") is None:
        console.print("PostgreSQL is not installed: SQLite only")
    else:
        pg = PostgresServer(durable=True)
        pg.start()
        try:
            rows.append(one_database("postgresql", pg.create_database("alarms"), args.alarms, args.races))
        finally:
            pg.stop()
    table = Table(title=f"alarm workflow: claims at once, escalation by 3 service processes, {os.cpu_count()} cores")
    for c in rows[0]:
        table.add_column(c, justify="right")
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "cpus": os.cpu_count()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
