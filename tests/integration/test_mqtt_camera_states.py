"""A live camera's states over MQTT from a real `run`: an RTSP camera on loopback that needs a password (with `@` in
it) goes away mid-run; the broker keeps the camera's newest state retained for a late subscriber, and no form of
the password appears in any message."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import missing_system, require_data
from tests.integration.helpers import bootstrap, cli
from tests.integration.receivers import Mosquitto, Subscriber
from tests.integration.rtsp import RtspServer, looped_video, rtsp_missing

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PASSWORD = "Cam@Pw 9/x"


def test_camera_states_are_published_retained_without_the_camera_password(tmp_path: Path):
    why = rtsp_missing()
    if why:
        missing_system(why)
    ex = require_data("face_recognition_examples", "examples")
    clip = looped_video(ex / "short_hamilton_clip.mp4", tmp_path / "clip.mp4", 3)
    home = tmp_path / "home"
    bootstrap(home)
    broker = Mosquitto(tmp_path / "mq").start()
    sub = Subscriber(broker, "metro/#")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "ingest: {open_timeout_seconds: 2, stall_timeout_seconds: 2, reconnect_initial_seconds: 0.2, "
        "reconnect_max_seconds: 0.3, down_after_attempts: 2, analysis_fps: 5}\n"
        f"outbound:\n  mqtt: {{host: 127.0.0.1, port: {broker.port}, topic_prefix: metro}}\n"
    )
    try:
        with RtspServer({"cam": clip}, user=f"cam:{PASSWORD}") as server:
            url = f"rtsp://cam:{quote(PASSWORD, safe='')}@127.0.0.1:{server.port}/cam"
            threading.Timer(4.0, server.kill).start()  # the camera goes away mid-run
            code, out, err = cli(home, "run", "--source", url, "--camera", "gate", "--config", cfg, "--json")
        assert code != 0 and "gate" in err
        states = [json.loads(m.payload) for m in sub.on("metro/cameras/gate/state")]
        seq = [s["data"]["state"] for s in states]
        assert seq[:2] == ["starting", "live"] and "reconnecting" in seq, seq
        assert all(m.retain is False for m in sub.on("metro/cameras/gate/state"))  # live deliveries
        late = Subscriber(broker, "metro/cameras/#")
        assert late.wait_for(lambda ms: len(ms) >= 1, 10)
        [kept] = late.messages
        assert kept.retain and json.loads(kept.payload)["data"]["state"] == seq[-1]  # the newest state, retained
        late.close()
    finally:
        sub.close()
        broker.stop()
    for m in sub.messages:
        text = m.payload.decode()
        for secret in (PASSWORD, quote(PASSWORD, safe=""), "Cam@Pw"):
            assert secret not in text, f"{secret!r} in {m.topic}: {text}"
