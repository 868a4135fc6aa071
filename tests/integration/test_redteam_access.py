"""Red team of issue 19 (access) against a real OpenID provider on loopback: cookies of single sign-on over
HTTPS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from metrosight.policy.crypto import KeyRing
from metrosight.policy.passwords import hash_password
from metrosight.policy.totp import code_at, current_step
from metrosight.store.db import open_engine
from metrosight.store.repo import Store
from tests.integration.test_sso import CALLBACK, RED_OPERATORS, USERS, Site
from tests.unit.api.conftest import CAMERAS, make_runtime

pytestmark = pytest.mark.integration


def test_the_sign_in_attempt_cookie_is_secure_over_https(tmp_path: Path, oidc_provider_factory: Any) -> None:
    """Over HTTPS (``serve`` with TLS, or a trusted proxy's ``X-Forwarded-Proto: https``) the session cookie is
    Secure; the attempt cookie, which holds the PKCE verifier, state and nonce of a sign-in, was not (only with
    ``--secure-cookies``), so a plain-HTTP request to the host could carry it off."""
    provider = oidc_provider_factory([CALLBACK], USERS)
    rt = make_runtime(tmp_path / "home", cameras=CAMERAS, auth={"oidc": provider.config(CALLBACK, [RED_OPERATORS])})
    site = Site(rt, provider)
    https = TestClient(site.app, base_url="https://127.0.0.1:8080")  # type: ignore[arg-type]
    res = https.get("/auth/oidc/login?next=/", follow_redirects=False)
    assert res.status_code == 303, res.text
    [cookie] = [c for c in res.headers.get_list("set-cookie") if c.startswith("metrosight_oidc=")]
    assert "secure" in cookie.lower() and "httponly" in cookie.lower()
    # over plain HTTP (no TLS, nobody vouched for https) it stays as it was: the sign-in works on http://localhost
    plain = site.browser().get("/auth/oidc/login?next=/", follow_redirects=False)
    [cookie] = [c for c in plain.headers.get_list("set-cookie") if c.startswith("metrosight_oidc=")]
    assert "secure" not in cookie.lower()


def test_a_password_session_ends_when_local_accounts_are_disabled(tmp_path: Path, oidc_provider_factory: Any) -> None:
    """``auth.local_accounts: false`` refused new password sign-ins, but a password session made before the
    restart (the session key lives in the home folder) went on for its 8 hours. Now it ends at its next request,
    except a break-glass user's."""
    provider = oidc_provider_factory([CALLBACK], USERS)
    oidc = provider.config(CALLBACK, [RED_OPERATORS])
    rt = make_runtime(tmp_path / "home", cameras=CAMERAS, auth={"oidc": oidc})
    rt.store.users.add("root", ["admin"], None, hash_password("velvet compass harbour"))
    rt.store.accounts.add_user("carol", ["operator"], "granite lantern meadow", rt.store.users.actor("root"))
    before = Site(rt, provider)
    carol, root = before.browser(), before.browser()
    assert carol.post("/api/login", json={"username": "carol", "password": "granite lantern meadow"}).is_success
    assert root.post("/api/login", json={"username": "root", "password": "velvet compass harbour"}).is_success
    assert carol.get("/api/alerts").status_code == 200

    # the service restarts with local accounts disabled; the browsers keep their cookies
    auth = {"local_accounts": False, "break_glass_users": ["root"], "oidc": oidc}
    after = Site(make_runtime(tmp_path / "home", cameras=CAMERAS, auth=auth), provider)
    carol_now = after.browser()
    carol_now.cookies.update(carol.cookies)
    res = carol_now.get("/api/alerts")
    assert res.status_code == 401, res.text
    root_now = after.browser()
    root_now.cookies.update(root.cookies)
    assert root_now.get("/api/users").status_code == 200  # break-glass


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_mark_of_a_factor_changes_when_it_is_reset_and_enrolled_again(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A session signed in with a factor keeps the factor's mark and ends once it differs: the mark must be
    the same at every read of one factor, and differ for a factor enrolled after a reset (also when the new row
    takes the old one's id, as SQLite may give it)."""
    url = f"sqlite:///{tmp_path / 'm.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    store = Store(open_engine(url), KeyRing(Fernet.generate_key()), tmp_path / "audit.checkpoints")
    store.users.add("ada", ["admin"], None, hash_password("a long test password"))
    ada = store.users.actor("ada")
    assert store.second_factor.mark("ada") is None
    e = store.second_factor.begin(ada, "metrosight")
    assert store.second_factor.mark("ada") is None  # not confirmed yet
    store.second_factor.confirm(ada, code_at(e.secret, current_step()), 4)
    first = store.second_factor.mark("ada")
    assert first is not None and store.second_factor.mark("ada") == first
    store.second_factor.reset("ada", ada)
    assert store.second_factor.mark("ada") is None
    e = store.second_factor.begin(ada, "metrosight")
    store.second_factor.confirm(ada, code_at(e.secret, current_step()), 4)
    assert store.second_factor.mark("ada") not in (None, first)
