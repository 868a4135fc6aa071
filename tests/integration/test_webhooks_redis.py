"""Webhooks in a Redis deployment: the outbound consumer (group ``outbound``, as ``serve --bus`` and ``consume``
run it) turns what workers publish on a real Redis into webhook deliveries, once per event even when the same
alert is published twice, and acknowledges what it queued."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from metrosight.bus.payloads import AlertV1, CameraStateV1, EntryRefV1
from metrosight.bus.redis_streams import RedisStreamsBus
from metrosight.bus.topics import ALERTS, CAMERA_STATE
from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.outbound.hosts import GROUP, start_redis
from metrosight.outbound.webhooks import add_subscription
from metrosight.services.installation import Installation
from metrosight.services.models import Models
from metrosight.services.suite import Services
from tests.integration.receivers import WebhookReceiver
from tests.integration.servers import RedisServer

pytestmark = pytest.mark.integration
FAST = {
    "outbound": {
        "webhooks": {
            "poll_seconds": 0.05,
            "backoff_initial_seconds": 0.1,
            "backoff_max_seconds": 0.5,
            "jitter_seconds": 0.05,
        }
    }
}


def services(home: Path) -> Services:
    inst = Installation.open(Home(home), Settings.model_validate(FAST))
    return Services.of(inst, Models(inst.settings, inst.home.cache))


def alert(event_id: str) -> AlertV1:
    return AlertV1(
        event_id=event_id,
        camera_id="cam-1",
        track_id=1,
        subject_id=1,
        subject="Miranda",
        watchlist="wl",
        category="wanted",
        score=0.97,
        distance=0.03,
        first_seen=1.0,
        last_seen=2.0,
        samples=3,
        crop_jpeg=b"\xff\xd8",
        entries=(EntryRefV1(entry_id=1, name="Miranda", watchlist="wl", category="wanted"),),
    )


def test_outbound_consumer_delivers_each_event_once(tmp_path: Path, redis_server: RedisServer) -> None:
    svc = services(tmp_path / "home")
    store = svc.store
    store.users.add("ada", ["admin"], None)
    rx = WebhookReceiver().start()
    publisher = RedisStreamsBus(redis_server.url, publish_timeout=5)
    try:
        _, rx.secret = add_subscription(store.webhooks, store.users.actor("ada"), "vms", rx.url)
        halt = start_redis(svc, redis_server.url)
        redis_server.wait_for_group(GROUP, (publisher.stream_key(ALERTS), publisher.stream_key(CAMERA_STATE)))
        publisher.publish(ALERTS, alert("cam-1:w:1.0"))
        publisher.publish(ALERTS, alert("cam-1:w:1.0"))  # the same alert re-raised by a resumed worker
        publisher.publish(CAMERA_STATE, CameraStateV1(camera_id="cam-1", state="live", wall_time=1.0))
        got = rx.wait_for(2, timeout=30)
        time.sleep(1.0)  # anything sent twice would have arrived by now
        halt()
        assert sorted(r.doc["type"] for r in rx.accepted()) == ["alert", "camera_state"]
        assert len(rx.got) == 2 and all(r.verified for r in got)
        # what was consumed is acknowledged: nothing pending in the group
        (g,) = [g for g in publisher.client.xinfo_groups(publisher.stream_key(ALERTS)) if g["name"] in (b"outbound",)]
        assert g["pending"] == 0
    finally:
        rx.stop()
        publisher.close()
