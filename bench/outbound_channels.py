"""The MQTT and syslog channels against real receivers on loopback (mosquitto started here; a TCP syslog collector
in this process that parses every record as RFC 5424), on SQLite.

- **syslog backlog**: N audit entries are written while no forwarder runs, then one starts: how long until the
  collector has them all (entries a second), and nothing missing or repeated.
- **syslog latency**: entries written one at a time while the forwarder runs (``poll_seconds`` 0.5, the default):
  time from the audit write's commit to the record's arrival (p50 / p95 / max).
- **MQTT**: N alert events offered to the channel (QoS 1, TLS off) and received by a subscriber: offers a second,
  and the time from offer to arrival (p50 / p95 / max).

    python bench/outbound_channels.py [--entries 2000] [--alerts 2000] [--out bench/results/outbound_channels.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def syslog_rows(n: int, work: Path) -> list[dict]:
    from metrosight.config.channels import SyslogConfig
    from metrosight.outbound.syslog import SyslogForwarder
    from metrosight.store.repo import Store
    from tests.integration.receivers import SyslogReceiver

    (work / "home").mkdir()
    store = Store.for_home(work / "home")
    for i in range(n):
        store.audit.record("bench", "bench.act", f"t{i}", {"i": i})
    rx = SyslogReceiver().start()
    cfg = SyslogConfig(host="127.0.0.1", port=rx.port)
    fwd = SyslogForwarder(cfg, store.audit)
    t0 = time.perf_counter()
    fwd.start()
    assert rx.wait_for(lambda r: len(r) >= n, 600)
    backlog_s = time.perf_counter() - t0
    seqs = [int(r.sd["audit@32473"]["seq"]) for r in rx.records]
    assert seqs == list(range(1, n + 1)), "missing or repeated entries"
    lat = []
    for i in range(50):
        t = time.perf_counter()
        store.audit.record("bench", "bench.live", f"l{i}", {})
        assert rx.wait_for(lambda r, k=n + i + 1: len(r) >= k, 30)
        lat.append((time.perf_counter() - t) * 1000)
    fwd.stop(5.0)
    rx.stop()
    return [
        {
            "channel": "syslog",
            "what": f"backlog of {n} entries",
            "per_second": round(n / backlog_s),
            "seconds": round(backlog_s, 2),
        },
        {
            "channel": "syslog",
            "what": "one entry, write to arrival (poll 0.5 s)",
            "p50_ms": round(statistics.median(lat), 1),
            "p95_ms": round(_pct(lat, 0.95), 1),
            "max_ms": round(max(lat), 1),
        },
    ]


def mqtt_rows(n: int, work: Path) -> list[dict]:
    from metrosight.bus.payloads import AlertV1
    from metrosight.config.channels import MqttConfig
    from metrosight.outbound.events import to_outbound
    from metrosight.outbound.mqtt import MqttChannel
    from tests.integration.receivers import Mosquitto, Subscriber

    broker = Mosquitto(work / "mq").start()
    sub = Subscriber(broker, "bench/alerts")
    ch = MqttChannel(MqttConfig(host="127.0.0.1", port=broker.port, topic_prefix="bench"))
    while not ch.client.is_connected():
        time.sleep(0.01)
    sent: dict[str, float] = {}
    t0 = time.perf_counter()
    for i in range(n):
        a = AlertV1(
            event_id=f"a{i}",
            camera_id="cam",
            track_id=i,
            subject_id=1,
            subject="Ann",
            watchlist="wl",
            category="wanted",
            score=0.9,
            distance=0.3,
            first_seen=0.0,
            last_seen=1.0,
            samples=3,
        )
        sent[a.event_id] = time.perf_counter()
        ch.offer(to_outbound("alerts", a, {}, time.time()))
    offer_s = time.perf_counter() - t0
    assert sub.wait_for(lambda ms: len(ms) >= n, 120)
    total_s = time.perf_counter() - t0
    ch.close()
    sub.close()
    broker.stop()
    ids = [json.loads(m.payload)["id"] for m in sub.messages]
    assert ids == [f"a{i}" for i in range(n)], "missing, repeated or reordered"
    return [
        {
            "channel": "mqtt",
            "what": f"{n} alerts offered (QoS 1)",
            "per_second": round(n / offer_s),
            "seconds": round(offer_s, 2),
        },
        {
            "channel": "mqtt",
            "what": f"{n} alerts all received",
            "per_second": round(n / total_s),
            "seconds": round(total_s, 2),
        },
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=2000)
    ap.add_argument("--alerts", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "outbound_channels.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="metrosight-bench-") as tmp:
        rows = syslog_rows(args.entries, Path(tmp)) + mqtt_rows(args.alerts, Path(tmp))
    print(f"{'channel':8} {'what':45} {'per s':>8} {'s':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for r in rows:
        print(
            f"{r['channel']:8} {r['what']:45} {r.get('per_second', ''):>8} {r.get('seconds', ''):>7} "
            f"{r.get('p50_ms', ''):>8} {r.get('p95_ms', ''):>8} {r.get('max_ms', ''):>8}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "cpus": os.cpu_count()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
