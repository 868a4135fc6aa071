"""The relying party's checks of the provider and its ID tokens, with a fake provider (a requests adapter serving
its discovery document and JWKS) and tokens signed here: what is accepted and what is refused, and why.

The same checks against a real provider: tests/integration/test_sso.py."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey
from requests.adapters import BaseAdapter

from metrosight.api.oidc import OidcClient, OidcError
from metrosight.config.auth import OidcConfig

ISSUER = "https://sso.example.org/realms/metro"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})


class FakeProvider(BaseAdapter):
    """Serves ``documents`` by URL; counts the requests."""

    def __init__(self, documents: dict[str, Any]) -> None:
        super().__init__()
        self.documents, self.hits = documents, []  # type: ignore[var-annotated]

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.hits.append(request.url)
        resp = requests.Response()
        doc = self.documents.get(str(request.url))
        resp.status_code = 200 if doc is not None else 404
        resp._content = json.dumps(doc).encode() if doc is not None else b"{}"
        resp.headers["Content-Type"] = "application/json"
        resp.url = str(request.url)
        resp.request = request
        return resp

    def close(self) -> None:
        pass


def discovery(**over: Any) -> dict[str, Any]:
    return {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/auth",
        "token_endpoint": f"{ISSUER}/token",
        "jwks_uri": f"{ISSUER}/certs",
        "end_session_endpoint": f"{ISSUER}/logout",
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": ["RS256"],
        **over,
    }


def client(keys: list[RSAKey] | None = None, **meta: Any) -> tuple[OidcClient, FakeProvider]:
    cfg = OidcConfig(
        issuer=ISSUER,
        client_id="metrosight",
        client_secret="s3cret-of-the-client",  # type: ignore[arg-type]
        redirect_url="https://ms.example.org/auth/oidc/callback",
    )
    jwks = {"keys": [k.as_dict(private=False) for k in (keys or [KEY])]}
    fake = FakeProvider({f"{ISSUER}/.well-known/openid-configuration": discovery(**meta), f"{ISSUER}/certs": jwks})
    return OidcClient(cfg, cfg.secret(), adapter=fake), fake


def token(key: Any = KEY, alg: str = "RS256", **over: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "u-1", "aud": "metrosight", "exp": now + 300, "iat": now, "nonce": "n-1", **over}
    header = {"alg": alg, **({"kid": key.kid} if getattr(key, "kid", None) else {})}
    return jwt.encode(header, {k: v for k, v in claims.items() if v is not None}, key, algorithms=[alg])


def test_a_good_token_is_accepted() -> None:
    rp, _ = client()
    assert rp.validate_id_token(token(), "n-1")["sub"] == "u-1"


@pytest.mark.parametrize(
    ("over", "why"),
    [
        ({"iss": "https://evil.example.org"}, "iss"),
        ({"aud": "other-app"}, "aud"),
        ({"aud": ["other-app", "metrosight"], "azp": "other-app"}, "azp"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"nonce": "n-2"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"sub": None}, "sub"),
    ],
)
def test_a_token_failing_a_claim_check_is_refused(over: dict[str, Any], why: str) -> None:
    rp, _ = client()
    with pytest.raises(OidcError, match=why) as exc:
        rp.validate_id_token(token(**over), "n-1")
    assert exc.value.status == 401


def test_expiry_allows_the_configured_clock_skew_only() -> None:
    rp, _ = client()
    assert rp.validate_id_token(token(exp=int(time.time()) - 30), "n-1")  # within the 60 s leeway
    with pytest.raises(OidcError, match="expired"):
        rp.validate_id_token(token(exp=int(time.time()) - 120), "n-1")


def test_unsigned_symmetric_and_foreign_signatures_are_refused() -> None:
    rp, _ = client(id_token_signing_alg_values_supported=["RS256", "HS256", "none"])
    secret_key = OctKey.import_key(b"s3cret-of-the-client")
    with pytest.raises(OidcError, match="signature"):  # HS256 keyed with the client secret: never accepted
        rp.validate_id_token(token(secret_key, "HS256"), "n-1")
    header = json.dumps({"alg": "none"}).encode()
    import base64

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    body = json.dumps({"iss": ISSUER, "sub": "u-1", "aud": "metrosight", "exp": int(time.time()) + 60, "nonce": "n-1"})
    with pytest.raises(OidcError, match="signature"):
        rp.validate_id_token(f"{b64(header)}.{b64(body.encode())}.", "n-1")
    impostor = RSAKey.generate_key(2048, parameters={"kid": "k1"})  # the right key id, another key
    with pytest.raises(OidcError, match="signature"):
        rp.validate_id_token(token(impostor), "n-1")


def test_a_rotated_key_is_fetched_once() -> None:
    new = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    rp, fake = client()
    assert rp.validate_id_token(token(), "n-1")
    fake.documents[f"{ISSUER}/certs"] = {"keys": [KEY.as_dict(private=False), new.as_dict(private=False)]}
    rp._keys_at -= 60  # the last fetch was over JWKS_MIN_REFRESH ago
    assert rp.validate_id_token(token(new), "n-1")["sub"] == "u-1"
    assert fake.hits.count(f"{ISSUER}/certs") == 2


def test_a_provider_for_another_issuer_or_without_s256_is_refused() -> None:
    rp, _ = client(issuer="https://sso.example.org/realms/other")
    with pytest.raises(OidcError, match="names the issuer") as exc:
        rp.begin("/")
    assert exc.value.status == 502
    rp, _ = client(code_challenge_methods_supported=["plain"])
    with pytest.raises(OidcError, match="S256"):
        rp.begin("/")


def test_the_authorization_request_carries_pkce_state_and_nonce() -> None:
    from urllib.parse import parse_qs, urlsplit

    rp, _ = client()
    url, pending = rp.begin("/cameras")
    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(f"{ISSUER}/auth?")
    assert q["state"] == pending.state and q["nonce"] == pending.nonce and q["code_challenge_method"] == "S256"
    assert q["code_challenge"] != pending.verifier and len(pending.verifier) >= 43
    assert q["client_id"] == "metrosight" and q["response_type"] == "code" and "client_secret" not in url
    assert pending.next == "/cameras"
    other_url, other = rp.begin("/")
    assert other.state != pending.state and other.nonce != pending.nonce and other.verifier != pending.verifier


def test_the_secret_is_never_shown() -> None:
    rp, _ = client()
    assert "s3cret" not in repr(rp) and "s3cret" not in repr(rp.cfg) and "s3cret" not in str(rp.cfg.model_dump())
    assert rp.end_session_url("a.b.c") == (
        f"{ISSUER}/logout?client_id=metrosight&post_logout_redirect_uri=https%3A%2F%2Fms.example.org%2Flogin"
        "&id_token_hint=a.b.c"
    )


def test_spent_attempts_are_refused_and_forgotten_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    from metrosight.api import sso

    state = sso.SsoState(client()[0], "k")
    assert state.spend("a") and not state.spend("a") and state.spend("b")
    monkeypatch.setattr(sso, "MAX_SPENT", 3)  # a flood: the oldest go first, nobody is locked out
    assert state.spend("c") and state.spend("d") and state.spend("e")
    assert state.spend("a") and not state.spend("e")


def test_a_provider_that_is_down_is_not_asked_by_every_page(monkeypatch: pytest.MonkeyPatch) -> None:
    rp, fake = client()
    url = f"{ISSUER}/.well-known/openid-configuration"
    doc = fake.documents.pop(url)
    for _ in range(3):
        with pytest.raises(OidcError, match="answered 404"):
            rp.begin("/")
    assert fake.hits.count(url) == 1  # remembered for FAILURE_TTL
    fake.documents[url] = doc
    rp._failed_at -= 10  # later: asked again, and it is back
    assert rp.begin("/")[0].startswith(f"{ISSUER}/auth?")
