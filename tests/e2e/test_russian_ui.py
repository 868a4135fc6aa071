"""The Russian operator UI in a real browser (Debian chromium via playwright; no browser download).

A browser that asks for Russian (``ru-RU``) signs in; the live alerts page gets a new alert over the live feed (a
card built by the page's script) and an operator confirms one; the cameras page refreshes its table from the API;
the watchlists page shows entries. After the scripts ran, no visible text of any of these pages is English (names,
ids and codes, marked ``translate="no"``, excepted), and times are shown in the installation's zone (Moscow) in
Russian. The user's own setting then switches the same browser to English. Screenshots of the three pages are
written to tests/e2e/screenshots/ (and, with ``METROSIGHT_DOCS_SHOTS=1``, to docs/ru-*.png for the README).
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from metrosight.api.app import ApiConfig, create_app
from metrosight.bus.inproc import (
    TOPIC_ALERTS,
    TOPIC_CAMERA_SNAPSHOT,
    TOPIC_CAMERA_STATE,
    TOPIC_CAMERA_STATS,
    InProcessBus,
)
from metrosight.bus.payloads import AlertV1, CameraSnapshotV1, CameraStateV1
from metrosight.core.types import Category
from metrosight.policy.passwords import hash_password
from metrosight.policy.rules import Authorisation
from metrosight.services.sinks import AlertSink
from metrosight.services.suite import Services
from tests.conftest import REPO_ROOT, missing_system
from tests.e2e.test_live_reconnect import start, stop
from tests.e2e.test_operator_ui import ARGS, CHROMIUM, SHOTS
from tests.unit.api.conftest import make_runtime
from tests.unit.api.test_api import stats

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

PASSWORD = "russian-ui test password 5"
DOCS = REPO_ROOT / "docs"
CAMERAS = [
    {"id": "okhotny-ryad-1", "source": "rtsp://10.0.0.11/s", "line": "sokolnicheskaya"},
    {"id": "lubyanka-2", "source": "rtsp://10.0.0.12/s", "line": "sokolnicheskaya"},
]
#: the visible texts of the page (and alt/placeholder), outside translate="no", <code>, <pre>, scripts and styles,
#: with the page's data (the texts inside translate="no": names, ids) taken out of them
VISIBLE_TEXT = """() => {
  const skip = n => n.closest('[translate="no"], code, pre, script, style, title, datalist');
  const data = [], out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (el && el.closest('[translate="no"]') && n.textContent.trim()) data.push(n.textContent.trim());
    if (!el || skip(el) || !n.textContent.trim()) continue;
    const style = getComputedStyle(el);
    if (style.display === "none" || style.visibility === "hidden") continue;
    out.push(n.textContent.trim());
  }
  for (const el of document.querySelectorAll("[alt], [placeholder], [aria-label]")) {
    if (skip(el)) continue;
    for (const a of ["alt", "placeholder", "aria-label"]) if (el.getAttribute(a)) out.push(el.getAttribute(a));
  }
  data.sort((a, b) => b.length - a.length);
  return out.map(t => data.reduce((s, d) => s.split(d).join(" "), t));
}"""
SAME_EVERYWHERE = {"metrosight", "API", "MiB", "UTC"}


def english(texts: list[str]) -> list[str]:
    """The texts holding a Latin word (an IANA zone name such as Europe/Moscow is an id)."""
    left = []
    for t in texts:
        words = re.findall(r"[A-Za-z]{2,}", re.sub(r"\b[A-Z][A-Za-z_]+(/[A-Za-z_+\-0-9]+)+", "", t))
        if any(w not in SAME_EVERYWHERE for w in words):
            left.append(t)
    return left


def jpeg(seed: int, w: int = 320, h: int = 180) -> bytes:
    """A synthetic picture (no real person's face in the docs)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = rng.integers(60, 160, 3)
    cv2.circle(img, (w // 2, h // 2), min(w, h) // 4, (200, 200, 200), -1)
    img = cv2.GaussianBlur(img, (31, 31), 0)
    return bytes(cv2.imencode(".jpg", img)[1])


def alert(rt: Services, n: int, name: str = "Иван Петров") -> AlertV1:
    subject = next(e for e in rt.store.entries.all("rozysk-2026") if e.name == name)
    return AlertV1(
        event_id=f"okhotny-ryad-1:ru:{n}",
        camera_id="okhotny-ryad-1",
        track_id=n,
        subject_id=subject.id,
        subject=name,
        watchlist="rozysk-2026",
        category="wanted",
        score=0.962,
        distance=0.27,
        first_seen=12.4 + n,
        last_seen=15.9 + n,
        samples=4,
        crop_jpeg=jpeg(n, 160, 200),
        media_origin=time.time() + 3600 * n,
    )


@pytest.fixture()
def service(tmp_path: Path) -> Iterator[tuple[Services, InProcessBus, object, int]]:
    if not CHROMIUM.exists():
        missing_system("chromium is not installed (apt-get install chromium)")
    rt = make_runtime(tmp_path / "home", cameras=CAMERAS, deployment={"timezone": "Europe/Moscow"})
    store, pw = rt.store, hash_password(PASSWORD)
    store.users.add("n.ivanova", ["admin", "approver", "operator"], None, pw)
    chief = store.users.actor("n.ivanova")
    store.users.add("dezhurny", ["approver", "operator"], chief, pw)
    store.watchlists.create("rozysk-2026", Category.WANTED, chief)
    store.watchlists.create("propavshie", Category.MISSING, chief)
    auth = Authorisation(
        "УПК РФ, ст. 210", "Мещанский районный суд", "2026/117", datetime.now(UTC) + timedelta(days=30)
    )
    for i, name in enumerate(("Иван Петров", "Мария Соколова")):
        v = np.random.default_rng(i).normal(size=128).astype(np.float32)
        store.entries.enroll("rozysk-2026", name, v / np.linalg.norm(v), "m", f"{i}.jpg", f"{i:064x}", 0.9, chief, auth)
    store.entries.approve("rozysk-2026", "Иван Петров", store.users.actor("dezhurny"))
    bus = InProcessBus()
    sink = AlertSink(store, rt.home.media, None)
    bus.subscribe(TOPIC_ALERTS, sink.on_alert)
    sink.on_alert(alert(rt, 0))  # one alert from before the page was opened
    app = create_app(rt, bus=bus, config=ApiConfig(poll_seconds=0.3))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield rt, bus, app, port


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)
    if os.environ.get("METROSIGHT_DOCS_SHOTS") == "1":
        page.screenshot(path=str(DOCS / name), full_page=True)


def cameras_go_live(bus: InProcessBus) -> None:
    now = time.time()
    bus.publish(TOPIC_CAMERA_STATE, CameraStateV1(camera_id="okhotny-ryad-1", state="live", wall_time=now))
    bus.publish(TOPIC_CAMERA_STATS, stats(100, now).model_copy(update={"camera_id": "okhotny-ryad-1"}))
    bus.publish(TOPIC_CAMERA_STATS, stats(150, now + 2.0).model_copy(update={"camera_id": "okhotny-ryad-1"}))
    bus.publish(TOPIC_CAMERA_SNAPSHOT, CameraSnapshotV1(camera_id="okhotny-ryad-1", jpeg=jpeg(7), wall_time=now))
    bus.publish(TOPIC_CAMERA_STATE, CameraStateV1(camera_id="lubyanka-2", state="reconnecting", wall_time=now))


def test_the_russian_ui_in_a_browser(service) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect, sync_playwright

    rt, bus, app, port = service
    base = f"http://127.0.0.1:{port}"
    server, thread = start(app, port)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*ARGS, "--lang=ru-RU"],
            env={**os.environ, "LANGUAGE": "ru", "LANG": "ru_RU.UTF-8"},
        )
        try:
            ctx = browser.new_context(viewport={"width": 1360, "height": 900}, locale="ru-RU")
            page = ctx.new_page()
            page.goto(f"{base}/login")
            expect(page.locator("h1")).to_have_text("Вход")
            page.fill("input[name=username]", "n.ivanova")
            page.fill("input[name=password]", "wrong password")
            page.click("button[type=submit]")
            expect(page.locator("#login-error")).to_have_text("неверное имя пользователя или пароль")
            assert not english(page.evaluate(VISIBLE_TEXT)), english(page.evaluate(VISIBLE_TEXT))
            page.fill("input[name=username]", "n.ivanova")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/")

            # live alerts: the feed connects, a new alert arrives as a card built by the script
            expect(page.locator("#live")).to_have_text("в эфире", timeout=20_000)
            bus.publish(TOPIC_ALERTS, alert(rt, 1))
            fresh = page.locator("article.alert.fresh").first
            expect(fresh).to_be_visible(timeout=15_000)
            expect(fresh.locator("h2")).to_have_text("Иван Петров")
            expect(fresh).to_contain_text("в розыске")
            expect(fresh).to_contain_text("1 обнаружение")
            expect(fresh).to_contain_text("сходство 0,962")
            expect(fresh.locator(".status")).to_have_text("новая")
            expect(fresh.locator("button.confirm")).to_have_text("Подтвердить")
            fresh.locator("button.confirm").click()
            expect(fresh.locator(".status")).to_have_text("подтверждена один раз")
            expect(page.locator("#flash")).to_contain_text("должен подтвердить второй, другой оператор")
            # the alert's alarm: claimed by the operator (the words of the script's alarm line and the flash)
            expect(fresh.locator("p.alarm")).to_contain_text("сигнал · новый · никем не взят")
            fresh.locator("button.claim").click()
            expect(fresh.locator(".alarm-state")).to_have_text("взят в работу")
            expect(fresh.locator("p.alarm")).to_contain_text("исполнитель n.ivanova")
            expect(page.locator("#flash")).to_contain_text("взят в работу, исполнитель n.ivanova")
            expect(fresh.locator("button.acknowledge")).to_have_text("Квитировать")
            # times in the installation's zone, in Russian (Intl in the card, Babel in the server's card)
            assert page.locator("article.alert time[title='Europe/Moscow']").count() >= 1
            assert re.search(r"\d{1,2} [а-я]+\.? 20\d\d\s?г\.", page.locator("article.alert").last.inner_text())
            left = english(page.evaluate(VISIBLE_TEXT))
            assert not left, left
            shot(page, "ru-live-alerts.png")

            # cameras: the table refreshes from the API every 2 s; states in Russian
            cameras_go_live(bus)
            page.goto(f"{base}/cameras")
            live_row = page.locator("#cameras tr[data-id='okhotny-ryad-1']")
            expect(live_row.locator(".state")).to_have_text("в эфире", timeout=10_000)
            expect(page.locator("#cameras tr[data-id='lubyanka-2'] .state")).to_have_text("переподключается")
            expect(live_row.locator("td.snap img")).to_be_visible(timeout=10_000)
            expect(live_row.locator(".last_frame")).to_contain_text("г.")
            left = english(page.evaluate(VISIBLE_TEXT))
            assert not left, left
            shot(page, "ru-cameras.png")

            # watchlists
            page.goto(f"{base}/watchlists")
            expect(page.locator("h1")).to_have_text("Списки наблюдения")
            expect(page.locator("#entries tr[data-entry='Мария Соколова'] .status")).to_have_text("ожидает утверждения")
            expect(page.locator("#entries tr[data-entry='Иван Петров'] .status")).to_have_text("действует")
            left = english(page.evaluate(VISIBLE_TEXT))
            assert not left, left
            shot(page, "ru-watchlists.png")

            for path in ("/events", "/audit", "/users", "/account"):
                page.goto(f"{base}{path}")
                left = english(page.evaluate(VISIBLE_TEXT))
                assert not left, (path, left)

            # the user's own setting wins over the browser's Russian
            page.goto(f"{base}/account")
            page.select_option("#preferences select[name=language]", "en")
            page.click("#preferences button[type=submit]")
            expect(page.locator("#prefs-notice")).to_have_text("Saved.")
            page.goto(f"{base}/")
            expect(page.locator("h1")).to_contain_text("Live alerts")
            expect(page.locator("#live")).to_have_text("live", timeout=20_000)
        finally:
            browser.close()
            stop(server, thread)
