"""Single sign-on routes (OpenID Connect, ``auth.oidc``): start, callback, sign-out at the provider.

- ``GET /auth/oidc/login?next=/`` starts an attempt (:meth:`~metrosight.api.oidc.OidcClient.begin`): its state,
  nonce and PKCE verifier go into a signed cookie of this browser only (``metrosight_oidc``: HttpOnly,
  ``Secure`` over HTTPS, ``SameSite=Lax`` so that it comes back with the provider's redirect, 10 minutes, path
  ``/auth/oidc``), and the browser is sent to the provider.
- ``GET /auth/oidc/callback`` checks the state against that cookie, spends the attempt (a replayed callback is
  refused even with the cookie), exchanges the code, validates the ID token, maps the claims to roles
  (:mod:`metrosight.policy.sso`) and signs the person in as their user (:mod:`metrosight.store.identities`): the
  same session cookie as a password sign-in. The page it answers with opens the next page itself: the session
  cookie is ``SameSite=Strict``, which a browser withholds from the rest of a redirect chain that began at the
  provider.
- Sign-out (``POST /logout`` of the pages) ends the local session and, when the provider advertises an
  ``end_session_endpoint``, sends the browser there (RP-initiated logout, with ``id_token_hint``).
"""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from metrosight.api.deps import password_version, services
from metrosight.api.i18n import N_, Text
from metrosight.api.oidc import OidcError, PendingLogin
from metrosight.api.routes.pages import render, safe_next
from metrosight.api.sessions import client_ip
from metrosight.api.sso import PENDING_MAX_AGE, SsoState, sso_of
from metrosight.policy.sso import person_of
from metrosight.store.identities import DISABLED, NO_ROLE, SignInOutcome

router = APIRouter(include_in_schema=False)

PENDING_COOKIE = "metrosight_oidc"
PENDING_PATH = "/auth/oidc"
ID_TOKEN_KEPT = 1800  # characters: a longer ID token is not kept in the session cookie (logout then goes without
# id_token_hint, and the provider asks the user to confirm)


def _serializer(request: Request, sso: SsoState) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(sso.cookie_secret, salt="metrosight-oidc-login")


def _page(request: Request, status: int, message: Text | str) -> HTMLResponse:
    return render(request, "sso.html", None, status=status, error=message, target=None)


def _no_sso(request: Request) -> HTMLResponse:
    return _page(
        request, 404, N_("single sign-on is not configured on this service (%(setting)s)", setting="auth.oidc")
    )


@router.get("/auth/oidc/login")
def oidc_login(request: Request, next: Annotated[str | None, Query(max_length=512)] = None) -> Response:
    """Send the browser to the provider, holding this attempt's state, nonce and verifier in a signed cookie."""
    sso = sso_of(services(request))
    if sso is None:
        return _no_sso(request)
    try:
        url, pending = sso.client.begin(safe_next(next))
    except OidcError as exc:
        return _page(request, exc.status, exc.text)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        PENDING_COOKIE,
        _serializer(request, sso).dumps(pending.to_json()),
        max_age=PENDING_MAX_AGE,
        path=PENDING_PATH,
        httponly=True,
        samesite="lax",
        secure=services(request).config.secure_cookies or request.url.scheme == "https",  # as the session's
    )
    return response


def _pending(request: Request, sso: SsoState, state: str | None) -> PendingLogin:
    """This browser's attempt, checked against the callback's ``state`` and spent (single use).

    Raises:
        OidcError: 400 for no or an expired cookie, a wrong state, or an attempt spent already.
    """
    raw = request.cookies.get(PENDING_COOKIE)
    if not raw:
        raise OidcError(N_("no sign-in was started in this browser (or it took over 10 minutes); start again"))
    try:
        data = _serializer(request, sso).loads(raw, max_age=PENDING_MAX_AGE)
    except BadSignature:
        raise OidcError(N_("the sign-in attempt expired or is not recognised; start again")) from None
    pending = PendingLogin.from_json(data)
    if not state or not hmac.compare_digest(state.encode(), pending.state.encode()):
        raise OidcError(N_("the sign-in answer does not belong to this browser's attempt (wrong state); start again"))
    if not sso.spend(pending.state):
        raise OidcError(N_("this sign-in was completed already; start again"))
    return pending


def _refusal(outcome: SignInOutcome) -> Text:
    """The page's line for a sign-in the store refused."""
    if outcome.code == NO_ROLE:
        return N_("signed in at the provider, but not here: no group or claim of yours is mapped to a role")
    if outcome.code == DISABLED:
        return N_("signed in at the provider, but not here: the account is disabled")
    return N_("signed in at the provider, but not here: the role mapping cannot apply (%(error)s)", error=outcome.error)


FAILED_AS = "(single sign-on)"  # the name failed callbacks are counted under by the sign-in limiter


def _audit_failure(request: Request, why: str) -> None:
    """Audit a failed callback (``auth.oidc_failed`` with the address and the reason). A client failing over and
    over (5 times in the limiter's window, or over the address's attempts) is counted in the burst rows of refused
    sign-ins instead, so it cannot flood the audit log."""
    svc, ip = services(request), client_ip(request)
    if svc.limiter.retry_after(FAILED_AS, ip) > 0:
        svc.signin_audit.refused(FAILED_AS, ip)
        return
    svc.limiter.failed(FAILED_AS, ip)
    svc.services.store.audit.record("anonymous", "auth.oidc_failed", None, {"ip": ip, "reason": why})


@router.get("/auth/oidc/callback")
def oidc_callback(
    request: Request,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
    iss: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """The provider's answer: check it, sign the person in, open the page they asked for."""
    svc = services(request)
    sso = sso_of(svc)
    if sso is None:
        return _no_sso(request)
    try:
        pending = _pending(request, sso, state)
        if iss is not None and iss != sso.client.cfg.issuer:  # RFC 9207: the answer of another provider (mix-up)
            raise OidcError(N_("the sign-in answer comes from another provider (iss); start again"))
        if error or not code:
            raise OidcError(
                N_("the sign-in provider did not sign you in (%(error)s)", error=(error or "no code")[:64]), 401
            )
        claims, id_token = sso.client.finish(pending, code)
    except OidcError as exc:
        _audit_failure(request, str(exc))
        response = _page(request, exc.status, exc.text)
        response.delete_cookie(PENDING_COOKIE, path=PENDING_PATH)
        return response
    outcome = svc.services.store.identities.sign_in(person_of(claims, sso.client.cfg), client_ip(request))
    if outcome.actor is None:
        response = _page(request, 403, _refusal(outcome))
        response.delete_cookie(PENDING_COOKIE, path=PENDING_PATH)
        return response
    _, pw_hash = svc.accounts.session_user(outcome.actor.name)
    request.session.clear()
    request.session.update(
        {
            "user": outcome.actor.name,
            "sid": secrets.token_urlsafe(16),
            "csrf": secrets.token_urlsafe(24),
            "pwv": password_version(pw_hash),
            "amr": "oidc",  # how the session signed in (the second factor of local accounts leaves it alone)
            "via": "oidc",
            "at": int(time.time()),
        }
    )
    if len(id_token) <= ID_TOKEN_KEPT:
        request.session["idt"] = id_token
    response = render(request, "sso.html", None, error=None, target=pending.next)
    response.delete_cookie(PENDING_COOKIE, path=PENDING_PATH)
    return response
