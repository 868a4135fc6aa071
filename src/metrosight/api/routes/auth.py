"""Sign-in and sign-out (session cookie for the UI), ``/api/me``, and API tokens for machines."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from metrosight.api.deps import (
    AccountsDep,
    AnyUser,
    Principal,
    RowId,
    current_principal,
    password_version,
    services,
)
from metrosight.api.schemas import LoginCreate, MePublic, TokenCreate, TokenCreated, TokenPublic
from metrosight.policy.rules import Actor

router = APIRouter(tags=["auth"])


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def sign_in(request: Request, username: str, password: str) -> Actor:
    """Check a password sign-in under the rate limit; audit it (success and failure); start the session.

    Raises:
        HTTPException: 429 (rate limited, with Retry-After) or 401 (wrong name or password).
    """
    svc = services(request)
    store, ip = svc.runtime.store, client_ip(request)
    name = username.strip()[:128]
    wait = svc.limiter.retry_after(name, ip)
    if wait > 0:
        store.record("anonymous", "auth.login_refused", name, {"ip": ip, "reason": "rate limited"})
        raise HTTPException(
            429, f"too many sign-in attempts; try again in {wait:.0f} s", headers={"Retry-After": str(int(wait) + 1)}
        )
    actor = svc.accounts.authenticate(name, password)
    if actor is None:
        svc.limiter.failed(name, ip)
        store.record("anonymous", "auth.login_failed", name, {"ip": ip, "reason": "wrong user name or password"})
        raise HTTPException(401, "wrong user name or password")
    svc.limiter.succeeded(name, ip)
    _, pw_hash = svc.accounts.session_user(actor.name)
    request.session.clear()
    request.session.update(
        {"user": actor.name, "sid": secrets.token_urlsafe(16), "csrf": secrets.token_urlsafe(24),
         "pwv": password_version(pw_hash)}
    )
    store.record(actor.name, "auth.login", actor.name, {"ip": ip, "via": "password"})
    return actor


def sign_out(request: Request) -> None:
    svc = services(request)
    sid, name = request.session.get("sid"), request.session.get("user")
    if sid:
        svc.ended.end(sid)
    if name:
        svc.runtime.store.record(name, "auth.logout", name, {"ip": client_ip(request)})
    request.session.clear()


@router.post("/api/login", response_model=MePublic, responses={401: {}, 429: {}})
def login(body: LoginCreate, request: Request) -> MePublic:
    """Sign in with a password; sets the session cookie (HttpOnly, SameSite=Strict). Rate-limited and audited."""
    actor = sign_in(request, body.username, body.password)
    return MePublic(name=actor.name, roles=sorted(actor.roles), via="session", csrf_token=request.session["csrf"])


@router.post("/api/logout", status_code=204, response_class=Response)
def logout(request: Request, _p: Annotated[Principal, Depends(current_principal)]) -> Response:
    """End the session (its cookie is refused from now on)."""
    sign_out(request)
    return Response(status_code=204)


@router.get("/api/me", response_model=MePublic)
def me(request: Request, principal: Annotated[Principal, Depends(current_principal)]) -> MePublic:
    """Who you are signed in as, your roles, and (for a session) the CSRF token to send with changes."""
    csrf = request.session.get("csrf") if principal.via == "session" else None
    return MePublic(name=principal.actor.name, roles=sorted(principal.actor.roles), via=principal.via, csrf_token=csrf)  # type: ignore[arg-type]


@router.get("/api/tokens", response_model=list[TokenPublic])
def list_tokens(actor: AnyUser, accounts: AccountsDep) -> list[TokenPublic]:
    """Your API tokens (an admin sees every token). Never the token text."""
    return [TokenPublic.model_validate(t) for t in accounts.tokens(actor)]


@router.post("/api/tokens", response_model=TokenCreated, status_code=201)
def create_token(body: TokenCreate, actor: AnyUser, accounts: AccountsDep) -> TokenCreated:
    """A new API token acting as you (or, for an admin, as another user). The token is shown once."""
    expires = datetime.now(UTC) + timedelta(days=body.expires_days) if body.expires_days else None
    info, token = accounts.create_token(body.user or actor.name, body.name, actor, expires)
    return TokenCreated(**TokenPublic.model_validate(info).model_dump(), token=token)


@router.delete("/api/tokens/{token_id}", response_model=TokenPublic)
def revoke_token(token_id: RowId, actor: AnyUser, accounts: AccountsDep) -> TokenPublic:
    """Revoke a token (yours, or any for an admin)."""
    return TokenPublic.model_validate(accounts.revoke_token(token_id, actor))
