"""The Redis Streams bus and the camera leases against a real redis-server."""

from __future__ import annotations

import threading
import time

import pytest

from metrosight.bus.base import TOPIC_ALERT_UPDATES, TOPIC_ALERTS, Retry
from metrosight.bus.leases import Leases, Progress
from metrosight.bus.payloads import AlertUpdateV1, AlertV1
from metrosight.bus.redis_streams import BusUnavailable, RedisStreamsBus, connect

pytestmark = pytest.mark.integration


def alert(i: int, crop: bytes | None = b"\xff\xd8jpeg\x00\x01") -> AlertV1:
    return AlertV1(
        event_id=f"cam:s:{i}.0",
        camera_id="cam",
        track_id=i,
        subject_id=1,
        subject="P",
        watchlist="wl",
        category="wanted",
        score=0.95,
        distance=0.3,
        first_seen=1.0,
        last_seen=2.0,
        samples=3,
        crop_jpeg=crop,
    )


def bus(url: str, consumer: str = "c1", **kw) -> RedisStreamsBus:
    return RedisStreamsBus(url, prefix="t", consumer=consumer, **kw)


def test_round_trip_with_binary_crop_and_acknowledgement(redis_server):
    pub, sub = bus(redis_server.url), bus(redis_server.url)
    got: list[AlertV1] = []
    sub.subscribe(TOPIC_ALERTS, got.append)
    sub.ensure_groups()
    for i in range(5):
        pub.publish(TOPIC_ALERTS, alert(i))
    while sub.poll(block_ms=100):
        pass
    assert got == [alert(i) for i in range(5)]
    assert sub.lag()[TOPIC_ALERTS].pending == 0 and sub.acked == 5


def test_streams_are_bounded(redis_server):
    pub = bus(redis_server.url, maxlen=100)
    for i in range(2000):
        pub.publish(TOPIC_ALERTS, alert(i, crop=None))
    assert 100 <= pub.client.xlen(pub.stream_key(TOPIC_ALERTS)) < 400  # MAXLEN ~ trims whole macro-nodes


def test_entries_of_a_dead_consumer_are_reclaimed_and_handled_once(redis_server):
    pub = bus(redis_server.url)
    dead = bus(redis_server.url, consumer="dead")
    dead.subscribe(TOPIC_ALERTS, lambda p: None)
    dead.ensure_groups()
    for i in range(10):
        pub.publish(TOPIC_ALERTS, alert(i))
    # "dead" reads the entries and dies before acknowledging them
    dead.client.xreadgroup(dead.group, dead.consumer, {dead.stream_key(TOPIC_ALERTS): ">"}, count=100)
    live = bus(redis_server.url, consumer="live", claim_idle_seconds=0.3)
    got: list[str] = []
    live.subscribe(TOPIC_ALERTS, lambda p: got.append(p.event_id))
    live.ensure_groups()
    live.poll(block_ms=50)
    assert got == []  # still owned by "dead", not idle long enough
    time.sleep(0.4)
    live.poll(block_ms=50)
    assert sorted(got) == sorted(alert(i).event_id for i in range(10))
    assert live.lag()[TOPIC_ALERTS].pending == 0


def test_a_handler_that_asks_to_retry_gets_the_entry_again(redis_server):
    pub = bus(redis_server.url)
    sub = bus(redis_server.url, claim_idle_seconds=0.2)
    seen: list[str] = []
    ready = {"alert": False}

    def on_update(u: AlertUpdateV1) -> None:
        seen.append(u.event_id)
        if not ready["alert"]:
            raise Retry("alert not stored yet")

    sub.subscribe(TOPIC_ALERT_UPDATES, on_update)
    sub.ensure_groups()
    pub.publish(TOPIC_ALERT_UPDATES, AlertUpdateV1(event_id="e1", last_seen=3.0))
    sub.poll(block_ms=50)
    assert seen == ["e1"] and sub.lag()[TOPIC_ALERT_UPDATES].pending == 1
    ready["alert"] = True
    time.sleep(0.3)
    sub.poll(block_ms=50)
    assert seen == ["e1", "e1"] and sub.lag()[TOPIC_ALERT_UPDATES].pending == 0


def test_undecodable_entries_go_to_the_dead_letter_stream(redis_server):
    sub = bus(redis_server.url)
    got: list[object] = []
    sub.subscribe(TOPIC_ALERTS, got.append)
    sub.ensure_groups()
    sub.client.xadd(sub.stream_key(TOPIC_ALERTS), {"type": b"AlertV9", "json": b"{}"})
    sub.client.xadd(sub.stream_key(TOPIC_ALERTS), {"type": b"AlertV1", "json": b"{not json"})
    sub.poll(block_ms=50)
    assert got == [] and sub.client.xlen(sub.dead_key) == 2 and sub.lag()[TOPIC_ALERTS].pending == 0
    reasons = [f[b"dead:reason"].decode() for _, f in sub.client.xrange(sub.dead_key)]
    assert "unknown payload type 'AlertV9'" in reasons[0] and "malformed JSON" in reasons[1]


def test_publish_waits_for_a_restarted_redis_and_loses_nothing(durable_redis):
    pub = bus(durable_redis.url)
    pub.publish(TOPIC_ALERTS, alert(0))
    durable_redis.kill()
    done = threading.Event()

    def later() -> None:
        pub.publish(TOPIC_ALERTS, alert(1))  # blocks until Redis is back
        done.set()

    t = threading.Thread(target=later)
    t.start()
    time.sleep(0.5)
    assert not done.is_set()
    durable_redis.start()
    t.join(20)
    assert done.is_set()
    sub = bus(durable_redis.url)
    got: list[str] = []
    sub.subscribe(TOPIC_ALERTS, lambda p: got.append(p.event_id))
    sub.poll(block_ms=50)
    assert got == [alert(0).event_id, alert(1).event_id]


def test_publish_gives_up_after_its_timeout(redis_server):
    pub = bus(redis_server.url, publish_timeout=0.3)
    redis_server.kill()
    with pytest.raises(BusUnavailable, match="did not accept"):
        pub.publish(TOPIC_ALERTS, alert(0))


def test_leases_claim_renew_expire_and_fence_progress(redis_server):
    c = connect(redis_server.url)
    a, b = Leases(c, "a", 0.3, prefix="t"), Leases(c, "b", 0.3, prefix="t")
    assert a.claim("cam-1") and not b.claim("cam-1")
    assert a.renew("cam-1") and not b.renew("cam-1")
    p = Progress(source="x.mp4", token="tok", checkpoint=10, checkpoint_ts=0.4, frame=12)
    assert a.save_progress("cam-1", p) and not b.save_progress("cam-1", p)
    assert b.progress("cam-1") == Progress("x.mp4", "tok", 10, 0.4, 12, False, "a")
    time.sleep(0.4)  # a died: its lease expired
    assert a.holder("cam-1") is None and b.claim("cam-1")
    assert not a.renew("cam-1")  # a comes back: it must stop the camera
    b.release("cam-1")
    assert a.renew("cam-1")  # lapsed and free: re-taken
    a.announce()
    b.announce()
    assert a.live_workers() == ["a", "b"]
    b.retire()
    assert a.live_workers() == ["a"]
