"""Issue 15, finding 1: parallel requests against the real service over HTTP (uvicorn on loopback, the default
SQLite store). Every audited action appends to the one hash chain; concurrent appends used to collide on the newest
sequence number (500s for half of 8 parallel alert lists, most concurrent sign-ins, live feeds that failed to open
or were closed when an alert arrived). Here: no response ≥ 500, every feed gets every alert, and the chain is one
unbroken, gap-free sequence afterwards."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn

from metrosight.api.app import ApiConfig, create_app
from metrosight.bus.inproc import TOPIC_ALERTS, InProcessBus
from metrosight.bus.payloads import AlertV1
from metrosight.services.sinks import AlertSink
from tests.unit.api.conftest import PASSWORD, Api
from tests.unit.api.test_api import enrol, make_watchlist


@pytest.fixture()
def served(api: Api) -> Iterator[tuple[Api, InProcessBus, str]]:
    """The service on a free loopback port; alerts published on ``bus`` are stored first, as cameras' are."""
    make_watchlist(api)
    enrol(api, "ada")
    api.as_("bob", "POST", "/api/watchlists/wl/entries/Eve/approve")
    bus = InProcessBus()
    bus.subscribe(TOPIC_ALERTS, AlertSink(api.rt.store, api.rt.home.media, None).on_alert)
    cfg = ApiConfig(poll_seconds=0.5, login_max_failures=1000, login_max_per_ip=10_000)
    app = create_app(api.rt, bus=bus, config=cfg)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1, backlog=512)
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


def assert_chain_whole(api: Api) -> None:
    entries = api.rt.store.audit.entries()
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))  # unique and gap-free
    assert api.rt.store.audit.verify().ok


def test_parallel_audited_reads_and_sign_ins_never_fail(served) -> None:  # type: ignore[no-untyped-def]
    api, _bus, base = served

    def list_alerts(_i: int) -> list[int]:
        with httpx.Client(base_url=base, timeout=60, headers=api.h("carol")) as c:
            return [c.get("/api/alerts").status_code for _ in range(5)]

    def sign_in(_i: int) -> int:
        with httpx.Client(base_url=base, timeout=120) as c:
            return c.post("/api/login", json={"username": "carol", "password": PASSWORD}).status_code

    with ThreadPoolExecutor(40) as pool:
        reads = pool.map(list_alerts, range(8))
        logins = pool.map(sign_in, range(24))
        read_codes = [c for batch in reads for c in batch]
        login_codes = list(logins)
    assert read_codes == [200] * 40
    assert login_codes == [200] * 24
    actions = api.actions()
    assert actions.count("alert.list") == 40 and actions.count("auth.login") == 24
    assert_chain_whole(api)


def test_many_live_feeds_open_and_all_get_every_alert(served) -> None:  # type: ignore[no-untyped-def]
    api, bus, base = served
    feeds, n_alerts = 24, 3
    got: list[list[int]] = [[] for _ in range(feeds)]
    status: list[int | None] = [None] * feeds
    ready = threading.Barrier(feeds + 1, timeout=60)
    stop = threading.Event()

    def listen(i: int) -> None:
        with (
            httpx.Client(base_url=base, timeout=httpx.Timeout(30.0, read=60.0)) as c,
            c.stream("GET", "/api/alerts/stream", headers=api.h("carol")) as r,
        ):
            status[i] = r.status_code
            if r.status_code != 200:
                ready.abort()
                return
            event = None
            for line in r.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    if event == "hello":
                        ready.wait()
                    elif event == "alert":
                        got[i].append(json.loads(line.split(":", 1)[1])["track_id"])
                if stop.is_set() or len(got[i]) == n_alerts:
                    return

    threads = [threading.Thread(target=listen, args=(i,), daemon=True) for i in range(feeds)]
    for t in threads:
        t.start()
    ready.wait()  # every feed is open
    subject_id = api.rt.store.entries.all("wl")[0].id
    for n in range(n_alerts):
        bus.publish(
            TOPIC_ALERTS,
            AlertV1(
                event_id=f"cam-1:load:{n}",
                camera_id="cam-1",
                track_id=n,
                subject_id=subject_id,
                subject="Eve",
                watchlist="wl",
                category="wanted",
                score=0.96,
                distance=0.28,
                first_seen=0.0,
                last_seen=1.0,
                samples=2,
                crop_jpeg=None,
                media_origin=time.time() + 3600 * n,  # hours apart: an alert each, not one episode
            ),
        )
    for t in threads:
        t.join(60)
    stop.set()
    assert status == [200] * feeds
    assert all(sorted(g) == list(range(n_alerts)) for g in got), [len(g) for g in got]
    assert_chain_whole(api)


def test_sign_ins_that_wait_too_long_for_a_slot_are_told_to_come_back(served, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from metrosight.api.routes import auth

    _api, _bus, base = served
    monkeypatch.setattr(auth, "SIGN_IN_MAX_WAIT", 0.0)  # no slot is ever free in time

    r = httpx.post(f"{base}/api/login", json={"username": "carol", "password": PASSWORD}, timeout=30)
    assert r.status_code == 429 and r.headers["Retry-After"] == "5" and "busy" in r.json()["detail"]
    monkeypatch.setattr(auth, "SIGN_IN_MAX_WAIT", 30.0)
    assert (
        httpx.post(f"{base}/api/login", json={"username": "carol", "password": PASSWORD}, timeout=60).status_code == 200
    )
