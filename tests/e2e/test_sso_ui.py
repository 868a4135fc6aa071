"""Single sign-on in a real browser (Debian chromium via playwright) through a real OpenID provider on loopback.

The provider is the certified npm package ``oidc-provider`` run with node (``tests/oidc/provider.mjs``, see
:mod:`tests.integration.oidc_provider`); `metrosight serve` runs with ``auth.oidc`` pointing at it, its client
secret in a file, and the provider group ``metro-red-operators`` mapped to the operator role scoped to line red.
Two alerts are stored: one on a camera of line red, one on line blue. In the browser, olga opens the service, is sent
to the sign-in page, clicks "Sign in with Metro SSO", signs in on the provider's own page and lands on the live
alerts page as an operator of line red, where she sees the red line's alert and not the blue line's; then she signs
out, here and at the provider. Screenshots go to tests/e2e/screenshots/ (sso-*.png).
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import REPO_ROOT, missing_system
from tests.e2e.test_operator_ui import ARGS, CHROMIUM, METROSIGHT, SHOTS, free_port
from tests.integration.oidc_provider import SECRET, OidcProvider

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

USERS = {
    "olga": {
        "password": "olga-provider-pw",
        "claims": {"email": "olga@metro.example", "email_verified": True, "groups": ["metro-red-operators"]},
    },
}


def setup_home(home: Path) -> None:
    """An admin (local, no password: bootstrap), an active entry, and one alert each on lines red and blue."""
    from metrosight.bus.payloads import AlertV1
    from metrosight.config.home import Home
    from metrosight.config.model import Settings
    from metrosight.core.types import Category, Match
    from metrosight.policy.rules import Authorisation
    from metrosight.services.installation import Installation

    store = Installation.open(Home(home), Settings()).store
    store.users.add("root", ["admin", "approver"], None)
    root = store.users.actor("root")
    store.users.add("appr", ["approver"], root)
    appr = store.users.actor("appr")
    store.watchlists.create("wanted-2026", Category.WANTED, root)
    auth = Authorisation("CPC art. 210", "District court", "2026/117", datetime.now(UTC) + timedelta(days=3))
    for name, cam in (("Red Line Person", "red-1"), ("Blue Line Person", "blue-1")):
        sid, _ = store.entries.enroll(
            "wanted-2026",
            name,
            np.ones(128, np.float32),
            "m",
            "p.jpg",
            hashlib.sha256(name.encode()).hexdigest(),
            0.9,
            appr,
            auth,
        )
        store.entries.approve("wanted-2026", name, root)
        m = Match(sid, name, "wanted-2026", Category.WANTED, 0.95, 0.3)
        alert = AlertV1.of_match(m, camera_id=cam, track_id=1, first_seen=1.0, last_seen=2.0, event_id=cam, samples=3)
        assert store.alerts.save(alert, None)
    store.engine.dispose()


@pytest.fixture()
def sso_server(tmp_path: Path) -> Iterator[tuple[str, OidcProvider]]:
    if not CHROMIUM.exists():
        missing_system("chromium is not installed (apt-get install chromium)")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    provider = OidcProvider(tmp_path / "provider", [f"{base}/auth/oidc/callback"], USERS)
    provider.start()
    home = tmp_path / "home"
    setup_home(home)
    secret = tmp_path / "oidc-secret"
    secret.write_text(SECRET + "\n")
    oidc = provider.config(
        f"{base}/auth/oidc/callback",
        [{"group": "metro-red-operators", "roles": ["operator"], "camera_groups": ["red"]}],
        display_name="Metro SSO",
    )
    del oidc["client_secret"]
    oidc["client_secret_file"] = str(secret)
    for name in ("red.mp4", "blue.mp4"):  # cameras that cannot read their file: they show as reconnecting
        (tmp_path / name).write_bytes(b"not a video")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        json.dumps(  # JSON is YAML
            {
                "ingest": {"reconnect_initial_seconds": 1.0, "reconnect_max_seconds": 5.0},
                "cameras": [
                    {"id": "red-1", "source": str(tmp_path / "red.mp4"), "line": "red"},
                    {"id": "blue-1", "source": str(tmp_path / "blue.mp4"), "line": "blue"},
                ],
                "auth": {"oidc": oidc},
            }
        )
    )
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [METROSIGHT, "--home", str(home), "serve", "--config", str(cfg), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO_ROOT,
    )
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
        yield base, provider
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        provider.stop()
    assert SECRET not in (tmp_path / "serve.log").read_text()  # the client secret is never logged


def test_sign_in_through_the_provider_as_a_scoped_operator(sso_server: tuple[str, OidcProvider]) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, provider = sso_server
    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.goto(f"{base}/")
            assert "/login" in page.url
            expect(page.locator("#sso-login")).to_have_text("Sign in with Metro SSO")
            page.screenshot(path=str(SHOTS / "sso-login.png"))
            page.click("#sso-login")
            # the provider's own sign-in page (another origin)
            page.wait_for_url(f"{provider.issuer}/interaction/**")
            page.fill("input[name=login]", "olga")
            page.fill("input[name=password]", USERS["olga"]["password"])
            page.screenshot(path=str(SHOTS / "sso-provider.png"))
            page.click("#provider-submit")
            # back at the service, signed in, on the live alerts page
            page.wait_for_url(f"{base}/", timeout=20_000)
            expect(page.locator("header .who span")).to_contain_text("olga")
            expect(page.locator("header .who small")).to_have_text("(operator)")
            expect(page.locator("#live")).to_have_text("live", timeout=10_000)
            red = page.locator("article.alert", has_text="Red Line Person")
            expect(red).to_be_visible()
            expect(red).to_contain_text("red-1")
            # the blue line's alert is outside her scope: not on the page, not in the API
            expect(page.locator("article.alert")).to_have_count(1)
            expect(page.locator("article.alert", has_text="Blue Line Person")).to_have_count(0)
            alerts = page.evaluate("fetch('/api/alerts').then(r => r.json())")
            assert [a["camera_id"] for a in alerts] == ["red-1"], alerts
            page.screenshot(path=str(SHOTS / "sso-live-alerts.png"), full_page=True)
            me = page.evaluate("fetch('/api/me').then(r => r.json())")
            assert me["name"] == "olga" and me["roles"] == ["operator"]

            # sign out: the session ends here, and the provider is asked to end its own
            page.click("header .who button[type=submit]")
            page.wait_for_url(f"{provider.issuer}/session/end**", timeout=20_000)
            page.screenshot(path=str(SHOTS / "sso-provider-logout.png"))
            page.goto(f"{base}/")
            assert "/login" in page.url
        finally:
            browser.close()
