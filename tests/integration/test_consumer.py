"""The store consumer on real Redis and PostgreSQL: duplicates, updates before their alert, batches of events."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from cryptography.fernet import Fernet

from metrosight.bus.base import TOPIC_ALERT_UPDATES, TOPIC_ALERTS, TOPIC_EVENT_UPDATES, TOPIC_EVENTS
from metrosight.bus.payloads import AlertUpdateV1, AlertV1, EventUpdateV1, EventV1
from metrosight.bus.redis_streams import RedisStreamsBus
from metrosight.core.types import Category
from metrosight.pipeline.consumer import StoreConsumer, make_bus
from metrosight.policy.crypto import KeyRing
from metrosight.policy.rules import Authorisation
from metrosight.store.db import open_engine
from metrosight.store.models import AlertRecord, EventRecord, Sighting
from metrosight.store.repo import Store

pytestmark = pytest.mark.integration

KEY = Fernet.generate_key()  # the installation's master key: this test's store and the consumer processes share it


@pytest.fixture()
def store(pg_url) -> Store:
    s = Store(open_engine(pg_url), KeyRing(KEY))
    s.users.add("ada", ["admin", "approver"], None)
    ada = s.users.actor("ada")
    s.watchlists.create("wl", Category.WANTED, ada)
    auth = Authorisation("law", "court", "R-1", datetime.now(UTC) + timedelta(days=3))
    s.entries.enroll("wl", "Person", np.ones(128, np.float32), "m", "p.jpg", "ab" * 32, 0.9, ada, auth)
    return s


def alert(eid: str, sid: int) -> AlertV1:
    return AlertV1(
        event_id=eid,
        camera_id="cam",
        track_id=1,
        subject_id=sid,
        subject="Person",
        watchlist="wl",
        category="wanted",
        score=0.95,
        distance=0.3,
        first_seen=1.0,
        last_seen=2.0,
        samples=3,
        crop_jpeg=b"\xff\xd8crop",
    )


def event(eid: str) -> EventV1:
    return EventV1(event_id=eid, camera_id="cam", kind="loitering", start_ts=3.0, data={"zone": "platform"})


def test_everything_is_stored_exactly_once_whatever_the_order_and_repeats(store, redis_server, tmp_path):
    sid = store.entries.all()[0].id
    pub = RedisStreamsBus(redis_server.url)
    # an update published before its alert (another worker's), duplicates of everything
    pub.publish(TOPIC_ALERT_UPDATES, AlertUpdateV1(event_id="a1", last_seen=9.0))
    pub.publish(TOPIC_EVENT_UPDATES, EventUpdateV1(event_id="e1", end_ts=70.0, data={"duration_s": 67.0}))
    for _ in range(2):
        pub.publish(TOPIC_ALERTS, alert("a1", sid))
        for i in range(300):
            pub.publish(TOPIC_EVENTS, event(f"e{i}"))
    consumer = StoreConsumer(store, tmp_path / "media", make_bus(redis_server.url, "c1", claim_idle_seconds=0.3))
    stop = threading.Event()
    t = threading.Thread(target=consumer.run, args=(stop,))
    t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lag = consumer.bus.lag()
        if all(v.pending == 0 and not v.undelivered for v in lag.values()):
            break
        time.sleep(0.1)
    stop.set()
    t.join(10)
    assert store.count(AlertRecord) == 1 and store.count(EventRecord) == 300
    [a] = store.alerts.all()
    assert a.last_seen == 9.0 and a.crop_path and Path(a.crop_path).is_file()
    assert Path(a.crop_path).read_bytes() != b"\xff\xd8crop"  # encrypted at rest
    e1 = next(e for e in store.events.all() if e.event_id == "e1")
    assert e1.end_ts == 70.0 and e1.data["duration_s"] == 67.0
    assert consumer.stored_alerts == 1 and consumer.duplicate_alerts == 1 and consumer.stored_events == 300
    assert consumer.bus.dead == 0  # (updates are read after their alerts and events: no retry was needed)
    assert store.audit.verify().ok


def test_save_events_skips_stored_ids(store):
    rows = [{"event_id": f"x{i}", "camera_id": "cam", "kind": "fast_movement", "start_ts": 1.0} for i in range(5)]
    assert store.events.save_many(rows) == 5
    assert (
        store.events.save_many(rows + [{"event_id": "x9", "camera_id": "cam", "kind": "loitering", "start_ts": 2.0}])
        == 1
    )
    assert store.count(EventRecord) == 6


def test_serve_startup_hook_consumes_into_the_apps_store_and_live_bus(pg_url, redis_server, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from metrosight.api.app import create_app
    from metrosight.bus.inproc import InProcessBus
    from metrosight.config.home import Home
    from metrosight.config.model import Settings
    from metrosight.pipeline.consumer import startup_hook
    from metrosight.services.suite import Services

    monkeypatch.setenv("METROSIGHT_MASTER_KEY", Fernet.generate_key().decode())
    rt = Services.open(Home(tmp_path / "home"), Settings.model_validate({"storage": {"database_url": pg_url}}))
    rt.store.users.add("ada", ["admin", "approver"], None)
    ada = rt.store.users.actor("ada")
    rt.store.watchlists.create("wl", Category.WANTED, ada)
    auth = Authorisation("law", "court", "R-1", datetime.now(UTC) + timedelta(days=3))
    sid, _ = rt.store.entries.enroll("wl", "Person", np.ones(128, np.float32), "m", "p.jpg", "ab" * 32, 0.9, ada, auth)
    live = InProcessBus()
    woken: list[str] = []
    live.subscribe(TOPIC_ALERTS, lambda a: woken.append(a.event_id))
    app = create_app(rt, bus=live, startup=[startup_hook(redis_server.url)])
    with TestClient(app):
        RedisStreamsBus(redis_server.url).publish(TOPIC_ALERTS, alert("cam:x:1.0", sid))
        deadline = time.monotonic() + 20
        while not rt.store.alerts.has("cam:x:1.0") and time.monotonic() < deadline:
            time.sleep(0.1)
    assert rt.store.alerts.has("cam:x:1.0") and woken == ["cam:x:1.0"]


def test_a_consumer_killed_mid_stream_loses_nothing_its_peer_claims_its_entries(store, pg_url, redis_server, tmp_path):
    """Two `metrosight consume` processes (as two `serve` replicas would); one is SIGKILLed while it holds
    delivered, unacknowledged entries; the other claims them: everything is stored exactly once."""
    import os
    import signal
    import subprocess
    import sys

    import redis

    sid = store.entries.all()[0].id
    pub = RedisStreamsBus(redis_server.url)
    for i in range(40):
        pub.publish(TOPIC_ALERTS, alert(f"a{i}", sid))
        pub.publish(TOPIC_ALERT_UPDATES, AlertUpdateV1(event_id=f"a{i}", last_seen=5.0))
    for i in range(3000):
        pub.publish(TOPIC_EVENTS, event(f"e{i}"))
    exe = str(Path(sys.executable).with_name("metrosight"))
    # the consumers key the audit chain with the same master key as this test's store (one installation)
    env = {**os.environ, "METROSIGHT_MASTER_KEY": KEY.decode()}
    procs = [
        subprocess.Popen(
            [
                exe,
                "--home",
                str(tmp_path / f"h{i}"),
                "consume",
                "--bus",
                redis_server.url,
                "--db",
                pg_url,
                "--name",
                f"c{i}",
                "--claim-idle",
                "1",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(2)
    ]
    check = make_bus(redis_server.url, "observer")
    check.subscribe(TOPIC_EVENTS, lambda p: None)
    deadline = time.monotonic() + 60
    held: list = []
    while time.monotonic() < deadline:  # c0 holds some delivered, unacknowledged entries
        try:
            held = check.client.xpending_range(
                check.stream_key(TOPIC_EVENTS), "store", "-", "+", 1000, consumername="c0"
            )
            if held:
                break
        except redis.ResponseError:  # the consumers have not created the group yet
            pass
        time.sleep(0.01)
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait(10)
    assert held, "the first consumer never held a delivered entry"
    while time.monotonic() < deadline and (
        store.count(EventRecord) < 3000 or any(v.pending for v in check.lag().values())
    ):
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGTERM)
    procs[1].wait(30)
    # 40 sightings of one person on one camera, stored by two consumers at once: every one once, in one episode
    assert store.count(EventRecord) == 3000 and store.count(Sighting) == 40 and store.count(AlertRecord) == 1
    [a] = store.alerts.all()
    assert a.sightings == 40 and all(sg.last_seen == 5.0 for sg in store.alerts.sightings(a.id))
    assert store.audit.verify().ok
