"""The live alert feed (SSE) on a real server: alerts published on the bus arrive at once; alerts stored by another
process (no bus) arrive within the poll period; each delivery is audited."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from metrosight.api.app import ApiConfig, create_app
from metrosight.bus.inproc import TOPIC_ALERTS, InProcessBus
from metrosight.bus.payloads import AlertV1
from metrosight.services.sinks import AlertSink
from tests.unit.api.conftest import Api
from tests.unit.api.test_api import enrol, make_watchlist


def payload(api: Api, n: int) -> AlertV1:
    return AlertV1(
        event_id=f"cam-1:live:{n}",
        camera_id="cam-1",
        track_id=n,
        subject_id=api.rt.store.entries.all("wl")[0].id,
        subject="Eve",
        watchlist="wl",
        category="wanted",
        score=0.96,
        distance=0.28,
        first_seen=0.0,
        last_seen=1.0,
        samples=2,
        crop_jpeg=None,
        media_origin=time.time() + 3600 * n,  # hours apart: an alert each
    )


@pytest.fixture()
def live(api: Api) -> Iterator[tuple[Api, InProcessBus, str]]:
    make_watchlist(api)
    enrol(api, "ada")
    api.as_("bob", "POST", "/api/watchlists/wl/entries/Eve/approve")
    bus = InProcessBus()
    sink = AlertSink(api.rt.store, api.rt.home.media, None)
    bus.subscribe(TOPIC_ALERTS, sink.on_alert)  # the camera side stores first, as the supervisor does
    # a long poll period: only the bus wake-up can make an alert arrive quickly
    app = create_app(api.rt, bus=bus, config=ApiConfig(poll_seconds=3.0))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.05)
    try:
        yield api, bus, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def listen(
    base: str, token: str, got: list[tuple[float, str, dict]], ready: threading.Event, stop: threading.Event
) -> None:
    try:
        _listen(base, token, got, ready, stop)
    except httpx.HTTPError:
        if not stop.is_set():  # the server going away at the end of the test is expected
            raise


def _listen(
    base: str, token: str, got: list[tuple[float, str, dict]], ready: threading.Event, stop: threading.Event
) -> None:
    with (
        httpx.Client(base_url=base, timeout=httpx.Timeout(10.0, read=30.0)) as c,
        c.stream("GET", "/api/alerts/stream", headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                if event == "hello":
                    ready.set()
                else:
                    got.append((time.monotonic(), event or "", json.loads(line.split(":", 1)[1])))
            if stop.is_set():
                return


def test_alerts_arrive_live_from_the_bus_and_from_other_processes(live) -> None:  # type: ignore[no-untyped-def]
    api, bus, base = live
    got: list[tuple[float, str, dict]] = []
    ready, stop = threading.Event(), threading.Event()
    t = threading.Thread(target=listen, args=(base, api.tokens["carol"], got, ready, stop), daemon=True)
    t.start()
    assert ready.wait(10)

    lat_bus = []
    for n in range(3):  # published on the bus by a camera in this process
        sent = time.monotonic()
        bus.publish(TOPIC_ALERTS, payload(api, n))
        while not any(d.get("event_id") == f"cam-1:live:{n}" for _, _, d in got):
            assert time.monotonic() - sent < 2.0, "bus alert did not arrive"
            time.sleep(0.005)
        lat_bus.append(next(ts for ts, _, d in got if d.get("event_id") == f"cam-1:live:{n}") - sent)

    sent = time.monotonic()  # stored by another process: no bus message, found by the poll
    AlertSink(api.rt.store, api.rt.home.media, None).on_alert(payload(api, 99))
    while not any(d.get("event_id") == "cam-1:live:99" for _, _, d in got):
        assert time.monotonic() - sent < 5.0, "stored alert did not arrive"
        time.sleep(0.01)
    lat_poll = next(ts for ts, _, d in got if d.get("event_id") == "cam-1:live:99") - sent

    aid = next(d["id"] for _, e, d in got if e == "alert")
    api.as_("carol", "POST", f"/api/alerts/{aid}/confirm")  # a review shows up as a status event
    deadline = time.monotonic() + 5
    while not any(e == "status" and d["id"] == aid for _, e, d in got):
        assert time.monotonic() < deadline, "status event did not arrive"
        time.sleep(0.01)
    stop.set()
    print(f"live feed: bus {[round(1000 * x) for x in lat_bus]} ms; poll (poll period 3 s) {round(1000 * lat_poll)} ms")
    assert max(lat_bus) < 1.0  # a second at most, with a 3 s poll period: the bus woke the feed
    assert lat_poll < 3.5
    assert "alert.stream" in api.actions() and "alert.stream_delivered" in api.actions()


def test_the_feed_needs_an_alert_reader(live) -> None:  # type: ignore[no-untyped-def]
    api, _bus, base = live
    assert httpx.get(f"{base}/api/alerts/stream", timeout=5).status_code == 401
    r = httpx.get(f"{base}/api/alerts/stream", headers={"Authorization": f"Bearer {api.tokens['vic']}"}, timeout=5)
    assert r.status_code == 403
