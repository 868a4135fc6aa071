"""Load test of the operator service (issue 15, must-show 3): `metrosight serve` on loopback, driven for 60 s by

- **50 live-feed clients** (Server-Sent Events, ``GET /api/alerts/stream``; a dropped feed reconnects with
  ``Last-Event-ID``, as a browser does),
- **8 API clients** (operators listing alerts, opening one, fetching its crop, confirming or rejecting it — the
  two-person review — and reading the cameras and ``/metrics``), and
- **200 concurrent sign-ins**, in bursts of 200 at once (password sign-in, Argon2id; from 50 loopback addresses,
  127.0.0.2–51, four at a time each, so the per-address limit refuses some with 429 as it should),

while a camera raises alerts: a separate process stores an alert every ``--alert-every`` seconds into the same home
through the camera's own storing path (:class:`metrosight.services.sinks.AlertSink`: encrypted crop file, then
the row and its audit entry, as ``metrosight run`` and the node workers do); the service finds them by its poll.
Each alert comes from another camera id, so that each is a new alert, not a sighting added to the previous one's
episode.

Counts every response by status (a response ≥ 500 is a failure, as is a connection error), checks that every
live-feed client received every alert raised while it was open, that every actionable alert has two different
confirmers and no rejection, and that the audit chain verifies afterwards (one unbroken, gap-free sequence).
Prints a table and writes JSON to ``bench/results/load.json``.

    python bench/load.py [--seconds 60] [--feeds 50] [--api-clients 8] [--sign-ins 200] [--alert-every 1.5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
PASSWORD = "load-bench Tr0ub4dor&3 staple"
OPERATORS = [f"op{i}" for i in range(1, 9)]

INJECT = r"""
import sys, time
import numpy as np, cv2
from pathlib import Path
from metrosight.bus.payloads import AlertV1
from metrosight.services.sinks import AlertSink
from metrosight.store.repo import Store
home, seconds, every, subject_id = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
store = Store.for_home(home)
sink = AlertSink(store, home / "media", None)
rng = np.random.default_rng(0)
ok, crop = cv2.imencode(".jpg", rng.integers(0, 255, (112, 112, 3), dtype=np.uint8))
start, n = time.monotonic(), 0
while time.monotonic() - start < seconds:
    sink.on_alert(AlertV1(event_id=f"cam-load-{n}:run:{n}", camera_id=f"cam-load-{n}", track_id=n,
                          subject_id=subject_id, subject="Eve", watchlist="wl", category="wanted", score=0.95,
                          distance=0.3, first_seen=float(n), last_seen=float(n) + 1.0, samples=3,
                          crop_jpeg=bytes(crop)))
    print(n, time.time(), flush=True)
    n += 1
    time.sleep(max(0.0, start + n * every - time.monotonic()))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(home: Path) -> tuple[dict[str, str], int]:
    """Users (an admin, a second approver, 8 operators; passwords), API tokens for the operators, and one approved
    entry. Returns the tokens and the entry id."""
    import numpy as np

    from metrosight.core.types import Category
    from metrosight.policy.passwords import hash_password
    from metrosight.policy.rules import Authorisation
    from metrosight.store.repo import Store

    store = Store.for_home(home)
    pw = hash_password(PASSWORD)
    store.users.add("chief", ["admin", "approver"], None, pw)
    chief = store.users.actor("chief")
    store.users.add("duty", ["approver", "operator"], chief, pw)
    for op in OPERATORS:
        store.users.add(op, ["operator"], chief, pw)
    acc = store.accounts
    tokens = {
        op: acc.create_token(op, "load", store.users.actor(op), datetime.now(UTC) + timedelta(days=1))[1]
        for op in OPERATORS
    }
    store.watchlists.create("wl", Category.WANTED, chief)
    v = np.random.default_rng(1).normal(size=128).astype(np.float32)
    auth = Authorisation("CPC art. 210", "District court", "2026/117", datetime.now(UTC) + timedelta(days=30))
    sid, _ = store.entries.enroll("wl", "Eve", v / np.linalg.norm(v), "load", "eve.jpg", "e" * 64, 0.9, chief, auth)
    store.entries.approve("wl", "Eve", store.users.actor("duty"))
    store.engine.dispose()
    return tokens, sid


def wall_time(iso: str) -> float:
    d = datetime.fromisoformat(iso)
    return (d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp()


@dataclass
class Tally:
    """Responses of one kind of client: status codes, transport errors, latencies (s)."""

    codes: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    lat: list[float] = field(default_factory=list)

    def add(self, code: int, seconds: float) -> None:
        self.codes[code] += 1
        self.lat.append(seconds)

    def summary(self) -> dict:
        n = sum(self.codes.values())
        q = statistics.quantiles(self.lat, n=20) if len(self.lat) >= 2 else [0.0] * 19
        return {
            "responses": n,
            "2xx": sum(v for k, v in self.codes.items() if 200 <= k < 300),
            "4xx": sum(v for k, v in self.codes.items() if 400 <= k < 500),
            "429": self.codes.get(429, 0),
            "5xx": sum(v for k, v in self.codes.items() if k >= 500),
            "codes": {str(k): v for k, v in sorted(self.codes.items())},
            "connection_errors": sum(self.errors.values()),
            "errors": dict(self.errors),
            "p50_ms": round(1000 * statistics.median(self.lat), 1) if self.lat else None,
            "p95_ms": round(1000 * q[18], 1) if self.lat else None,
        }


@dataclass
class Feed:
    received: dict[int, float] = field(default_factory=dict)  # alert id → wall time received
    created: dict[int, float] = field(default_factory=dict)  # alert id → created_at (wall)
    opens: int = 0
    server_closed: int = 0
    hello: asyncio.Event = field(default_factory=asyncio.Event)


async def feed_client(base: str, token: str, feed: Feed, tally: Tally) -> None:
    """One live-feed client, for ever (cancelled at the end): reconnects after any failure with Last-Event-ID."""
    last_id: str | None = None
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(60.0, read=None)) as c:
        while True:
            headers = {"Authorization": f"Bearer {token}"}
            if last_id:
                headers["Last-Event-ID"] = last_id
            t0 = time.monotonic()
            try:
                async with c.stream("GET", "/api/alerts/stream", headers=headers) as r:
                    tally.add(r.status_code, time.monotonic() - t0)
                    if r.status_code != 200:
                        await r.aread()
                        await asyncio.sleep(1.0)
                        continue
                    feed.opens += 1
                    event = None
                    async for line in r.aiter_lines():
                        if line.startswith("event:"):
                            event = line.split(":", 1)[1].strip()
                        elif line.startswith("data:") and event == "hello":
                            feed.hello.set()
                        elif line.startswith("data:") and event == "alert":
                            a = json.loads(line.split(":", 1)[1])
                            feed.received.setdefault(a["id"], time.time())
                            feed.created[a["id"]] = wall_time(a["created_at"])
                            last_id = str(a["id"])
                    feed.server_closed += 1  # the server ended the stream
            except httpx.HTTPError as exc:
                tally.errors[type(exc).__name__] += 1
                await asyncio.sleep(1.0)


async def api_client(base: str, user: str, token: str, until: float, tally: Tally, reviews: Counter) -> None:
    rng = random.Random(user)
    async with httpx.AsyncClient(base_url=base, timeout=60.0, headers={"Authorization": f"Bearer {token}"}) as c:

        async def call(method: str, url: str, **kw: object) -> httpx.Response | None:
            t0 = time.monotonic()
            try:
                r = await c.request(method, url, **kw)  # type: ignore[arg-type]
            except httpx.HTTPError as exc:
                tally.errors[type(exc).__name__] += 1
                return None
            tally.add(r.status_code, time.monotonic() - t0)
            return r

        while time.monotonic() < until:
            r = await call("GET", "/api/alerts", params={"limit": 20})
            open_ = [
                a
                for a in (r.json() if r is not None and r.status_code == 200 else [])
                if a["status"] in ("new", "confirmed_once")
            ]
            if open_:
                a = rng.choice(open_)
                await call("GET", f"/api/alerts/{a['id']}")
                await call("GET", f"/api/alerts/{a['id']}/crop")
                if rng.random() < 0.2:
                    rr = await call(
                        "POST", f"/api/alerts/{a['id']}/reject", json={"reason": "not the person (load test)"}
                    )
                else:
                    rr = await call("POST", f"/api/alerts/{a['id']}/confirm")
                if rr is not None:
                    reviews[rr.status_code] += 1
            await call("GET", "/api/cameras")
            await call("GET", "/metrics")
            await asyncio.sleep(rng.uniform(0.05, 0.3))


async def sign_ins(base: str, n: int, until: float, tally: Tally) -> int:
    """Bursts of ``n`` concurrent sign-ins (from 50 loopback addresses) until ``until``. Returns the bursts."""
    addresses = [f"127.0.0.{i}" for i in range(2, 52)]
    clients = [
        httpx.AsyncClient(base_url=base, timeout=120.0, transport=httpx.AsyncHTTPTransport(local_address=a))
        for a in addresses
    ]

    async def one(i: int) -> None:
        t0 = time.monotonic()
        user = OPERATORS[i % len(OPERATORS)]
        password = PASSWORD if i % 10 else "wrong password, on purpose"
        try:
            r = await clients[i % len(clients)].post("/api/login", json={"username": user, "password": password})
        except httpx.HTTPError as exc:
            tally.errors[type(exc).__name__] += 1
            return
        tally.add(r.status_code, time.monotonic() - t0)

    bursts = 0
    try:
        while time.monotonic() < until:
            await asyncio.gather(*(one(i) for i in range(n)))
            bursts += 1
    finally:
        for c in clients:
            await c.aclose()
    return bursts


async def drive(args: argparse.Namespace, base: str, tokens: dict[str, str], home: Path, subject_id: int) -> dict:
    feeds = [Feed() for _ in range(args.feeds)]
    tallies = {k: Tally() for k in ("feeds", "api", "sign_ins")}
    reviews: Counter = Counter()
    t_open = time.monotonic()
    feed_tasks = [
        asyncio.create_task(feed_client(base, tokens[OPERATORS[i % len(OPERATORS)]], f, tallies["feeds"]))
        for i, f in enumerate(feeds)
    ]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(f.hello.wait() for f in feeds)), timeout=120)
    opened_s = time.monotonic() - t_open
    opened = sum(f.hello.is_set() for f in feeds)

    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    injector = subprocess.Popen(
        [sys.executable, "-c", INJECT, str(home), str(args.seconds), str(args.alert_every), str(subject_id)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    until = time.monotonic() + args.seconds
    api_tasks = [
        asyncio.create_task(api_client(base, op, tokens[op], until, tallies["api"], reviews))
        for op in OPERATORS[: args.api_clients]
    ]
    bursts = await sign_ins(base, args.sign_ins, until, tallies["sign_ins"])
    await asyncio.gather(*api_tasks)
    out, errs = await asyncio.to_thread(injector.communicate)
    raised = len(out.split("\n")) - 1
    if injector.returncode != 0:
        print(errs[-2000:], file=sys.stderr)

    from sqlalchemy import select

    from metrosight.store.models import AlertRecord
    from metrosight.store.repo import Store

    store = Store.for_home(home)
    with store.uow.read() as s:
        alert_ids = sorted(s.scalars(select(AlertRecord.id).where(AlertRecord.camera_id.like("cam-load-%"))))
    deadline = time.monotonic() + 20  # let the feeds catch up with the last alerts
    while time.monotonic() < deadline and not all(set(alert_ids) <= set(f.received) for f in feeds):
        await asyncio.sleep(0.2)
    for t in feed_tasks:
        t.cancel()
    await asyncio.gather(*feed_tasks, return_exceptions=True)

    got = [len(set(alert_ids) & set(f.received)) for f in feeds]
    delays = [f.received[i] - f.created[i] for f in feeds for i in alert_ids if i in f.received and i in f.created]
    verify = store.audit.verify()
    entries = store.audit.entries()
    with store.uow.read() as s:
        from metrosight.policy.rules import alert_status
        from metrosight.store.models import AlertReview

        statuses: Counter = Counter()
        bad_status = 0
        for a in s.scalars(select(AlertRecord)):
            rs = [(r.user, r.action) for r in s.scalars(select(AlertReview).where(AlertReview.alert_id == a.id))]
            statuses[a.status] += 1
            bad_status += a.status != alert_status(rs)
    store.engine.dispose()
    dq = statistics.quantiles(delays, n=20) if len(delays) >= 2 else [0.0] * 19
    return {
        "feeds": {
            "clients": args.feeds,
            "opened": opened,
            "open_all_s": round(opened_s, 2),
            "reconnects": sum(max(0, f.opens - 1) for f in feeds),
            "closed_by_server": sum(f.server_closed for f in feeds),
            "alerts_raised": len(alert_ids),
            "injector_printed": raised,
            "received_min": min(got) if got else 0,
            "every_client_got_every_alert": all(g == len(alert_ids) for g in got),
            "delivery_p50_ms": round(1000 * statistics.median(delays), 1) if delays else None,
            "delivery_p95_ms": round(1000 * dq[18], 1) if delays else None,
            **tallies["feeds"].summary(),
        },
        "api": {
            "clients": args.api_clients,
            "reviews": {str(k): v for k, v in sorted(reviews.items())},
            **tallies["api"].summary(),
        },
        "sign_ins": {"concurrent": args.sign_ins, "bursts": bursts, **tallies["sign_ins"].summary()},
        "alerts_by_status": dict(statuses),
        "alerts_whose_status_disagrees_with_reviews": bad_status,
        "audit": {
            "entries": len(entries),
            "ok": verify.ok,
            "reason": verify.reason,
            "gap_free": [e.seq for e in entries] == list(range(entries[0].seq, entries[0].seq + len(entries)))
            if entries
            else True,
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--feeds", type=int, default=50)
    ap.add_argument("--api-clients", type=int, default=8)
    ap.add_argument("--sign-ins", type=int, default=200)
    ap.add_argument("--alert-every", type=float, default=1.5, help="seconds between the camera's alerts")
    ap.add_argument("--home", type=Path, default=None, help="a fresh home (default: a temporary folder)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "load.json")
    args = ap.parse_args()
    if args.api_clients > len(OPERATORS):
        ap.error(f"at most {len(OPERATORS)} API clients")

    home = args.home or Path(tempfile.mkdtemp(prefix="metrosight-load-"))
    tokens, subject_id = prepare(home)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    serve_log = home / "serve.log"
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from metrosight.cli import app; sys.argv[0] = 'metrosight'; app()",
            "--home",
            str(home),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-cameras",
        ],
        env=env,
        stdout=serve_log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                print(serve_log.read_text()[-3000:], file=sys.stderr)
                return 1
            time.sleep(0.2)
        t0 = time.time()
        res = asyncio.run(drive(args, base, tokens, home, subject_id))
        wall = time.time() - t0
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    errors_logged = sum("Traceback" in line or "ERROR" in line for line in serve_log.read_text().splitlines())
    res.update(
        seconds=args.seconds,
        wall_s=round(wall, 1),
        server_log_errors=errors_logged,
        machine={"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
        at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    f, a, s = res["feeds"], res["api"], res["sign_ins"]
    print(
        f"\nmetrosight serve under load on loopback, {args.seconds:.0f} s "
        f"(SQLite store; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})\n"
    )
    print("| clients | responses | 2xx | 4xx (429) | ≥ 500 | connection errors | p50 / p95 ms |")
    print("|---|---|---|---|---|---|---|")
    for name, row, n in (
        ("live feeds (opens)", f, args.feeds),
        ("API clients", a, args.api_clients),
        (f"sign-ins ({s['bursts']} bursts)", s, args.sign_ins),
    ):
        print(
            f"| {n} {name} | {row['responses']} | {row['2xx']} | {row['4xx']} ({row['429']}) | {row['5xx']} | "
            f"{row['connection_errors']} | {row['p50_ms']} / {row['p95_ms']} |"
        )
    print(
        f"\nlive feeds: {f['opened']}/{f['clients']} open in {f['open_all_s']} s; alerts raised {f['alerts_raised']}; "
        f"fewest received by a client {f['received_min']}; "
        f"every client got every alert: {f['every_client_got_every_alert']}; "
        f"reconnects {f['reconnects']}, closed by the server {f['closed_by_server']}; "
        f"delivery (stored → received) p50 {f['delivery_p50_ms']} ms, p95 {f['delivery_p95_ms']} ms"
    )
    print(
        f"reviews: {a['reviews']}; alerts by status {res['alerts_by_status']}; "
        f"status disagreeing with reviews: {res['alerts_whose_status_disagrees_with_reviews']}"
    )
    print(
        f"audit chain: {res['audit']['entries']} entries, verifies: {res['audit']['ok']}, "
        f"gap-free: {res['audit']['gap_free']}; "
        f"errors in the server log: {errors_logged}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    failed = (
        f["5xx"] + a["5xx"] + s["5xx"] + f["connection_errors"] + a["connection_errors"] + s["connection_errors"]
        or not f["every_client_got_every_alert"]
        or not res["audit"]["ok"]
        or res["alerts_whose_status_disagrees_with_reviews"]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
