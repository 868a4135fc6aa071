"""The OpenID Connect relying party (authlib): discovery, the authorization-code flow with PKCE, ID-token checks.

- **Discovery**: ``<issuer>/.well-known/openid-configuration`` is read at the first sign-in and kept for an hour;
  its ``issuer`` must equal the configured one exactly, and it must offer the code flow with PKCE ``S256`` when it
  lists PKCE methods at all.
- **Start** (:meth:`OidcClient.begin`): a fresh ``state`` (CSRF), ``nonce`` (binds the ID token to this browser's
  attempt) and PKCE ``code_verifier`` (S256 challenge sent) are made per attempt and held by the caller (a signed,
  short-lived cookie of that browser; see :mod:`metrosight.api.routes.oidc`).
- **Finish** (:meth:`OidcClient.finish`): the code is exchanged at the token endpoint with the verifier and the
  client's secret; the ID token's signature is checked with the provider's JWKS (fetched again once when a key id
  is unknown: a key rotation), then ``iss`` (exactly the issuer), ``aud`` (holds the client id; ``azp`` the client
  when present), ``exp``/``iat``/``nbf`` (with ``auth.oidc.clock_skew_seconds`` leeway), ``nonce`` and ``at_hash``.
  Only asymmetric signatures (RS/PS/ES/EdDSA) are accepted: never ``none``, never HS* (keyed with the secret).

Every failure is an :class:`OidcError` with one line for the user; the secret, codes and tokens are never logged.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from requests.adapters import BaseAdapter

from metrosight.api.i18n import N_, Text
from metrosight.config.auth import OidcConfig

DISCOVERY_TTL = 3600.0  # seconds the discovery document is kept
FAILURE_TTL = 5.0  # seconds a failed discovery is remembered (a provider that is down is not asked by every page)
JWKS_MIN_REFRESH = 30.0  # seconds between forced JWKS fetches (an unknown key id cannot make us hammer the provider)
SIGNING_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class OidcError(Exception):
    """A sign-in through the provider failed: ``text`` is one line for the user (translated on the page), ``str()``
    the same in English (the audit log), ``status`` the HTTP status."""

    def __init__(self, text: Text, status: int = 400) -> None:
        super().__init__(text.msgid % text.values if text.values else text.msgid)
        self.text, self.status = text, status


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """One browser's sign-in attempt, between the redirect to the provider and the callback.

    Attributes:
        state: the CSRF value echoed by the provider.
        nonce: must come back in the ID token.
        verifier: the PKCE code verifier (its S256 challenge went to the provider).
        next: the page to open after signing in (a local path).
        started: when the attempt began (Unix seconds).
    """

    state: str
    nonce: str
    verifier: str
    next: str
    started: float

    def to_json(self) -> dict[str, Any]:
        return {"s": self.state, "n": self.nonce, "v": self.verifier, "x": self.next, "t": self.started}

    @classmethod
    def from_json(cls, data: Any) -> PendingLogin:
        """Raises OidcError for anything but what :meth:`to_json` wrote."""
        try:
            return cls(str(data["s"]), str(data["n"]), str(data["v"]), str(data["x"]), float(data["t"]))
        except (KeyError, TypeError, ValueError):
            raise OidcError(N_("the sign-in attempt is not recognised; start again")) from None


class OidcClient:
    """The relying party for one provider (``auth.oidc``). Thread-safe; one per app.

    Args:
        cfg: the configuration.
        secret: the client secret (:meth:`OidcConfig.secret`).
        adapter: a requests transport adapter for both schemes (tests); None: the network, verifying TLS with
            ``cfg.ca_file`` or the system's CAs. Proxy and CA settings of the environment are not read.
    """

    def __init__(self, cfg: OidcConfig, secret: str, adapter: BaseAdapter | None = None) -> None:
        self.cfg = cfg
        self._secret = secret
        self._adapter = adapter
        self._lock = threading.Lock()
        self._meta: dict[str, Any] | None = None
        self._meta_at = 0.0
        self._keys: KeySet | None = None
        self._failed: OidcError | None = None
        self._failed_at = 0.0
        self._keys_at = 0.0

    def __repr__(self) -> str:  # never the secret
        return f"OidcClient(issuer={self.cfg.issuer!r}, client_id={self.cfg.client_id!r})"

    def _setup(self, session: requests.Session) -> requests.Session:
        session.trust_env = False
        session.verify = str(self.cfg.ca_file) if self.cfg.ca_file else True
        if self._adapter is not None:
            session.mount("http://", self._adapter)
            session.mount("https://", self._adapter)
        return session

    def _http(self, **kw: Any) -> OAuth2Session:
        session = OAuth2Session(default_timeout=self.cfg.timeout_seconds, **kw)
        self._setup(session)
        return session

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            with self._setup(requests.Session()) as http:
                resp = http.get(
                    url, headers={"Accept": "application/json"}, allow_redirects=False, timeout=self.cfg.timeout_seconds
                )
        except requests.RequestException as exc:
            raise OidcError(
                N_("the sign-in provider cannot be reached (%(what)s: %(error)s)", what=what, error=type(exc).__name__),
                502,
            ) from None
        if resp.status_code != 200:
            raise OidcError(
                N_(
                    "the sign-in provider answered %(status)s to the %(what)s request",
                    status=resp.status_code,
                    what=what,
                ),
                502,
            )
        try:
            data = resp.json()
        except ValueError:
            raise OidcError(N_("the sign-in provider's %(what)s is not JSON", what=what), 502) from None
        if not isinstance(data, dict):
            raise OidcError(N_("the sign-in provider's %(what)s is not a JSON object", what=what), 502)
        return data

    # -- the provider's documents -------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """The discovery document (cached for :data:`DISCOVERY_TTL`; a failure is remembered for
        :data:`FAILURE_TTL`, so a provider that is down is not asked again by every sign-in page in between).

        Raises:
            OidcError: 502 when unreachable, not JSON, for another issuer, or without the code flow or S256.
        """
        now = time.monotonic()
        with self._lock:
            if self._meta is not None and now - self._meta_at < DISCOVERY_TTL:
                return self._meta
            if self._failed is not None and now - self._failed_at < FAILURE_TTL:
                raise OidcError(self._failed.text, self._failed.status)
        try:
            meta = self._discover()
        except OidcError as exc:
            with self._lock:
                self._failed, self._failed_at = exc, time.monotonic()
            raise
        with self._lock:
            self._meta, self._meta_at, self._failed = meta, time.monotonic(), None
        return meta

    def _discover(self) -> dict[str, Any]:
        url = self.cfg.issuer.rstrip("/") + "/.well-known/openid-configuration"
        meta = self._get_json(url, "discovery")
        if meta.get("issuer") != self.cfg.issuer:
            raise OidcError(
                N_(
                    "the provider's discovery document names the issuer %(found)s, not the configured %(issuer)s "
                    "(%(setting)s must be written exactly as the provider writes it)",
                    found=repr(meta.get("issuer")),
                    issuer=repr(self.cfg.issuer),
                    setting="auth.oidc.issuer",
                ),
                502,
            )
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(meta.get(key), str):
                raise OidcError(N_("the provider's discovery document has no %(key)s", key=key), 502)
        methods = meta.get("code_challenge_methods_supported")
        if isinstance(methods, list) and "S256" not in methods:
            raise OidcError(
                N_(
                    "the provider does not offer %(method)s (%(key)s)",
                    method="PKCE S256",
                    key="code_challenge_methods_supported",
                ),
                502,
            )
        return meta

    def _key_set(self, force: bool = False) -> KeySet:
        with self._lock:
            fresh = time.monotonic() - self._keys_at < JWKS_MIN_REFRESH
            if self._keys is not None and (not force or fresh):
                return self._keys
        data = self._get_json(str(self.metadata()["jwks_uri"]), "JWKS")
        try:
            keys = KeySet.import_key_set(data)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise OidcError(N_("the provider's JWKS cannot be read"), 502) from None
        with self._lock:
            self._keys, self._keys_at = keys, time.monotonic()
        return keys

    # -- the flow -----------------------------------------------------------------------------------------------
    def begin(self, next_path: str) -> tuple[str, PendingLogin]:
        """The provider's authorization URL for a new attempt, and the attempt to keep until the callback.

        Raises:
            OidcError: the provider's discovery failed.
        """
        meta = self.metadata()
        pending = PendingLogin(generate_token(32), generate_token(32), generate_token(64), next_path, time.time())
        with self._http(
            client_id=self.cfg.client_id,
            redirect_uri=self.cfg.redirect_url,
            scope=" ".join(self.cfg.scopes),
            code_challenge_method="S256",
        ) as client:
            url, _ = client.create_authorization_url(
                meta["authorization_endpoint"],
                state=pending.state,
                code_verifier=pending.verifier,
                nonce=pending.nonce,
            )
        return str(url), pending

    def _auth_method(self, meta: dict[str, Any]) -> str:
        offered = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        return "client_secret_basic" if "client_secret_basic" in offered else "client_secret_post"

    def finish(self, pending: PendingLogin, code: str) -> tuple[dict[str, Any], str]:
        """Exchange ``code`` for tokens and validate the ID token against ``pending``.

        Returns:
            ``(claims, id_token)``: the validated claims and the raw ID token (for RP-initiated logout).

        Raises:
            OidcError: 401 when the provider refuses the code (used, expired, another verifier) or the ID token
                fails a check; 502 when the provider cannot be reached or answers nonsense.
        """
        meta = self.metadata()
        try:
            with self._http(
                client_id=self.cfg.client_id,
                client_secret=self._secret,
                redirect_uri=self.cfg.redirect_url,
                token_endpoint_auth_method=self._auth_method(meta),
            ) as client:
                token = client.fetch_token(
                    meta["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=pending.verifier,
                )
        except OAuthError as exc:
            raise OidcError(
                N_("the sign-in provider refused the sign-in (%(error)s)", error=str(exc.error)), 401
            ) from None
        except requests.RequestException as exc:
            raise OidcError(
                N_(
                    "the sign-in provider cannot be reached (%(what)s: %(error)s)",
                    what="token",
                    error=type(exc).__name__,
                ),
                502,
            ) from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError(
                N_(
                    "the sign-in provider sent no ID token (is %(scope)s among %(setting)s?)",
                    scope="openid",
                    setting="auth.oidc.scopes",
                ),
                502,
            )
        access = token.get("access_token")
        claims = self.validate_id_token(id_token, pending.nonce, access if isinstance(access, str) else None)
        return claims, id_token

    def validate_id_token(self, id_token: str, nonce: str, access_token: str | None = None) -> dict[str, Any]:
        """The claims of ``id_token`` once its signature (the provider's JWKS), issuer, audience, expiry, nonce
        and ``at_hash`` are checked.

        Raises:
            OidcError: 401 naming the check that failed.
        """
        meta = self.metadata()
        offered = meta.get("id_token_signing_alg_values_supported") or ["RS256"]
        algs = [a for a in offered if a in SIGNING_ALGS]
        if not algs:
            raise OidcError(
                N_("the provider signs ID tokens with no algorithm metrosight accepts (asymmetric only)"), 502
            )
        registry = JWSRegistry(algorithms=algs)
        try:
            try:
                token = jwt.decode(id_token, self._key_set(), algorithms=algs, registry=registry)
            except InvalidKeyIdError:  # the provider rotated its keys
                token = jwt.decode(id_token, self._key_set(force=True), algorithms=algs, registry=registry)
        except (JoseError, ValueError) as exc:
            raise OidcError(N_("the ID token's signature is not valid (%(why)s)", why=_why(exc)), 401) from None
        options = {
            "iss": {"essential": True, "value": self.cfg.issuer},
            "aud": {"essential": True, "value": self.cfg.client_id},
            "sub": {"essential": True},
            "exp": {"essential": True},
        }
        params = {"nonce": nonce, "client_id": self.cfg.client_id, "access_token": access_token}
        claims = CodeIDToken(token.claims, token.header, options, params)
        try:
            claims.validate(leeway=self.cfg.clock_skew_seconds)
        except (JoseError, ValueError) as exc:
            raise OidcError(N_("the ID token was refused (%(why)s)", why=_why(exc)), 401) from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise OidcError(N_("the ID token names no subject"), 401)
        return dict(claims)

    def end_session_url(self, id_token: str | None) -> str | None:
        """RP-initiated logout: the provider's ``end_session_endpoint`` with ``id_token_hint``, ``client_id`` and
        ``post_logout_redirect_uri``, or None when the provider advertises none (or cannot be reached)."""
        try:
            meta = self.metadata()
        except OidcError:
            return None
        endpoint = meta.get("end_session_endpoint")
        if not isinstance(endpoint, str):
            return None
        params = {"client_id": self.cfg.client_id, "post_logout_redirect_uri": self.cfg.logout_return()}
        if id_token:
            params["id_token_hint"] = id_token
        return str(add_params_to_uri(endpoint, list(params.items())))


def _why(exc: Exception) -> str:
    """A short name of what failed: the claim (``invalid_claim: aud``) or the error's class."""
    desc = getattr(exc, "description", None) or getattr(exc, "error", None) or type(exc).__name__
    return str(desc)[:160]
