"""Issue 15, finding 1 (the UI part): operator pages whose live feed fails come back by themselves.

Four operators' pages (chromium) show the live alerts page. The service goes away and comes back answering the
feed with 503 for a while (a database that cannot be read, a proxy's error page): the browser's EventSource gives up
for good after an error status, which left pages on "reconnecting…" for ever. The page must reconnect by itself
once the feed answers again, and show the next alert without a reload.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.responses import JSONResponse

from metrosight.api.app import ApiConfig, create_app
from metrosight.bus.inproc import TOPIC_ALERTS, InProcessBus
from metrosight.bus.payloads import AlertV1
from metrosight.core.types import Category
from metrosight.policy.passwords import hash_password
from metrosight.policy.rules import Authorisation
from metrosight.services.sinks import AlertSink
from tests.conftest import missing_system
from tests.e2e.test_operator_ui import ARGS, CHROMIUM
from tests.unit.api.conftest import make_runtime

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

PASSWORD = "reconnect-test password 7"
USERS = ("op1", "op2", "op3", "op4")


class Flaky:
    """Answers the live feed with 503 while ``failing`` is set; everything else passes through."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.app, self.failing, self.refused = app, False, 0

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if self.failing and scope["type"] == "http" and scope["path"] == "/api/alerts/stream":
            self.refused += 1
            await JSONResponse({"detail": "the database is unavailable"}, status_code=503)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def start(app, port: int) -> tuple[uvicorn.Server, threading.Thread]:  # type: ignore[no-untyped-def]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    return server, thread


def stop(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(15)


@pytest.fixture()
def service(tmp_path: Path) -> Iterator[tuple[object, Flaky, InProcessBus, int]]:
    if not CHROMIUM.exists():
        msg = "chromium is not installed (apt-get install chromium)"
        missing_system(msg)
    rt = make_runtime(tmp_path / "home")
    store = rt.store
    pw = hash_password(PASSWORD)
    store.users.add("chief", ["admin", "approver"], None, pw)
    chief = store.users.actor("chief")
    store.users.add("duty", ["approver"], chief, pw)
    for u in USERS:
        store.users.add(u, ["operator"], chief, pw)
    store.watchlists.create("wl", Category.WANTED, chief)
    from datetime import UTC, datetime, timedelta

    import numpy as np

    auth = Authorisation("law", "court", "R-9", datetime.now(UTC) + timedelta(days=3))
    store.entries.enroll("wl", "Eve", np.ones(128, np.float32), "m", "e.jpg", "e" * 64, 0.9, chief, auth)
    store.entries.approve("wl", "Eve", store.users.actor("duty"))
    bus = InProcessBus()
    bus.subscribe(TOPIC_ALERTS, AlertSink(store, rt.home.media, None).on_alert)
    flaky = Flaky(create_app(rt, bus=bus, config=ApiConfig(poll_seconds=0.5)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield rt, flaky, bus, port


def test_pages_reconnect_after_the_feed_failed(service) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect, sync_playwright

    rt, flaky, bus, port = service
    base = f"http://127.0.0.1:{port}"
    server, thread = start(flaky, port)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            pages = []
            for u in USERS:
                page = browser.new_context().new_page()
                page.goto(f"{base}/login")
                page.fill("input[name=username]", u)
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(f"{base}/")
                expect(page.locator("#live")).to_have_text("live", timeout=20_000)
                pages.append(page)

            # the service goes away and comes back refusing the feed: every page loses it
            stop(server, thread)
            flaky.failing = True
            server, thread = start(flaky, port)
            for page in pages:
                expect(page.locator("#live")).to_have_text("reconnecting…", timeout=20_000)
            deadline = time.monotonic() + 30
            while flaky.refused < len(pages):  # every page was answered 503 (the browser gives up on it)
                assert time.monotonic() < deadline, f"only {flaky.refused} refused attempts"
                time.sleep(0.2)
            time.sleep(2)

            flaky.failing = False  # the feed works again: every page comes back by itself
            for page in pages:
                expect(page.locator("#live")).to_have_text("live", timeout=45_000)
            bus.publish(
                TOPIC_ALERTS,
                AlertV1(
                    event_id="cam-1:after:1",
                    camera_id="cam-1",
                    track_id=1,
                    subject_id=rt.store.entries.all("wl")[0].id,
                    subject="Eve",
                    watchlist="wl",
                    category="wanted",
                    score=0.96,
                    distance=0.28,
                    first_seen=0.0,
                    last_seen=1.0,
                    samples=2,
                    crop_jpeg=None,
                ),
            )
            for page in pages:
                expect(page.locator("article.alert h2").first).to_have_text("Eve", timeout=15_000)
        finally:
            browser.close()
            stop(server, thread)
