"""Two-factor sign-in in a real browser (Debian chromium driven by playwright), against `metrosight serve` over
HTTPS (a certificate made in the test) with the default requirement (admins and approvers need a second factor).

An admin signs in with a password and is led to the enrolment page; reads the secret shown beside the QR code,
confirms it with a code and gets the recovery codes; signs out and in again with a code. A wrong code and a code
already used are refused on the code page; a recovery code works. Screenshots go to tests/e2e/screenshots/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from metrosight.policy.totp import code_at, current_step
from tests.conftest import REPO_ROOT, TOTP_OFF_ENV, missing_system
from tests.e2e.test_operator_ui import ARGS, CHROMIUM, SHOTS
from tests.integration.procs import free_port, stop_process
from tests.integration.test_tls import make_cert, tls_config, trust

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

PASSWORD = "velvet compass harbour"


def setup_home(home: Path) -> None:
    from metrosight.config.home import Home
    from metrosight.config.model import Settings
    from metrosight.policy.passwords import hash_password
    from metrosight.services.installation import Installation

    store = Installation.open(Home(home), Settings()).store
    store.users.add("ada", ["admin", "operator"], None, hash_password(PASSWORD))
    store.engine.dispose()


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    if not CHROMIUM.exists():
        missing_system("chromium is not installed (apt-get install chromium)")
    home = tmp_path / "home"
    setup_home(home)
    cert, key = make_cert(tmp_path)
    cfg = tls_config(tmp_path / "config.yaml", cert, key)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != TOTP_OFF_ENV}  # the default: admins need a second factor
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "metrosight.cli", "--home", str(home), "serve", "--config", str(cfg)]
        + ["--port", str(port), "--no-cameras"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO_ROOT,
        env=env,
    )
    base = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", verify=trust(cert), timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        yield base, home
    finally:
        stop_process(proc, 20)
        log.close()


def password_step(page, base: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/")
    assert "/login" in page.url
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")


def code_step(page, code: str) -> None:  # type: ignore[no-untyped-def]
    page.fill("input[name=code]", code)
    page.click("main button[type=submit]")


def test_enrol_and_sign_in_with_a_code_in_the_browser(server: tuple[str, Path]) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, home = server
    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            ctx = browser.new_context(viewport={"width": 1100, "height": 900}, ignore_https_errors=True)
            page = ctx.new_page()
            # the password alone leads an admin to the enrolment page, and nowhere else
            password_step(page, base)
            page.wait_for_url(f"{base}/account/totp")
            expect(page.locator("#totp-required")).to_contain_text("needs a second factor")
            page.goto(f"{base}/users")
            page.wait_for_url(f"{base}/account/totp")
            cookie = next(c for c in ctx.cookies() if c["name"] == "metrosight_session")
            assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            page.click("#totp-begin")
            qr = page.locator("#totp-qr")
            expect(qr).to_be_visible()
            assert qr.evaluate("img => img.complete && img.naturalWidth > 100")  # the SVG QR code rendered
            secret = page.locator("#totp-secret").inner_text().strip()
            assert page.locator("#totp-uri").inner_text().startswith("otpauth://totp/metrosight:ada?secret=" + secret)
            page.screenshot(path=str(SHOTS / "totp-enrol.png"), full_page=True)
            code_step(page, code_at(secret, current_step()))
            expect(page.locator("#recovery-codes li")).to_have_count(10)
            recovery = page.locator("#recovery-codes li").first.inner_text().strip()
            page.screenshot(path=str(SHOTS / "totp-recovery-codes.png"), full_page=True)
            page.goto(f"{base}/users")  # this session has both factors now
            expect(page.locator("h1")).to_contain_text("Users")
            page.click("header form.who button[type=submit]")  # sign out
            page.wait_for_url(f"{base}/login")

            # signing in again: the password, then the code on its own page; a wrong code is refused
            password_step(page, base)
            page.wait_for_url(f"{base}/login/totp?next=/")
            page.screenshot(path=str(SHOTS / "totp-code.png"), full_page=True)
            good = code_at(secret, current_step() + 1)
            code_step(page, "000000" if good != "000000" else "111111")
            expect(page.locator("#totp-error")).to_contain_text("wrong code")
            code_step(page, good)
            page.wait_for_url(f"{base}/")
            page.click("header form.who button[type=submit]")
            page.wait_for_url(f"{base}/login")

            # the same code once more is refused (a replay); a recovery code signs in once
            password_step(page, base)
            page.wait_for_url(f"{base}/login/totp?next=/")
            code_step(page, good)
            expect(page.locator("#totp-error")).to_contain_text("already used")
            code_step(page, recovery)
            page.wait_for_url(f"{base}/")
        finally:
            browser.close()

    from metrosight.store.repo import Store

    rows = [(e.action, json.loads(e.details or "{}")) for e in Store.for_home(home).audit.entries()]
    assert [d["reason"] for a, d in rows if a == "auth.totp_failed"] == ["wrong code", "code already used"]
    assert [a for a, _ in rows if a.startswith("totp.")] == ["totp.enrol_begin", "totp.enrol", "totp.recovery_used"]
    assert [d["via"] for a, d in rows if a == "auth.login"] == ["password", "pwd+totp", "pwd+totp"]
