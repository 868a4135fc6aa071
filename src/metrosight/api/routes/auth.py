"""Sign-in and sign-out (session cookie for the UI), ``/api/me``, and API tokens for machines."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Request, Response

from metrosight.api.deps import (
    AccountsDep,
    AnyUser,
    Principal,
    RowId,
    SignedIn,
    current_principal,
    services,
)
from metrosight.api.routes import totp
from metrosight.api.schemas import LoginCreate, MePublic, TokenCreate, TokenCreated, TokenPublic
from metrosight.api.sessions import client_ip, limited, start_session
from metrosight.api.state import AppState
from metrosight.policy.rules import Actor

router = APIRouter(tags=["auth"])


class LocalAccountsOff(HTTPException):
    """403: password sign-in is disabled (``auth.local_accounts: false``) and the user is no break-glass user."""

    def __init__(self) -> None:
        super().__init__(403, "password sign-in is disabled here (auth.local_accounts: false); use single sign-on")


def local_sign_in(svc: AppState, name: str) -> bool:
    """Whether a password sign-in as ``name`` is a break-glass one (``auth.local_accounts`` is false and ``name`` is
    among ``auth.break_glass_users``); False for an ordinary one.

    Raises:
        LocalAccountsOff: 403 when local accounts are disabled and ``name`` is no break-glass user.
    """
    auth = svc.services.settings.auth
    if auth.local_accounts:
        return False
    if auth.break_glass(name):
        return True
    raise LocalAccountsOff()


def sign_in(request: Request, username: str, password: str, code: str | None = None) -> Actor:
    """Check a password sign-in under the rate limit; audit it (success at once, failures as bursts: one row with
    a count per user and address and window); start the session. An account with a second factor needs its code
    too (:mod:`metrosight.api.routes.totp`): with ``code`` it is checked here, without it the session waits for it.

    Raises:
        HTTPException: 429 (rate limited, with Retry-After) or 401 (wrong name or password, or a wrong or reused
            code); :class:`~metrosight.api.routes.totp.SecondFactorRequired` (401) when the code is still to come.
    """
    svc = services(request)
    ip = client_ip(request)
    name = username.strip()[:128]
    limited(svc, name, ip)
    break_glass = local_sign_in(svc, name)
    actor = svc.accounts.authenticate(name, password)
    if actor is None:
        svc.limiter.failed(name, ip)
        svc.signin_audit.failed(name, ip)
        raise HTTPException(401, "wrong user name or password")
    if totp.code_needed(svc, actor):  # the session starts once the code is right (a reused one is refused)
        return totp.second_step(request, actor, code, {"break_glass": True} if break_glass else None)
    svc.limiter.succeeded(name, ip)
    start_session(request, actor, "pwd", {"break_glass": True} if break_glass else None)
    return actor


SIGN_IN_MAX_WAIT = 30.0  # seconds a sign-in may wait for a free slot before it is told to come back (429)


async def sign_in_async(request: Request, username: str, password: str, code: str | None = None) -> Actor:
    """:func:`sign_in` for async routes: at most one Argon2id check per CPU core runs at a time, in threads of its
    own; the other sign-ins wait without holding a thread. (Run in the shared thread pool, 200 sign-ins at once took
    every one of its 40 threads for over a minute, and every other request and the live feeds waited behind them.)

    Raises:
        HTTPException: 429 with Retry-After when no slot came free within ``SIGN_IN_MAX_WAIT`` seconds (nothing was
            checked: the attempt does not count against the user), besides :func:`sign_in`'s own.
    """
    svc = services(request)
    if svc.sign_in_slots is None:  # made on first use: an anyio limiter belongs to the running event loop
        svc.sign_in_slots = anyio.CapacityLimiter(max(2, os.cpu_count() or 2))
    slots, got = svc.sign_in_slots, False
    with anyio.move_on_after(SIGN_IN_MAX_WAIT):  # the deadline covers the wait only, never a check under way
        await slots.acquire()
        got = True
    if not got:
        raise HTTPException(
            429, "the service is busy signing in other users; try again in a few seconds", headers={"Retry-After": "5"}
        )
    try:
        return await anyio.to_thread.run_sync(sign_in, request, username, password, code)
    finally:
        slots.release()


def sign_out(request: Request) -> None:
    svc = services(request)
    sid, name = request.session.get("sid"), request.session.get("user")
    if sid:
        svc.ended.end(sid)
    if name:
        svc.services.store.audit.record(name, "auth.logout", name, {"ip": client_ip(request)})
    request.session.clear()


@router.post("/api/login", response_model=MePublic, responses={401: {}, 429: {}})
async def login(body: LoginCreate, request: Request) -> MePublic:
    """Sign in with a password; sets the session cookie (HttpOnly, SameSite=Strict). Rate-limited and audited.
    An account with a second factor sends its code as ``code``, or answers the 401 that carries
    ``X-Metrosight-OTP: required`` with ``POST /api/login/totp``."""
    actor = await sign_in_async(request, body.username, body.password, body.code)
    return MePublic(
        name=actor.name,
        roles=sorted(actor.roles),
        via="session",
        csrf_token=request.session["csrf"],
        must_set_password=actor.must_set_password,
    )


@router.post("/api/logout", status_code=204, response_class=Response)
def logout(request: Request, _p: Annotated[Principal, Depends(current_principal)]) -> Response:
    """End the session (its cookie is refused from now on)."""
    sign_out(request)
    return Response(status_code=204)


@router.get("/api/me", response_model=MePublic)
def me(request: Request, principal: Annotated[Principal, Depends(current_principal)]) -> MePublic:
    """Who you are signed in as, your roles, and (for a session) the CSRF token to send with changes."""
    csrf = request.session.get("csrf") if principal.via == "session" else None
    return MePublic(
        name=principal.actor.name,
        roles=sorted(principal.actor.roles),
        via=principal.via,
        csrf_token=csrf,
        must_set_password=principal.actor.must_set_password,
        scopes={g.role: g.scope.items() for g in principal.actor.scoped},
    )


@router.get("/api/tokens", response_model=list[TokenPublic])
def list_tokens(actor: AnyUser, accounts: AccountsDep) -> list[TokenPublic]:
    """Your API tokens (an admin sees every token). Never the token text."""
    return [TokenPublic.model_validate(t) for t in accounts.tokens(actor)]


@router.post("/api/tokens", response_model=TokenCreated, status_code=201)
def create_token(body: TokenCreate, actor: SignedIn, accounts: AccountsDep) -> TokenCreated:
    """A new API token acting as you (nobody may create one for another user). Its lifetime is capped by your
    roles; only admins may create one that never expires. The token is shown once."""
    expires = datetime.now(UTC) + timedelta(days=body.expires_days) if body.expires_days else None
    info, token = accounts.create_token(
        body.user or actor.name, body.name, actor, expires, never_expires=body.never_expires
    )
    return TokenCreated(**TokenPublic.model_validate(info).model_dump(), token=token)


@router.delete("/api/tokens/{token_id}", response_model=TokenPublic)
def revoke_token(token_id: RowId, actor: AnyUser, accounts: AccountsDep) -> TokenPublic:
    """Revoke a token (yours, or any for an admin)."""
    return TokenPublic.model_validate(accounts.revoke_token(token_id, actor))
