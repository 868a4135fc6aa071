"""Red team of issue 19 (access) against a real OpenID provider on loopback: cookies of single sign-on over
HTTPS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

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
