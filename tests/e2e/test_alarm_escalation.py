"""An alarm not acknowledged within its limit escalates, visibly, in a real browser (Debian chromium driven by
playwright) against `metrosight serve`.

An admin sets the watchlist's policy on the Watchlists page: critical, acknowledgement required, escalation to
the admin role after 6 s. An alert is
stored as a camera stores it while operator olga watches the live page: the card appears in the policy's colour
with its countdown; olga claims it (the owner shows); nobody acknowledges it, so the service's alarm clock
escalates it and the card says so without a reload; the step was published on the bus. Then boss, an admin and
not an operator, may act on it because it escalated to admins: boss takes it over (with a reason) and
acknowledges it, and olga's page shows the new owner live.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT, missing_system
from tests.e2e.test_operator_ui import ARGS, CHROMIUM, METROSIGHT, SHOTS, free_port
from tests.integration.test_alarms_cli import camera_alert

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

PASSWORDS = {"ada": "ada-password-1", "bob": "bob-password-2", "olga": "olga-password-3", "boss": "boss-password-4"}
ESCALATE_AFTER_S = 6


def setup_home(home: Path) -> None:
    """ada (admin, approver) and bob (approver) keep a watchlist `wl`; olga is an operator; boss is an admin
    only."""
    from metrosight.config.home import Home
    from metrosight.config.model import Settings
    from metrosight.core.types import Category
    from metrosight.policy.passwords import hash_password
    from metrosight.services.installation import Installation

    store = Installation.open(Home(home), Settings()).store
    store.users.add("ada", ["admin", "approver"], None, hash_password(PASSWORDS["ada"]))
    ada = store.users.actor("ada")
    for name, roles in (("bob", ["approver"]), ("olga", ["operator"]), ("boss", ["admin"])):
        store.users.add(name, roles, ada, hash_password(PASSWORDS[name]))
    store.watchlists.create("wl", Category.WANTED, ada)
    store.engine.dispose()


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    if not CHROMIUM.exists():
        missing_system("chromium is not installed (apt-get install chromium)")
    home = tmp_path / "home"
    setup_home(home)
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [METROSIGHT, "--home", str(home), "serve", "--no-cameras", "--port", str(port)],
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
        yield base, home
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def sign_in(page, base: str, user: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORDS[user])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def test_an_unacknowledged_alarm_escalates_in_the_browser(server: tuple[str, Path]) -> None:
    from playwright.sync_api import expect, sync_playwright

    from metrosight.store.models import AlarmTransition
    from metrosight.store.repo import Store

    base, home = server
    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            # ada (admin) sets the watchlist's alert policy on the Watchlists page
            ada = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            sign_in(ada, base, "ada")
            ada.goto(f"{base}/watchlists")
            ada.select_option("#policy select[name=priority]", "critical")
            ada.fill("#policy input[name=colour]", "#C62828")
            ada.check("#policy input[name=ack_required]")
            ada.fill("#policy input[name=groups]", "red-central")
            ada.fill("#policy input[name=escalate_after_s]", str(ESCALATE_AFTER_S))
            ada.select_option("#policy select[name=escalate_to]", "admin")
            ada.click("#policy button[type=submit]")
            row = ada.locator("#policies tr[data-watchlist=wl]")
            expect(row).to_contain_text("critical", timeout=10_000)
            expect(row).to_contain_text(f"after {ESCALATE_AFTER_S} s to admin")
            expect(row).to_contain_text("red-central")
            expect(row).to_contain_text("ada")
            ada.screenshot(path=str(SHOTS / "alarm-policy.png"), full_page=True)

            olga = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            sign_in(olga, base, "olga")
            expect(olga.locator("#live")).to_have_text("live", timeout=10_000)

            aid = camera_alert(home)  # a camera's alert arrives while olga watches
            card = olga.locator(f"article.alert[data-id='{aid}']")
            expect(card).to_be_visible(timeout=20_000)
            expect(card).to_have_attribute("data-priority", "critical")
            assert card.evaluate("a => getComputedStyle(a).borderLeftColor") == "rgb(198, 40, 40)"
            expect(card.locator(".countdown")).to_contain_text("escalates to admin in 0:0")
            expect(card.locator(".owner")).to_have_text("unclaimed")

            card.locator("button.claim").click()
            expect(card.locator(".owner")).to_have_text("owner olga")
            expect(card.locator("button.acknowledge")).to_be_visible()
            olga.screenshot(path=str(SHOTS / "alarm-claimed.png"), full_page=True)

            # nobody acknowledges it: the service escalates it, and the page shows it without a reload
            expect(card.locator(".escalated")).to_have_text(
                "escalated to admin", timeout=ESCALATE_AFTER_S * 1000 + 15_000
            )
            expect(card).to_have_class(re.compile(r"\bescalated\b"))
            expect(card.locator(".countdown")).to_have_count(0)
            olga.screenshot(path=str(SHOTS / "alarm-escalated.png"), full_page=True)

            # boss (admin, not an operator) may act on it now that it escalated to admins
            boss = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            sign_in(boss, base, "boss")
            boss_card = boss.locator(f"article.alert[data-id='{aid}']")
            expect(boss_card.locator(".escalated")).to_have_text("escalated to admin")
            expect(boss_card.locator("button.confirm")).to_have_count(0)  # not a reviewer: no confirmation
            boss.once("dialog", lambda d: d.accept("escalated to me; olga did not acknowledge"))
            boss_card.locator("button.takeover").click()
            expect(boss_card.locator(".owner")).to_have_text("owner boss")
            boss_card.locator("button.acknowledge").click()
            expect(boss_card.locator(".alarm-state")).to_have_text("acknowledged")
            # olga sees the take-over and the acknowledgement live
            expect(card.locator(".owner")).to_have_text("owner boss", timeout=10_000)
            expect(card.locator(".alarm-state")).to_have_text("acknowledged", timeout=10_000)
            boss.screenshot(path=str(SHOTS / "alarm-acknowledged.png"), full_page=True)
        finally:
            browser.close()

    store = Store.for_home(home)
    try:
        with store.uow.read() as s:
            steps = list(s.query(AlarmTransition).filter(AlarmTransition.alert_id == aid).order_by(AlarmTransition.id))
        actions = [t.action for t in steps]
        # the claim came within the escalation time (a loaded machine could make it come after: either order holds)
        assert actions[0] == "raise" and sorted(actions[1:3]) == ["claim", "escalate"], actions
        assert actions[3:] == ["takeover", "acknowledge"], actions
        esc = next(t for t in steps if t.action == "escalate")
        assert esc.actor == "system:escalation"
        assert all(t.published_at is not None for t in steps)  # each step went onto the bus
        acts = [e.action for e in store.audit.entries()]
        assert acts.count("alarm.escalate") == 1
    finally:
        store.engine.dispose()
