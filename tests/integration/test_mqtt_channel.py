"""The MQTT channel against Debian's mosquitto started by the test (TLS with a test CA, a password file), and a
paho subscriber in the test: topics, QoS 1, retained camera states, availability with the last will, messages held
while the broker is down, a refused password that is never logged."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from metrosight.bus.payloads import AlertV1, CameraStateV1
from metrosight.config.channels import MqttConfig, TlsConfig
from metrosight.outbound.events import to_outbound
from metrosight.outbound.mqtt import MqttChannel
from tests.integration.receivers import Mosquitto, Subscriber, make_test_pki

pytestmark = pytest.mark.integration
SECRET = "Br0ker-pässword"
NOW = 1_800_000_000.0


def alert(i: int) -> AlertV1:
    return AlertV1(
        event_id=f"e{i}",
        camera_id="cam-1",
        track_id=i,
        subject_id=1,
        subject="Ann",
        watchlist="wanted",
        category="wanted",
        score=0.9,
        distance=0.3,
        first_seen=float(i),
        last_seen=float(i) + 1,
        samples=3,
        crop_jpeg=b"\xff\xd8",
    )


def state(s: str) -> CameraStateV1:
    return CameraStateV1(camera_id="cam-1", state=s, wall_time=NOW + len(s))  # type: ignore[arg-type]


@pytest.fixture()
def broker(tmp_path: Path):
    pki = make_test_pki(tmp_path / "pki")
    b = Mosquitto(tmp_path / "mq", users={"metrosight": SECRET, "reader": "r-pass"}, pki=pki).start()
    yield b
    b.stop()


def config(broker: Mosquitto, tmp_path: Path, **kw) -> MqttConfig:
    pw = tmp_path / "mqtt.password"
    pw.write_text(SECRET + "\n")
    base = {
        "host": "localhost",
        "port": broker.port,
        "tls": TlsConfig(ca_file=broker.pki.ca) if broker.pki is not None else None,
        "username": "metrosight",
        "password_file": pw,
        "topic_prefix": "metro",
        "retry_max_seconds": 1.0,
    }
    return MqttConfig(**{**base, **kw})


def test_events_arrive_on_their_topics_with_qos_1_and_states_retained(broker, tmp_path):
    sub = Subscriber(broker, "metro/#", "reader", "r-pass")
    ch = MqttChannel(config(broker, tmp_path))
    try:
        assert sub.wait_for(lambda ms: any(m.topic == "metro/availability" and m.payload == b"online" for m in ms), 10)
        ch.offer(to_outbound("alerts", alert(1), {}, NOW))
        ch.offer(to_outbound("alerts", alert(1), {}, NOW))  # a redelivered bus message: published once
        ch.offer(to_outbound("camera-state", state("live"), {}, NOW))
        assert sub.wait_for(lambda ms: len([m for m in ms if m.topic.startswith("metro/cameras")]) >= 1, 10)
        assert sub.wait_for(lambda ms: len(sub.on("metro/alerts")) >= 1, 10)
    finally:
        ch.close()
    [a] = sub.on("metro/alerts")
    body = json.loads(a.payload)
    assert (body["id"], body["schema"], body["data"]["subject"], a.qos) == ("e1", "metrosight.alert/1", "Ann", 1)
    assert "crop_jpeg" not in body["data"]
    assert json.loads(sub.on("metro/cameras/cam-1/state")[0].payload)["data"]["state"] == "live"
    assert sub.wait_for(lambda ms: ms[-1].topic == "metro/availability" and ms[-1].payload == b"offline", 10)
    sub.close()
    # a subscriber that comes later gets the camera's last state and the availability, retained
    late = Subscriber(broker, "metro/#", "reader", "r-pass")
    try:
        assert late.wait_for(lambda ms: len(ms) >= 2, 10)
        retained = {m.topic: m for m in late.messages}
        assert retained["metro/cameras/cam-1/state"].retain and retained["metro/availability"].payload == b"offline"
        assert "metro/alerts" not in retained
    finally:
        late.close()


def test_the_last_will_says_offline_when_the_connection_is_lost(broker, tmp_path):
    sub = Subscriber(broker, "metro/availability", "reader", "r-pass")
    ch = MqttChannel(config(broker, tmp_path, keepalive_seconds=5))
    try:
        assert sub.wait_for(lambda ms: ms and ms[-1].payload == b"online", 10)
        ch.client.loop_stop()
        sock = ch.client.socket()
        assert sock is not None
        sock.close()  # the process is gone: no DISCONNECT, the broker sends the will
        assert sub.wait_for(lambda ms: ms[-1].payload == b"offline", 15)
    finally:
        sub.close()


def test_alerts_published_while_the_broker_is_down_arrive_in_order_when_it_is_back(broker, tmp_path):
    ch = MqttChannel(config(broker, tmp_path))
    try:
        for _ in range(100):
            if ch.client.is_connected():
                break
            time.sleep(0.05)
        broker.stop()
        for i in range(5):
            ch.offer(to_outbound("alerts", alert(i), {}, NOW))  # held by paho (QoS 1)
        broker.start()
        sub = Subscriber(broker, "metro/alerts", "reader", "r-pass")
        assert sub.wait_for(lambda ms: len(ms) >= 5, 20), [m.payload[:20] for m in sub.messages]
        assert [json.loads(m.payload)["id"] for m in sub.messages] == [f"e{i}" for i in range(5)]
        sub.close()
    finally:
        ch.close(2.0)


def test_a_refused_password_delivers_nothing_and_is_never_logged(broker, tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("MQ_PW", "wrong-" + SECRET)
    sub = Subscriber(broker, "metro/#", "reader", "r-pass")
    ch = MqttChannel(config(broker, tmp_path, password_file=None, password_env="MQ_PW"))
    try:
        ch.offer(to_outbound("alerts", alert(1), {}, NOW))
        assert not sub.wait_for(lambda ms: len(ms) > 0, 3)
    finally:
        ch.close(0.5)
        sub.close()
    assert "refused" in caplog.text or "not authori" in caplog.text.lower()
    assert SECRET not in caplog.text


def test_a_broker_that_is_down_when_the_host_starts_gets_the_alerts_once_it_is_up(tmp_path, caplog):
    broker = Mosquitto(tmp_path / "mq", users={"metrosight": SECRET, "reader": "r-pass"}, persist=True).start()
    sub = Subscriber(broker, "metro/alerts", "reader", "r-pass", session="reader-1")  # kept by the broker
    broker.stop()
    ch = MqttChannel(config(broker, tmp_path, host="127.0.0.1", tls=None))
    try:
        for i in range(3):
            ch.offer(to_outbound("alerts", alert(i), {}, NOW))
        time.sleep(1.5)  # a few failed attempts
        assert "cannot connect" in caplog.text
        broker.start()
        assert sub.wait_for(lambda ms: len(ms) >= 3, 20)
        assert [json.loads(m.payload)["id"] for m in sub.messages] == ["e0", "e1", "e2"]
    finally:
        ch.close(2.0)
        sub.close()
        broker.stop()


def test_events_are_published_from_a_process_holding_over_1023_descriptors(broker, tmp_path):
    """paho-mqtt waits with select(), which refuses a descriptor above 1023, and takes that for a lost connection:
    in a busy process (the CI suite's, a `serve` with many cameras) the channel connected, dropped and reconnected
    forever and published nothing. It waits with poll() now (metrosight.outbound.pollselect)."""
    import contextlib
    import gc
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1400:
        pytest.skip(f"the descriptor limit ({hard}) is below 1400 here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1400), hard))  # (the fillers stop at descriptor 1100)
    fillers: list[int] = []
    sub = Subscriber(broker, "metro/#", "reader", "r-pass")  # the test's own client, on a low descriptor
    try:
        gc.collect()  # sockets of earlier tests still waiting to be closed would leave holes under 1024
        while not fillers or fillers[-1] < 1100:  # every free descriptor under 1100 taken: the channel's go past it
            fillers.append(os.open(os.devnull, os.O_RDONLY))
        ch = MqttChannel(config(broker, tmp_path))
        try:
            assert sub.wait_for(lambda ms: any(m.payload == b"online" for m in ms), 10)
            ch.offer(to_outbound("alerts", alert(7), {}, NOW))
            assert sub.wait_for(lambda ms: len(sub.on("metro/alerts")) >= 1, 10)
            assert ch.client.socket() is not None and ch.client.socket().fileno() > 1023  # type: ignore[union-attr]
        finally:
            ch.close()
    finally:
        sub.close()
        for fd in fillers:
            with contextlib.suppress(OSError):
                os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
