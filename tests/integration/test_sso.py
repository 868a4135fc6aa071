"""Single sign-on through a real OpenID provider on loopback (npm ``oidc-provider``, see
:mod:`tests.integration.oidc_provider`) against the operator service in process: who gets signed in as whom,
with which role, and what is refused.

The provider's pages are driven with httpx (:func:`provider_sign_in`); the browser test is
tests/e2e/test_sso_ui.py.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from metrosight.api.app import ApiConfig, create_app
from metrosight.api.oidc import OidcClient, OidcError
from metrosight.bus.payloads import AlertV1
from metrosight.config.auth import OidcConfig
from metrosight.core.types import Category, Match
from metrosight.policy.passwords import hash_password
from metrosight.policy.rules import Authorisation
from metrosight.services.suite import Services
from tests.integration.oidc_provider import SECRET, OidcProvider, provider_sign_in
from tests.unit.api.conftest import CAMERAS, make_runtime

pytestmark = pytest.mark.integration

BASE = "http://127.0.0.1:8080"
CALLBACK = f"{BASE}/auth/oidc/callback"
RED_OPERATORS = {"group": "metro-red-operators", "roles": ["operator"], "camera_groups": ["red"]}
VIEWERS = {"group": "metro-viewers", "roles": ["viewer"]}
USERS = {
    "olga": {
        "password": "pw-olga",
        "claims": {"email": "olga@metro.example", "email_verified": True, "groups": ["metro-red-operators"]},
    },
    "oleg": {"password": "pw-oleg", "claims": {"groups": ["metro-red-operators", "staff"]}},
    "petr": {"password": "pw-petr", "claims": {"groups": ["cleaners"]}},
    "mallory": {
        "password": "pw-mallory",
        "claims": {"email": "root@metro.example", "email_verified": False, "groups": ["metro-viewers"]},
    },
    "rita": {
        "password": "pw-rita",
        "claims": {"email": "Root@Metro.example", "email_verified": True, "groups": ["metro-viewers"]},
    },
}


class Site:
    """The service (in process) wired to the provider; ``browser()`` is a fresh browser (cookie jar)."""

    def __init__(self, rt: Services, provider: OidcProvider) -> None:
        self.rt, self.provider = rt, provider
        self.app = create_app(rt, config=ApiConfig())

    def browser(self) -> TestClient:
        return TestClient(self.app, base_url=BASE)

    def start(self, browser: TestClient, next_path: str = "/") -> str:
        """Begin a sign-in in ``browser``; the provider's authorization URL."""
        res = browser.get(f"/auth/oidc/login?next={next_path}", follow_redirects=False)
        assert res.status_code == 303, res.text
        return res.headers["location"]

    def sign_in(self, browser: TestClient, login: str) -> httpx.Response:
        """A whole sign-in as ``login`` (start, the provider's form, the callback); the callback's response."""
        url = provider_sign_in(self.start(browser), login, USERS[login]["password"], CALLBACK)
        return browser.get(url, follow_redirects=False)

    def actions(self, action: str) -> list[tuple[str, str | None, dict[str, Any]]]:
        import json

        return [
            (e.actor, e.target, json.loads(e.details) if e.details else {})
            for e in self.rt.store.audit.entries()
            if e.action == action
        ]

    def users(self) -> list[str]:
        return [name for name, _, _ in self.rt.store.users.all()]


@pytest.fixture()
def site(tmp_path: Path, oidc_provider_factory: Any) -> Site:
    provider = oidc_provider_factory([CALLBACK], USERS)
    auth = {"oidc": provider.config(CALLBACK, [RED_OPERATORS, VIEWERS])}
    rt = make_runtime(tmp_path / "home", cameras=CAMERAS, auth=auth)
    rt.store.users.add("root", ["admin"], None, None)
    return Site(rt, provider)


def raise_alert(rt: Services) -> int:
    """One alert on cam-1 (line red) of an active entry; its id."""
    store = rt.store
    root = store.users.actor("root")
    store.watchlists.create("wl", Category.WANTED, root)
    auth = Authorisation("law", "court", "R-1", datetime.now(UTC) + timedelta(days=3))
    store.users.add("appr", ["approver"], root)
    sid, _ = store.entries.enroll(
        "wl", "Person", np.ones(128, np.float32), "m", "p.jpg", "cd" * 32, 0.9, store.users.actor("appr"), auth
    )
    m = Match(sid, "Person", "wl", Category.WANTED, 0.95, 0.3)
    assert store.alerts.save(
        AlertV1.of_match(m, camera_id="cam-1", track_id=1, first_seen=1.0, last_seen=2.0, event_id="e-1", samples=3),
        None,
    )
    return store.alerts.all()[0].id


def test_a_mapped_group_signs_in_as_a_scoped_operator_and_two_sessions_are_one_person(site: Site) -> None:
    first = site.browser()
    res = site.sign_in(first, "olga")
    assert res.status_code == 200 and 'http-equiv="refresh"' in res.text and "url=/" in res.text
    me = first.get("/api/me").json()
    assert me["name"] == "olga" and me["roles"] == ["operator"]
    assert first.get("/").status_code == 200  # the live alerts page
    [(by, target, added)] = site.actions("user.add")[1:]
    assert (by, target, added["via"], added["subject"]) == ("oidc", "olga", "oidc", "olga")
    assert added["scopes"] == {"operator": ["cameras:red"]}
    assert site.rt.store.users.scopes() == {"olga": {"operator": ["cameras:red"]}}  # held for line red only
    [(_, _, login)] = site.actions("auth.login")
    assert login["via"] == "oidc" and login["rules"] == ["group metro-red-operators"]

    # the same subject in another browser is the same person: one user, and the two-person rule holds
    second = site.browser()
    assert site.sign_in(second, "olga").status_code == 200
    assert second.get("/api/me").json()["name"] == "olga" and site.users().count("olga") == 1
    alert = raise_alert(site.rt)
    confirm = f"/api/alerts/{alert}/confirm"
    assert first.post(confirm, headers={"X-CSRF-Token": first.get("/api/me").json()["csrf_token"]}).status_code == 200
    again = second.post(confirm, headers={"X-CSRF-Token": second.get("/api/me").json()["csrf_token"]})
    assert again.status_code == 403 and "second, different operator" in again.json()["detail"]


def test_a_wrong_state_is_refused(site: Site) -> None:
    browser = site.browser()
    url = provider_sign_in(site.start(browser), "olga", "pw-olga", CALLBACK)
    q = parse_qs(urlsplit(url).query)
    forged = f"/auth/oidc/callback?code={q['code'][0]}&state=forged-{secrets.token_hex(8)}"
    res = browser.get(forged)
    assert res.status_code == 400 and "wrong state" in res.text
    assert browser.get("/api/me").status_code == 401 and "olga" not in site.users()
    # a callback in a browser that never started the sign-in (login CSRF) is refused too
    assert site.browser().get(url).status_code == 400
    # each failure is audited, until a client keeps failing: then its failures are counted in one burst row
    failed = site.actions("auth.oidc_failed")
    assert [f[2]["reason"].split(" (")[0] for f in failed] == [
        "the sign-in answer does not belong to this browser's attempt",
        "no sign-in was started in this browser",
    ]
    for _ in range(6):
        site.browser().get(url)
    assert len(site.actions("auth.oidc_failed")) == 5


def test_a_replayed_callback_and_a_replayed_code_are_refused(site: Site) -> None:
    browser = site.browser()
    url = provider_sign_in(site.start(browser), "olga", "pw-olga", CALLBACK)
    attempt = browser.cookies.get("metrosight_oidc")
    assert browser.get(url).status_code == 200
    # the same answer again, with the attempt's cookie (an attacker who captured both): spent
    thief = site.browser()
    thief.cookies.set("metrosight_oidc", attempt, domain="127.0.0.1", path="/auth/oidc")
    res = thief.get(url)
    assert res.status_code == 400 and "completed already" in res.text
    assert thief.get("/api/me").status_code == 401
    # the spent code with a fresh attempt's state: the provider refuses the code itself
    fresh = site.browser()
    state = parse_qs(urlsplit(site.start(fresh)).query)["state"][0]
    code = parse_qs(urlsplit(url).query)["code"][0]
    res = fresh.get(f"/auth/oidc/callback?code={code}&state={state}")
    assert res.status_code == 401 and "invalid_grant" in res.text
    assert fresh.get("/api/me").status_code == 401


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _id_token_for(provider: OidcProvider, client_id: str, redirect: str, nonce: str) -> str:
    """An ID token the provider issues to ``client_id`` for olga (its own code flow, PKCE)."""
    verifier, challenge = _pkce_pair()
    params = {
        "client_id": client_id,
        "response_type": "code",
        "scope": "openid email groups",
        "redirect_uri": redirect,
        "state": "s",
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    auth_url = str(httpx.URL(f"{provider.issuer}/auth", params=params))
    code = parse_qs(urlsplit(provider_sign_in(auth_url, "olga", "pw-olga", redirect)).query)["code"][0]
    res = httpx.post(
        f"{provider.issuer}/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect, "code_verifier": verifier},
        auth=(client_id, SECRET),
    )
    assert res.status_code == 200, res.text
    return str(res.json()["id_token"])


def test_an_id_token_of_another_audience_is_refused(site: Site) -> None:
    cfg = OidcConfig.model_validate(site.provider.config(CALLBACK, [RED_OPERATORS]))
    client = OidcClient(cfg, cfg.secret())
    ours = _id_token_for(site.provider, "metrosight", CALLBACK, "n-1")
    assert client.validate_id_token(ours, "n-1")["sub"] == "olga"  # the control: the same check passes for ours
    with pytest.raises(OidcError, match="nonce"):
        client.validate_id_token(ours, "another-nonce")
    theirs = _id_token_for(site.provider, "other-app", "http://127.0.0.1:9/cb", "n-2")
    with pytest.raises(OidcError, match="aud"):
        client.validate_id_token(theirs, "n-2")


def test_a_group_mapped_to_nothing_gives_no_role_and_no_account(site: Site) -> None:
    browser = site.browser()
    res = site.sign_in(browser, "petr")
    assert res.status_code == 403 and "no group or claim of yours is mapped to a role" in res.text
    assert browser.get("/api/me").status_code == 401 and "petr" not in site.users()
    [(actor, _, refused)] = site.actions("auth.oidc_refused")
    assert actor == "oidc" and refused["subject"] == "petr"


def test_roles_follow_the_provider_at_each_sign_in_and_changes_are_audited(site: Site) -> None:
    browser = site.browser()
    assert site.sign_in(browser, "oleg").status_code == 200
    assert browser.get("/api/me").json()["roles"] == ["operator"]
    # the provider moves oleg to the viewers: his next sign-in makes him a viewer, audited
    users = {**USERS, "oleg": {"password": "pw-oleg", "claims": {"groups": ["metro-viewers"]}}}
    site.provider.set_users(users)
    other = site.browser()
    assert site.sign_in(other, "oleg").status_code == 200
    assert other.get("/api/me").json()["roles"] == ["viewer"]
    assert browser.get("/api/alerts").status_code == 403  # the older session lost the operator role at once
    [(by, target, change)] = site.actions("user.update")
    assert (by, target, change["roles"], change["via"]) == (
        "oidc",
        "oleg",
        {"from": ["operator"], "to": ["viewer"]},
        "oidc",
    )
    # then out of every mapped group: no role left, the sign-in refused, the old sessions hold nothing
    site.provider.set_users({**users, "oleg": {"password": "pw-oleg", "claims": {"groups": ["staff"]}}})
    assert site.sign_in(site.browser(), "oleg").status_code == 403
    assert other.get("/api/cameras").status_code == 403
    assert site.actions("user.update")[-1][2]["roles"] == {"from": ["viewer"], "to": []}


def test_an_unverified_email_is_not_trusted_for_linking(site: Site) -> None:
    root = site.rt.store.users.actor("root")
    site.rt.store.identities.link("root", site.provider.issuer, root, email="root@metro.example")
    # mallory's provider account claims root's address, unverified: she is a person of her own, not root
    browser = site.browser()
    assert site.sign_in(browser, "mallory").status_code == 200
    assert browser.get("/api/me").json() == {**browser.get("/api/me").json(), "name": "mallory", "roles": ["viewer"]}
    # rita's provider account holds the address verified: she completes the admin's link and acts as root
    browser = site.browser()
    assert site.sign_in(browser, "rita").status_code == 200
    assert browser.get("/api/me").json()["name"] == "root"
    [(by, target, link)] = [a for a in site.actions("oidc.link") if a[2].get("completed")]
    assert (by, target, link["subject"], link["email"]) == ("oidc", "root", "rita", "root@metro.example")


def test_an_admin_links_a_subject_to_a_local_account(site: Site) -> None:
    assert site.sign_in(site.browser(), "olga").status_code == 200  # olga's first sign-in made her own user
    root = site.rt.store.users.actor("root")
    site.rt.store.users.add("olga.k", ["operator"], root)
    site.rt.store.identities.link("olga.k", site.provider.issuer, root, subject="olga")
    browser = site.browser()
    assert site.sign_in(browser, "olga").status_code == 200
    assert browser.get("/api/me").json()["name"] == "olga.k"
    assert ("olga", ["operator"], True) in site.rt.store.users.all()  # the user made for her is disabled
    [(by, target, link)] = site.actions("oidc.link")
    assert (by, target, link["from"]) == ("root", "olga.k", "olga")


def test_sign_out_ends_the_session_and_signs_out_at_the_provider(site: Site) -> None:
    browser = site.browser()
    assert site.sign_in(browser, "olga").status_code == 200
    csrf = browser.get("/api/me").json()["csrf_token"]
    res = browser.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert res.status_code == 200 and browser.get("/api/me").status_code == 401
    target = res.text.split('http-equiv="refresh" content="0;url=', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    q = parse_qs(urlsplit(target).query)
    assert target.startswith(f"{site.provider.issuer}/session/end?")
    assert q["post_logout_redirect_uri"] == [f"{BASE}/login"] and q["client_id"] == ["metrosight"]
    assert q["id_token_hint"][0].count(".") == 2
    # the provider accepts it (a wrong hint or return address would be an error page)
    page = httpx.get(target, timeout=10)
    assert page.status_code == 200 and "error" not in page.text.lower()


def test_local_accounts_can_be_disabled_but_for_break_glass(tmp_path: Path, oidc_provider_factory: Any) -> None:
    provider = oidc_provider_factory([CALLBACK], USERS)
    auth = {"local_accounts": False, "break_glass_users": ["root"], "oidc": provider.config(CALLBACK, [RED_OPERATORS])}
    rt = make_runtime(tmp_path / "home", cameras=CAMERAS, auth=auth)
    rt.store.users.add("root", ["admin"], None, hash_password("velvet compass harbour"))
    rt.store.accounts.add_user("carol", ["operator"], "granite lantern meadow", rt.store.users.actor("root"))
    site = Site(rt, provider)
    browser = site.browser()
    page = browser.get("/login")
    assert 'id="sso-login"' in page.text and ">single sign-on</span>" in page.text
    assert "Break-glass sign-in" in page.text
    res = browser.post("/api/login", json={"username": "carol", "password": "granite lantern meadow"})
    assert res.status_code == 403 and "single sign-on" in res.json()["detail"]
    assert (
        browser.post("/api/login", json={"username": "root", "password": "velvet compass harbour"}).status_code == 200
    )
    [(_, _, login)] = site.actions("auth.login")
    assert login["break_glass"] is True and login["via"] == "password"
    # an account of the provider has no local password to set
    assert site.sign_in(site.browser(), "olga").status_code == 200
    with pytest.raises(Exception, match="single sign-on"):
        rt.store.accounts.set_password("olga", "another long passphrase here", rt.store.users.actor("olga"))


def test_a_mapping_that_cannot_apply_refuses_the_sign_in(tmp_path: Path, oidc_provider_factory: Any) -> None:
    provider = oidc_provider_factory([CALLBACK], USERS)
    unknown_list = {**RED_OPERATORS, "watchlists": ["no-such-list"]}
    rt = make_runtime(tmp_path / "home", cameras=CAMERAS, auth={"oidc": provider.config(CALLBACK, [unknown_list])})
    site = Site(rt, provider)
    browser = site.browser()
    res = site.sign_in(browser, "olga")
    assert res.status_code == 403 and "no watchlist" in res.text
    assert browser.get("/api/me").status_code == 401 and "olga" not in site.users()


def test_a_provider_that_cannot_be_reached_gives_a_clear_page(tmp_path: Path) -> None:
    from tests.integration.procs import free_port

    down = {
        "issuer": f"http://127.0.0.1:{free_port()}",
        "client_id": "metrosight",
        "client_secret": "x",
        "redirect_url": CALLBACK,
        "mappings": [RED_OPERATORS],
    }
    rt = make_runtime(tmp_path / "home", cameras=CAMERAS, auth={"oidc": down})
    browser = TestClient(create_app(rt, config=ApiConfig()), base_url=BASE)
    res = browser.get("/auth/oidc/login")
    assert res.status_code == 502 and "cannot be reached" in res.text and "Traceback" not in res.text
    res = browser.get("/auth/oidc/callback?code=x&state=y")
    assert res.status_code == 400 and "no sign-in was started" in res.text
    # in Russian: the pages of single sign-on hold no English (names and settings aside)
    from tests.unit.api.test_i18n import english_left

    browser.headers["Accept-Language"] = "ru"
    for url, expected in (
        ("/login", "Войти через"),
        ("/auth/oidc/login", "поставщик удостоверений недоступен"),
        ("/auth/oidc/callback?code=x&state=y", "в этом браузере вход не начинался"),
    ):
        res = browser.get(url)
        assert expected in res.text and not english_left(res.text), (url, english_left(res.text))
