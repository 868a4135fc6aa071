"""What the keyed audit chain and its signed checkpoints cost: appends a second, checkpoint file bytes per entry,
and `audit verify` time, for the keyed chain with checkpoints against the old unkeyed chain (no checkpoints).

Each row appends N standalone entries (``Store.record``, one transaction each, as an audited read does) to a fresh
SQLite store in a temporary folder, then verifies the whole log.

    python bench/audit_chain.py [--entries 2000] [--out bench/results/audit_chain.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(n: int, keyed: bool) -> dict:
    from metrosight.audit import log as audit_log
    from metrosight.store.repo import Store

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        store = Store.for_home(root)
        if not keyed:  # the previous design: plain SHA-256 links, no checkpoint file
            store.audit.log.key = None  # type: ignore[assignment]
            store.audit.log.checkpoints = None
        store.users.add("ada", ["admin"], None)
        t0 = time.perf_counter()
        for i in range(n):
            store.audit.record("ada", "bench.append", f"item:{i}", {"i": i})
        store.checkpoint()
        append_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = store.audit.verify() if keyed else audit_log.verify(store.audit.entries(), None)
        verify_s = time.perf_counter() - t0
        assert res.ok, res
        cp = root / "audit.checkpoints"
        cp_bytes = cp.stat().st_size if keyed and cp.exists() else 0
        lines = len(cp.read_text().splitlines()) if keyed and cp.exists() else 0
        store.engine.dispose()
    return {
        "chain": "keyed + checkpoints" if keyed else "unkeyed (before)",
        "entries": n + 1,
        "appends_per_s": round(n / append_s, 1),
        "ms_per_append": round(1000 * append_s / n, 3),
        "checkpoint_lines": lines,
        "checkpoint_bytes_per_entry": round(cp_bytes / (n + 1), 1),
        "verify_s": round(verify_s, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "audit_chain.json")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    rows = [measure(args.entries, keyed=False), measure(args.entries, keyed=True)]
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
