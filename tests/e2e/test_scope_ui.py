"""Scoped roles in a real browser (Debian chromium via playwright): the admin sets a user's scope on the Users page
while that user's live alerts page is open in another browser; the operator's page then receives the alerts of the
new scope's cameras only, without a reload, and the Cameras page shows only the cameras of the scope."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from metrosight.bus.inproc import TOPIC_ALERTS
from tests.conftest import missing_system
from tests.unit.api.scope_fixtures import PASSWORD, Scoped, hashed, scoped  # noqa: F401 - fixtures
from tests.unit.api.test_scope_live import payload, served  # noqa: F401 - fixture

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def _sign_in(page, base: str, user: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_load_state()


def test_admin_scopes_an_operator_whose_live_page_follows(served) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    if not CHROMIUM.exists():
        missing_system("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    s, bus, base = served
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            olga = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            _sign_in(olga, base, "olga")
            olga.goto(f"{base}/cameras")
            expect(olga.locator("body")).to_contain_text("cam-a1")
            assert "cam-b1" not in olga.content()
            olga.goto(f"{base}/")
            expect(olga.locator("body")).to_contain_text("Alfa Person")
            assert "cam-b1" not in olga.content() and "Bravo Person" not in olga.content()

            ada = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            _sign_in(ada, base, "ada")
            ada.goto(f"{base}/users")
            ada.select_option("#set-scope select[name=user]", "olga")
            ada.select_option("#set-scope select[name=role]", "operator")
            ada.fill("#set-scope textarea[name=scope]", "cameras:line-b")
            ada.click("#set-scope button[type=submit]")
            expect(ada.locator("tr[data-user=olga] td.scope")).to_contain_text("cameras:line-b", timeout=10_000)
            assert s.rt.store.users.actor("olga").scope_of("operator").camera_groups == frozenset({"line-b"})

            # olga's open page (its live feed) now gets line-b's new alerts, and no longer line-a's
            bus.publish(TOPIC_ALERTS, payload(s, "cam-a1", "Alfa Person", 5))
            bus.publish(TOPIC_ALERTS, payload(s, "cam-b1", "Bravo Person", 6))
            expect(olga.locator("body")).to_contain_text("Bravo Person", timeout=10_000)
            time.sleep(1.0)  # three poll periods: line-a's new alert would have arrived by now
            ids = {a.event_id: a.id for a in s.rt.store.alerts.all()}
            assert olga.locator(f'article[data-id="{ids["cam-b1:live:6"]}"]').count() == 1
            assert olga.locator(f'article[data-id="{ids["cam-a1:live:5"]}"]').count() == 0
        finally:
            browser.close()
