"""The sign-in steps every way of signing in shares: the client's address, the rate limit, and starting the UI
session (password sign-in in :mod:`metrosight.api.routes.auth`, its second factor in
:mod:`metrosight.api.routes.totp`)."""

from __future__ import annotations

import secrets

from fastapi import HTTPException, Request

from metrosight.api.deps import password_version, services
from metrosight.api.state import AppState
from metrosight.policy.rules import Actor


def client_ip(request: Request) -> str:
    """The client's address: the peer, or the address a trusted proxy (``api.trusted_proxies``) forwarded in
    ``X-Forwarded-For`` (rewritten into the request by the app's proxy-headers middleware; nobody else's header is
    believed)."""
    return request.client.host if request.client else "unknown"


def limited(svc: AppState, name: str, ip: str) -> None:
    """Raises 429 (with Retry-After) when ``name`` from ``ip`` is over the sign-in rate limit; counts the refusal
    for the audit (one row per address and window, see :class:`~metrosight.api.security.SignInAudit`)."""
    wait = svc.limiter.retry_after(name, ip)
    if wait > 0:
        svc.signin_audit.refused(name, ip)
        raise HTTPException(
            429, f"too many sign-in attempts; try again in {wait:.0f} s", headers={"Retry-After": str(int(wait) + 1)}
        )


def code_limited(svc: AppState, name: str, ip: str) -> None:
    """Raises 429 (with Retry-After) when ``name`` typed too many wrong second-factor codes, from any address,
    within the limiter's window (:meth:`~metrosight.api.security.LoginLimiter.code_retry_after`); counted for the
    audit as a refused sign-in of ``ip``."""
    wait = svc.limiter.code_retry_after(name)
    if wait > 0:
        svc.signin_audit.refused(name, ip)
        raise HTTPException(
            429,
            f"too many wrong codes for this account; try again in {wait:.0f} s",
            headers={"Retry-After": str(int(wait) + 1)},
        )


def start_session(request: Request, actor: Actor, amr: str, extra: dict[str, object] | None = None) -> None:
    """Start ``actor``'s UI session (a fresh session id and CSRF token) and audit the sign-in. ``amr`` says how
    they signed in: ``pwd`` (password only: an account whose role needs a second factor may then only enrol one,
    see :func:`metrosight.policy.totp.enrol_restriction`), ``pwd+totp`` (password and code: the session ends if
    the factor is reset), or another method's own name (e.g. single sign-on), which the second factor leaves
    alone. ``extra``: more details for the audit entry (e.g. ``break_glass``)."""
    svc = services(request)
    ip = client_ip(request)
    _, pw_hash = svc.accounts.session_user(actor.name)
    request.session.clear()
    request.session.update(
        {
            "user": actor.name,
            "sid": secrets.token_urlsafe(16),
            "csrf": secrets.token_urlsafe(24),
            "pwv": password_version(pw_hash),
            "amr": amr,
        }
    )
    if amr == "pwd+totp":
        two_factors(request, actor.name)
    details: dict[str, object] = {"ip": ip, "via": "password" if amr == "pwd" else amr, **(extra or {})}
    if actor.password_set_by:
        details["must_set_password"] = True
    svc.services.store.audit.record(actor.name, "auth.login", actor.name, details)


def two_factors(request: Request, name: str) -> None:
    """Mark the session of ``name`` as signed in with the password and their current second factor: it ends once
    that factor is reset, even when a new one is enrolled later (:func:`metrosight.api.deps.principal_of`)."""
    request.session["amr"] = "pwd+totp"
    request.session["tfa"] = services(request).services.store.second_factor.mark(name)
