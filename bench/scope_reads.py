"""What scoped roles cost on reads: the alert list, one alert's detail, the live feed's read and the alert counts,
for a global operator and for one scoped to half the cameras, on SQLite (the home's database).

N alerts are stored, half on each of two lines; a tenth of them are episodes with a sighting on each line (seen in
part by the scoped operator, who gets a copy made of the sightings of their line). Median of R repeats each.

    python bench/scope_reads.py [--alerts 2000] [--repeats 20] [--out bench/results/scope_reads.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))


def _populate(root: Path, n: int):  # type: ignore[no-untyped-def]
    from metrosight.bus.payloads import AlertV1
    from metrosight.config.model import Settings
    from metrosight.core.types import Category
    from metrosight.policy.scope import CameraGroups, Scope
    from metrosight.services.sinks import AlertSink
    from metrosight.store.repo import Store
    from tests.scope_world import ADA, BOB, CAMERAS, vec

    groups = CameraGroups.of(Settings.model_validate({"cameras": CAMERAS}).camera_group_members())
    store = Store.for_home(root, camera_groups=groups)
    store.users.add("ada", sorted(ADA.roles), None)
    store.users.add("bob", sorted(BOB.roles), ADA)
    store.users.add("olga", ["operator"], ADA, scopes={"operator": Scope.parse(["cameras:line-a"])})
    store.watchlists.create("wl", Category.WANTED, ADA)
    from datetime import UTC, datetime, timedelta

    from metrosight.policy.rules import Authorisation

    auth = Authorisation("law", "court", "R-1", datetime.now(UTC) + timedelta(days=30))
    entry, _ = store.entries.enroll("wl", "Person", vec(1), "m", "p.jpg", "a" * 64, 0.9, ADA, auth)
    store.entries.approve("wl", "Person", BOB)
    sink = AlertSink(store, root / "media", None)
    t0 = time.time() - 10 * 86400
    for i in range(n):
        cams = ["cam-a1", "cam-b1"] if i % 10 == 0 else ["cam-a1" if i % 2 else "cam-b1"]
        for k, cam in enumerate(cams):
            sink.on_alert(
                AlertV1(
                    event_id=f"{cam}:{i}:{k}",
                    camera_id=cam,
                    track_id=i,
                    subject_id=entry,
                    subject="Person",
                    watchlist="wl",
                    category="wanted",
                    score=0.9,
                    distance=0.3,
                    first_seen=0.0,
                    last_seen=1.0,
                    samples=1,
                    group="hub",
                    media_origin=t0 + 600 * i + 5 * k,  # 10 minutes apart: an alert each (a second sighting joins)
                )
            )
    return store


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(1000 * statistics.median(times), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alerts", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "scope_reads.json")
    args = ap.parse_args()
    from metrosight.store.scoping import ALERT_READERS

    with tempfile.TemporaryDirectory() as tmp:
        store = _populate(Path(tmp), args.alerts)
        some = store.alerts.all()[len(store.alerts.all()) // 2].id
        rows = []
        for who in ("bob", "olga"):
            actor = store.users.actor(who)
            view = store.scoping.view(actor, ALERT_READERS)
            seen = sum(store.alerts.status_counts(view).values())
            rows.append(
                {
                    "reader": f"{who} ({'global' if view.everything else 'line-a'})",
                    f"alerts seen of {args.alerts}": seen,
                    "list 100 (ms)": _median_ms(lambda a=actor: store.reviews.all(a, None, 100), args.repeats),
                    "detail (ms)": _median_ms(lambda a=actor: store.reviews.sightings(some, a), args.repeats),
                    "feed read 100 (ms)": _median_ms(lambda v=view: store.feed.alerts_after(0, v, 100), args.repeats),
                    "counts (ms)": _median_ms(lambda v=view: store.alerts.status_counts(v), args.repeats),
                }
            )
    keys = list(rows[0])
    print(" | ".join(keys))
    for r in rows:
        print(" | ".join(str(r[k]) for k in keys))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"alerts": args.alerts, "repeats": args.repeats, "rows": rows}, indent=2))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
