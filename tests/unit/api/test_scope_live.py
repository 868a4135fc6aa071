"""The live feed (SSE) on a real server, per connection by the reader's scope: a user scoped to line-a gets the
alerts, sightings, reviews and alarm steps of line-a only, while a global user on the same server gets both lines;
changing the scope of the connected user applies to the open connection at once (no reconnect)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from metrosight.api.app import ApiConfig, create_app
from metrosight.bus.inproc import TOPIC_ALERTS, InProcessBus
from metrosight.bus.payloads import AlertV1
from metrosight.policy.scope import Scope
from metrosight.services.sinks import AlertSink
from tests.scope_world import ADA, WANTED
from tests.unit.api.scope_fixtures import Scoped, hashed, scoped  # noqa: F401 - fixtures
from tests.unit.api.test_live_feed import listen

Got = list[tuple[float, str, dict]]


def payload(s: Scoped, cam: str, name: str, n: int) -> AlertV1:
    return AlertV1(
        event_id=f"{cam}:live:{n}",
        camera_id=cam,
        track_id=n,
        subject_id=s.world.entries[name],
        subject=name,
        watchlist=WANTED,
        category="wanted",
        score=0.96,
        distance=0.28,
        first_seen=0.0,
        last_seen=1.0,
        samples=2,
        crop_jpeg=None,
        group="hub",
        media_origin=time.time() + 3600 * n,  # hours apart: an alert each
    )


@pytest.fixture()
def served(scoped: Scoped) -> Iterator[tuple[Scoped, InProcessBus, str]]:  # noqa: F811
    bus = InProcessBus()
    bus.subscribe(TOPIC_ALERTS, AlertSink(scoped.rt.store, scoped.rt.home.media, None).on_alert)
    app = create_app(scoped.rt, bus=bus, config=ApiConfig(poll_seconds=0.3))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
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
        yield scoped, bus, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def _open(base: str, token: str) -> tuple[Got, threading.Event]:
    got: Got = []
    ready, stop = threading.Event(), threading.Event()
    threading.Thread(target=listen, args=(base, token, got, ready, stop), daemon=True).start()
    assert ready.wait(10)
    return got, stop


def _wait_for(got: Got, event_id: str, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not any(d.get("event_id") == event_id for _, _, d in got):
        assert time.monotonic() < deadline, f"{event_id} did not arrive"
        time.sleep(0.01)


def test_the_feed_sends_each_connection_its_scope_and_follows_a_scope_change(served) -> None:  # type: ignore[no-untyped-def]  # noqa: E501
    s, bus, base = served
    olga, stop_olga = _open(base, s.tokens["olga"])
    ada, stop_ada = _open(base, s.tokens["ada"])
    bus.publish(TOPIC_ALERTS, payload(s, "cam-b1", "Bravo Person", 1))
    bus.publish(TOPIC_ALERTS, payload(s, "cam-a1", "Alfa Person", 2))
    _wait_for(ada, "cam-b1:live:1")
    _wait_for(olga, "cam-a1:live:2")
    b_alert = next(d["id"] for _, e, d in ada if d.get("event_id") == "cam-b1:live:1")
    s.rt.store.reviews.review(b_alert, ADA, "confirm")  # a review of a line-b alert: a status event to ada only
    deadline = time.monotonic() + 5
    while not any(e == "status" and d["id"] == b_alert for _, e, d in ada):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(1.0)  # three poll periods more: anything of line-b would have reached olga by now
    seen = json.dumps([d for _, _, d in olga])
    assert "cam-b1" not in seen and "line-b" not in seen
    assert not any(d.get("id") == b_alert for _, _, d in olga), "an event of line-b's alert reached olga"

    # the admin moves olga to line-b while her feed is open: the next alerts follow the new scope
    s.rt.store.accounts.update_user("olga", ADA, scopes={"operator": Scope.parse(["cameras:line-b"])})
    bus.publish(TOPIC_ALERTS, payload(s, "cam-a1", "Alfa Person", 3))
    bus.publish(TOPIC_ALERTS, payload(s, "cam-b1", "Bravo Person", 4))
    _wait_for(olga, "cam-b1:live:4")
    _wait_for(ada, "cam-a1:live:3")
    time.sleep(1.0)
    assert not any(d.get("event_id") == "cam-a1:live:3" for _, _, d in olga)
    stop_olga.set()
    stop_ada.set()
    delivered = [
        json.loads(e.details)
        for e in s.rt.store.audit.entries(ADA, 500)
        if e.action == "alert.stream_delivered" and e.actor == "olga"
    ]
    # every delivery is audited with exactly what olga was sent
    assert {i for d in delivered for i in d["alert_ids"]} == {d["id"] for _, e, d in olga if e == "alert"}
