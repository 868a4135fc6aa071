"""Cost of scrubbing revoked templates on PostgreSQL: ``VACUUM (FULL)`` of ``templates`` after a revocation.

For each gallery size a fresh database on a throwaway, durable (fsync on) PostgreSQL server gets two approved
entries through the store, then the gallery is filled to N templates (realistic Fernet ciphertexts) by bulk
insert. Measured: the revocation of one entry as the store does it (transaction + VACUUM (FULL) of templates),
the same revocation without the rewrite, and ``VACUUM (FULL) templates`` alone (median of 5: the time the table's
ACCESS EXCLUSIVE lock is held, during which gallery reads wait), with the table's size.

    python bench/pg_scrub.py [--sizes 1000,10000,50000] [--out bench/results/pg_scrub.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))


def one_size(pg, n: int) -> dict:
    import numpy as np
    from cryptography.fernet import Fernet
    from sqlalchemy import insert, select, text

    from metrosight.core.types import Category
    from metrosight.policy.crypto import KeyRing
    from metrosight.policy.rules import Actor, Authorisation
    from metrosight.store.db import open_engine
    from metrosight.store.models import Subject, Template
    from metrosight.store.repo import Store

    ada, bob = Actor("ada", frozenset({"admin", "approver"})), Actor("bob", frozenset({"approver"}))
    url = pg.create_database(f"scrub_{n}")
    store = Store(open_engine(url), KeyRing(Fernet.generate_key()))
    store.users.add("ada", ["admin", "approver"], None)
    store.users.add("bob", ["approver"], ada)
    store.watchlists.create("wl", Category.WANTED, ada)
    auth = Authorisation("law", "court", "R-1", datetime.now(UTC) + timedelta(days=3))
    rng = np.random.default_rng(1)
    names = [f"P{i}" for i in range(6)]
    for name in names:
        store.entries.enroll(
            "wl", name, rng.normal(size=128).astype(np.float32), "m", "p.jpg", "a" * 64, 0.9, ada, auth
        )
        store.entries.approve("wl", name, bob)
    wrapped = store.watchlists.wrapped_key("wl")
    with store.uow.write() as s:
        keep = s.scalar(select(Subject.id).where(Subject.name == names[-1]))
        rows = [
            {
                "subject_id": keep,
                "model": "m",
                "source_name": "p.jpg",
                "source_sha256": "a" * 64,
                "quality": 0.9,
                "added_by": "ada",
                "held": False,
                "descriptor": store.keyring.encrypt(wrapped, rng.normal(size=128).astype("<f4").tobytes()),
            }
            for _ in range(n - len(names))
        ]
        for i in range(0, len(rows), 2000):
            s.execute(insert(Template), rows[i : i + 2000])
    with store.engine.connect() as c:
        total = c.execute(text("SELECT count(*) FROM templates")).scalar()
        size = c.execute(text("SELECT pg_total_relation_size('templates')")).scalar()

    t0 = time.perf_counter()
    store.entries.revoke("wl", names[0], bob, "bench")  # with the rewrite (as shipped)
    with_scrub = time.perf_counter() - t0
    store._vacuum_full = lambda tables: None  # type: ignore[method-assign]
    t0 = time.perf_counter()
    store.entries.revoke("wl", names[1], bob, "bench")  # the same without it
    without = time.perf_counter() - t0
    vac = []
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        for _ in range(5):
            t0 = time.perf_counter()
            c.exec_driver_sql("VACUUM (FULL) templates")
            vac.append(time.perf_counter() - t0)
    store.engine.dispose()
    return {
        "templates": total,
        "table_mib": round(size / 2**20, 2),
        "revoke_with_vacuum_full_ms": round(with_scrub * 1000, 1),
        "revoke_without_ms": round(without * 1000, 1),
        "vacuum_full_median_ms": round(statistics.median(vac) * 1000, 1),
        "vacuum_full_max_ms": round(max(vac) * 1000, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pg_scrub.json")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    from tests.integration.servers import PostgresServer, pg_binary

    console = Console(width=150)
    if pg_binary("initdb") is None:
        console.print("[red]error:[/] needs PostgreSQL (apt-get install postgresql)")
        return 2
    pg = PostgresServer(durable=True)
    pg.start()
    try:
        rows = [one_size(pg, int(n)) for n in args.sizes.split(",")]
    finally:
        pg.stop()
    table = Table(
        title=f"VACUUM (FULL) templates after a revocation, PostgreSQL (fsync on), {os.cpu_count()} cores (shared)"
    )
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
