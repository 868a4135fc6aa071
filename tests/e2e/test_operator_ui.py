"""The operator UI in a real browser (Debian chromium driven by playwright; no browser download).

`metrosight serve` runs with one configured camera whose video file is not readable yet (the camera shows as
reconnecting/down). In the browser, an admin enrols Lin-Manuel Miranda's photo and a second approver approves the
entry; both open the live alerts page; then the Hamilton clip is put in place of the camera's file, the camera goes
live, and the alert must appear on both pages without a reload. Two different operators confirm it (the second
sees the first's confirmation live). Every main page is screenshotted to tests/e2e/screenshots/.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT, missing_system, require_data

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent / "screenshots"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORDS = {"ada": "ada-password-1", "bob": "bob-password-2"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


METROSIGHT = str(Path(sys.executable).with_name("metrosight"))


def setup_home(home: Path) -> None:
    """Users ada (admin, approver, operator, auditor) and bob (approver, operator) with passwords; a watchlist."""
    from metrosight.config.home import Home
    from metrosight.config.model import Settings
    from metrosight.core.types import Category
    from metrosight.policy.passwords import hash_password
    from metrosight.services.installation import Installation

    store = Installation.open(Home(home), Settings()).store
    store.users.add("ada", ["admin", "approver", "operator", "auditor"], None, hash_password(PASSWORDS["ada"]))
    ada = store.users.actor("ada")
    store.users.add("bob", ["approver", "operator"], ada, hash_password(PASSWORDS["bob"]))
    store.watchlists.create("wanted-2026", Category.WANTED, ada)
    store.engine.dispose()


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    clip = require_data("face_recognition_examples", "examples", "short_hamilton_clip.mp4")
    if not CHROMIUM.exists():
        msg = "chromium is not installed (apt-get install chromium)"
        missing_system(msg)
    home = tmp_path / "home"
    setup_home(home)
    camera_file = tmp_path / "stage.mp4"
    camera_file.write_bytes(b"not a video yet")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "ingest: {reconnect_initial_seconds: 0.2, reconnect_max_seconds: 1.0}\n"
        "api: {failed_signin_audit_seconds: 1}\n"  # failed sign-ins are audited as a burst once the window closes
        f"cameras:\n  - {{id: stage, source: {camera_file}, line: red}}\n"
    )
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [METROSIGHT, "--home", str(home), "serve", "--config", str(cfg), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO_ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        yield base, camera_file, clip
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def sign_in(page, base: str, user: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/")
    assert "/login" in page.url
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORDS[user])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def test_operator_ui_end_to_end(server: tuple[str, Path, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, camera_file, clip = server
    lin = require_data("face_recognition_examples", "examples", "lin-manuel-miranda.png")
    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            ada_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            bob_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            ada, bob = ada_ctx.new_page(), bob_ctx.new_page()

            # a wrong password is refused (and audited)
            ada.goto(f"{base}/login")
            ada.fill("input[name=username]", "ada")
            ada.fill("input[name=password]", "wrong-password")
            ada.click("button[type=submit]")
            expect(ada.locator("#login-error")).to_contain_text("wrong user name or password")
            sign_in(ada, base, "ada")
            sign_in(bob, base, "bob")

            # ada records the entry from a photo; it stays pending until bob (a second approver) approves it
            ada.goto(f"{base}/watchlists")
            ada.fill("#enrol input[name=subject]", "Lin-Manuel Miranda")
            ada.set_input_files("#enrol input[name=photos]", str(lin))
            ada.fill("#enrol input[name=legal_basis]", "Code of Criminal Procedure art. 210")
            ada.fill("#enrol input[name=authority]", "District court")
            ada.fill("#enrol input[name=reference]", "2026/117")
            ada.fill("#enrol input[name=expires]", "30d")
            ada.click("#enrol button[type=submit]")
            expect(ada.locator("#enrol-result")).to_contain_text("enrolled", timeout=60_000)
            expect(ada.locator("#enrol-result")).to_contain_text("pending")
            ada.goto(f"{base}/watchlists")
            row = ada.locator("#entries tr[data-entry='Lin-Manuel Miranda']")
            expect(row.locator(".status")).to_have_text("pending")
            expect(row.locator("button.approve")).to_have_count(0)  # no self-approval offered
            bob.goto(f"{base}/watchlists")
            bob.locator("#entries tr[data-entry='Lin-Manuel Miranda'] button.approve").click()
            expect(bob.locator("#entries tr[data-entry='Lin-Manuel Miranda'] .status")).to_have_text("active")
            bob.screenshot(path=str(SHOTS / "watchlists.png"), full_page=True)

            # the camera cannot read its file yet
            ada.goto(f"{base}/cameras")
            expect(ada.locator("#cameras tr[data-id=stage] .state")).to_have_text(
                re.compile("reconnecting|down|starting"), timeout=20_000
            )

            # both operators watch the live page; then the video arrives
            for p in (ada, bob):
                p.goto(f"{base}/")
                expect(p.locator("#live")).to_have_text("live", timeout=10_000)
            assert ada.locator("article.alert").count() == 0
            tmp = camera_file.with_suffix(".part")
            shutil.copyfile(clip, tmp)
            os.replace(tmp, camera_file)
            first = ada.locator("article.alert.fresh").first
            expect(first).to_be_visible(timeout=90_000)
            expect(first.locator("h2")).to_have_text("Lin-Manuel Miranda")
            expect(first).to_contain_text("2026/117")
            expect(first).to_contain_text("stage")
            expect(first.locator(".crop img")).to_be_visible()
            # the crop is served decrypted (and the read audited) ...
            crop_id = first.get_attribute("data-id")
            served = ada.evaluate(
                "id => fetch(`/api/alerts/${id}/crop`).then(r => `${r.status} ${r.headers.get('content-type')}`)",
                crop_id,
            )
            assert served == "200 image/jpeg", served
            # ... and renders (the locator is re-resolved each time: live updates may re-render the card)
            for _ in range(80):
                if first.locator(".crop img").evaluate("img => img.complete && img.naturalWidth > 0"):
                    break
                ada.wait_for_timeout(250)
            else:
                pytest.fail("the best-shot crop did not render")
            expect(bob.locator("article.alert.fresh").first).to_be_visible(timeout=10_000)
            alert_id, shown = first.evaluate("e => [e.dataset.id, e.dataset.shown]")
            # from the alert's row being stored to its card being on the page (same machine clock): under a second
            lag = ada.evaluate(
                "([id, shown]) => fetch(`/api/alerts/${id}`).then(r => r.json())"
                ".then(a => Number(shown) - Date.parse(a.created_at))",
                [alert_id, shown],
            )
            print(f"E2E alert {alert_id} on the page {lag} ms after it was stored")
            # Live, not on reload. The within-a-second figure (10-40 ms from the bus) is measured on a quiet run and
            # reported in the README; under CI load an EventSource reconnect (3 s) may intervene, so no tight bound.
            assert lag < 10_000
            ada.wait_for_timeout(1500)
            ada.screenshot(path=str(SHOTS / "live-alerts.png"), full_page=False)

            # two-person confirmation: ada confirms, bob sees it live and confirms: actionable
            card_a = ada.locator(f"article.alert[data-id='{alert_id}']")
            card_a.locator("button.confirm").click()
            expect(card_a.locator(".status")).to_have_text("confirmed_once")
            expect(ada.locator("#flash")).to_contain_text("second, different operator")
            card_b = bob.locator(f"article.alert[data-id='{alert_id}']")
            expect(card_b.locator(".status")).to_have_text("confirmed_once", timeout=5_000)
            card_b.locator("button.confirm").click()
            expect(card_b.locator(".status")).to_have_text("actionable")
            expect(card_a.locator(".status")).to_have_text("actionable", timeout=5_000)
            expect(card_a.locator("button.confirm")).to_be_disabled()

            # the other pages
            ada.goto(f"{base}/cameras")
            expect(ada.locator("#cameras tr[data-id=stage] .state")).to_have_text(
                re.compile("live|stopped"), timeout=30_000
            )
            expect(ada.locator("#cameras tr[data-id=stage] td.snap img")).to_be_visible(timeout=10_000)
            ada.screenshot(path=str(SHOTS / "cameras.png"), full_page=True)
            ada.goto(f"{base}/events")
            ada.screenshot(path=str(SHOTS / "events.png"), full_page=True)
            ada.goto(f"{base}/audit")
            ada.click("#verify")
            expect(ada.locator("#verify-result")).to_contain_text("chain intact")
            expect(ada.locator("table")).to_contain_text("alert.confirm")
            expect(ada.locator("table")).to_contain_text("auth.login_failed")
            ada.screenshot(path=str(SHOTS / "audit.png"), full_page=False)
            ada.goto(f"{base}/users")
            ada.screenshot(path=str(SHOTS / "users.png"), full_page=True)
            # bob is not an admin: the users page is refused
            bob.goto(f"{base}/users")
            expect(bob.locator("h1")).to_have_text("Not allowed")
        finally:
            browser.close()
