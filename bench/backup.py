"""Cost of `metrosight backup` and `restore` on SQLite: time, file sizes, and the database online during the backup.

A home gets N alerts, each with a 12 KB encrypted crop (the size of a redacted best shot), through the store, then
is backed up (median of 3) and restored into fresh homes (median of 3); the restored home's audit chain is verified
every time. Measured on this shared 2-core machine: wall and process CPU time. Also the time a store write waits
while a backup of the same home runs (the SQLite online backup API copies pages between short read locks).

    python bench/backup.py [--alerts 200,2000] [--out bench/results/backup.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

PASS = "velvet compass harbour"


def _home(root: Path, n: int):  # type: ignore[no-untyped-def]
    import numpy as np

    from metrosight.bus.payloads import AlertV1
    from metrosight.config.home import Home, media_file
    from metrosight.core.types import Category, Match
    from metrosight.policy.rules import Actor, Authorisation
    from metrosight.store.repo import Store

    ada = Actor("ada", frozenset({"admin", "approver", "operator"}))
    bob = Actor("bob", frozenset({"approver", "operator"}))
    Home(root).ensure()
    st = Store.for_home(root)
    st.users.add("ada", ["admin", "approver", "operator"], None)
    st.users.add("bob", ["approver", "operator"], ada)
    st.watchlists.create("wl", Category.WANTED, ada)
    auth = Authorisation("law", "court", "R-1", datetime.now(UTC) + timedelta(days=30))
    v = np.ones(128, np.float32) / np.sqrt(128)
    st.entries.enroll("wl", "Ann", v, "m", "a.jpg", "a" * 64, 0.9, ada, auth)
    st.entries.approve("wl", "Ann", bob)
    entry = st.entries.all("wl")[0]
    m = Match(entry.id, "Ann", "wl", Category.WANTED, 0.95, 0.3)
    crop = os.urandom(12_000)
    for i in range(n):
        path = media_file(root / "media", "alerts", f"cam-{i % 50}", f"e{i}", ".jpg.enc")
        path.write_bytes(st.watchlists.encrypt_for("wl", crop))
        # cameras far apart in time: every sighting is an alert of its own
        st.alerts.store_sighting(
            AlertV1.of_match(
                m,
                camera_id=f"cam-{i % 50}",
                track_id=i,
                first_seen=1.0,
                last_seen=2.0,
                event_id=f"e{i}",
                samples=3,
                group=None,
                media_origin=1e9 + i * 1000,
            ),
            str(path),
        )
    return st


def _timed(fn):  # type: ignore[no-untyped-def]
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def one(n: int, work: Path) -> dict:
    from metrosight.config.home import Home
    from metrosight.ops.backup import create_backup, restore_backup
    from metrosight.policy.crypto import load_master_key
    from metrosight.store.repo import Store, checkpoint_path

    src = work / f"src-{n}"
    st = _home(src, n)
    key = load_master_key(src)
    backups, restores = [], []
    res = None
    for i in range(3):
        res, wall, cpu = _timed(
            lambda i=i: create_backup(st, src, key, checkpoint_path(src), work / f"out-{n}-{i}", PASS, "ada")
        )
        backups.append((wall, cpu))

    def open_store(home: Path, url: str | None) -> Store:
        Home(home).ensure()
        return Store.for_home(home, url)

    for i in range(3):
        r, wall, cpu = _timed(lambda i=i: restore_backup(res.data, res.keys, PASS, work / f"dst-{n}-{i}", open_store))
        assert r.audit.ok, r.audit
        restores.append((wall, cpu))
    # a write while a backup runs: how long does it wait?
    waits: list[float] = []
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            st.audit.record("ada", "bench.write", None, {})
            waits.append(time.perf_counter() - t)
            time.sleep(0.01)

    base: list[float] = []
    for _ in range(30):  # the same write with no backup running
        t = time.perf_counter()
        st.audit.record("ada", "bench.write", None, {})
        base.append(time.perf_counter() - t)
        time.sleep(0.01)
    th = threading.Thread(target=writer)
    th.start()
    create_backup(st, src, key, checkpoint_path(src), work / f"out-{n}-live", PASS, "ada")
    stop.set()
    th.join()
    db = (src / "metrosight.db").stat().st_size
    media = sum(p.stat().st_size for p in (src / "media").rglob("*") if p.is_file())
    return {
        "alerts": n,
        "db_bytes": db,
        "media_bytes": media,
        "backup_bytes": res.data.stat().st_size,
        "keys_bytes": res.keys.stat().st_size,
        "backup_wall_s": statistics.median(b[0] for b in backups),
        "backup_cpu_s": statistics.median(b[1] for b in backups),
        "restore_wall_s": statistics.median(r[0] for r in restores),
        "restore_cpu_s": statistics.median(r[1] for r in restores),
        "write_idle_p50_ms": 1000 * statistics.median(base),
        "write_wait_p50_ms": 1000 * statistics.median(waits) if waits else None,
        "write_wait_max_ms": 1000 * max(waits) if waits else None,
        "writes_during_backup": len(waits),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alerts", default="200,2000")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "backup.json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="metrosight-bench-backup-") as tmp:
        for n in (int(x) for x in args.alerts.split(",")):
            rows.append(one(n, Path(tmp)))
            shutil.rmtree(Path(tmp), ignore_errors=True)
            Path(tmp).mkdir(exist_ok=True)
    print(
        f"{'alerts':>7} {'db MB':>7} {'media MB':>9} {'backup MB':>10} {'backup s (cpu)':>15} {'restore s (cpu)':>16} "
        f"{'write ms idle p50':>18} {'during backup p50/max':>22}"
    )
    for r in rows:
        sizes = f"{r['db_bytes'] / 1e6:>7.2f} {r['media_bytes'] / 1e6:>9.2f} {r['backup_bytes'] / 1e6:>10.2f}"
        b, r_ = (
            f"{r['backup_wall_s']:.2f} ({r['backup_cpu_s']:.2f})",
            f"{r['restore_wall_s']:.2f} ({r['restore_cpu_s']:.2f})",
        )
        times = f"{b:>15} {r_:>16}"
        waits = (
            f"{r['write_idle_p50_ms']:>18.1f} {r['write_wait_p50_ms'] or 0:>12.1f} / {r['write_wait_max_ms'] or 0:.1f}"
        )
        print(f"{r['alerts']:>7} {sizes} {times} {waits}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"rows": rows, "machine": "shared 2-core", "when": datetime.now(UTC).isoformat()}, indent=1)
    )


if __name__ == "__main__":
    main()
