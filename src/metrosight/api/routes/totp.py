"""The second factor of local accounts in the operator service: the code step of a password sign-in, enrolment,
and resets (the rules: :mod:`metrosight.policy.totp`; the store: :mod:`metrosight.store.second_factor`).

Sign-in: a password sign-in of an account with a confirmed factor does not start the session; it answers 401 with
``X-Metrosight-OTP: required`` and keeps the user name in the (signed) cookie for :data:`PENDING_SECONDS`, and
``POST /api/login/totp`` with the code (or a recovery code) completes it. A wrong or reused code counts towards
the sign-in limit of the user and address like a wrong password, and is audited (``auth.totp_failed``).
"""

from __future__ import annotations

import hmac
import time
from typing import Annotated, Final

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import Field

from metrosight.api.deps import (
    Admin,
    Principal,
    current_principal,
    password_version,
    services,
)
from metrosight.api.schemas import MePublic, _In, _Out
from metrosight.api.sessions import client_ip, code_limited, limited, start_session, two_factors
from metrosight.api.state import AppState
from metrosight.core.names import same_name
from metrosight.policy.rules import Actor, Forbidden, PolicyError
from metrosight.policy.totp import requiring_role
from metrosight.store.second_factor import Check

router = APIRouter(tags=["auth"])

PENDING_SECONDS: Final = 300  # a password sign-in waits this long for its code
OTP_HEADER: Final = "X-Metrosight-OTP"


class SecondFactorRequired(HTTPException):
    """The password was right; the account's TOTP code is still to come (401 with ``X-Metrosight-OTP``)."""

    def __init__(self) -> None:
        super().__init__(
            401,
            "enter the 6-digit code from your authenticator app (or a recovery code)",
            headers={OTP_HEADER: "required"},
        )


class CodeIn(_In):
    code: str = Field(..., min_length=1, max_length=32, description="a TOTP code (6 digits) or a recovery code")


class TotpStatusPublic(_Out):
    enrolled: bool = Field(..., description="a confirmed factor: sign-in asks for its code")
    pending: bool = Field(..., description="an enrolment was begun and awaits a code to confirm it")
    recovery_left: int = Field(..., description="unused recovery codes")
    required: bool = Field(..., description="one of your roles needs a second factor (`totp.required_roles`)")


class TotpEnrolment(_Out):
    secret: str = Field(..., description="the base32 secret, shown once (type it into the app, or scan `uri`)")
    uri: str = Field(..., description="the otpauth:// URI (what the QR code holds)")


class RecoveryCodes(_Out):
    recovery_codes: list[str] = Field(..., description="one-time recovery codes, shown once: keep them offline")


def code_needed(svc: AppState, actor: Actor) -> bool:
    """Whether ``actor`` signs in with a code after the password (they have a confirmed factor)."""
    return svc.services.store.second_factor.enrolled(actor.name)


def second_step(request: Request, actor: Actor, code: str | None, extra: dict[str, object] | None = None) -> Actor:
    """After a right password of an account with a factor: check ``code`` now when given, else remember the
    sign-in in the session and ask for it (:class:`SecondFactorRequired`). ``extra``: details for the audit entry
    of the sign-in (e.g. ``break_glass``)."""
    svc = services(request)
    _, pw_hash = svc.accounts.session_user(actor.name)
    request.session.clear()
    if code is None:
        request.session.update(
            {"pending": actor.name, "pending_at": time.time(), "pwv": password_version(pw_hash), "extra": extra}
        )
        raise SecondFactorRequired()
    return _check_code(request, svc, actor, code, extra)


def _check_code(
    request: Request, svc: AppState, actor: Actor, code: str, extra: dict[str, object] | None = None
) -> Actor:
    ip = client_ip(request)
    code_limited(svc, actor.name, ip)
    result = svc.services.store.second_factor.verify(actor.name, code)
    if result not in (Check.TOTP, Check.RECOVERY):
        svc.limiter.failed(actor.name, ip)
        svc.limiter.code_failed(actor.name)
        reason = "code already used" if result is Check.REPLAYED else "wrong code"
        svc.services.store.audit.record(actor.name, "auth.totp_failed", actor.name, {"ip": ip, "reason": reason})
        raise HTTPException(
            401,
            "that code was already used; wait for the next one"
            if result is Check.REPLAYED
            else "wrong code: type the 6-digit code your authenticator app shows now, or a recovery code",
        )
    svc.limiter.succeeded(actor.name, ip)
    start_session(request, actor, "pwd+totp", extra)
    return actor


def complete_sign_in(request: Request, code: str) -> Actor:
    """The code step of a pending password sign-in (under the sign-in limit of its user and address).

    Raises:
        HTTPException: 401 (no sign-in waits, it expired or the password changed since, or a wrong or reused
            code) or 429 (over the limit).
    """
    svc = services(request)
    sess = request.session
    name, at = sess.get("pending"), float(sess.get("pending_at") or 0)
    if not name or time.time() - at > PENDING_SECONDS:
        request.session.clear()
        raise HTTPException(401, "sign in with your password first (a sign-in waits 5 minutes for its code)")
    limited(svc, str(name), client_ip(request))
    actor, pw_hash = svc.accounts.session_user(str(name))
    if actor is None or not hmac.compare_digest(password_version(pw_hash), str(sess.get("pwv", ""))):
        request.session.clear()
        raise HTTPException(401, "the account changed since the password was typed; sign in again")
    return _check_code(request, svc, actor, code, sess.get("extra"))


def _me(request: Request, actor: Actor) -> MePublic:
    return MePublic(
        name=actor.name,
        roles=sorted(actor.roles),
        via="session",
        csrf_token=request.session.get("csrf"),
        must_set_password=actor.must_set_password,
    )


Session = Annotated[Principal, Depends(current_principal)]


def _own_session(principal: Principal) -> Actor:
    """Enrolment is a person's own act in their own session: not with an API token (whoever holds it did not
    type the password)."""
    if principal.via != "session":
        raise Forbidden("enrol a second factor in your own signed-in session (the UI or the CLI), not with a token")
    return principal.actor


@router.post("/api/login/totp", response_model=MePublic, responses={401: {}, 429: {}})
def login_totp(body: CodeIn, request: Request) -> MePublic:
    """Complete a password sign-in with the TOTP code (or a recovery code). Rate-limited with the password and
    audited; a code is accepted once."""
    return _me(request, complete_sign_in(request, body.code))


@router.get("/api/me/totp", response_model=TotpStatusPublic)
def my_totp(request: Request, principal: Session) -> TotpStatusPublic:
    """Your second factor: enrolled, pending, recovery codes left, and whether your roles need one."""
    st = services(request).services.store.second_factor.status(principal.actor.name)
    required = services(request).services.settings.totp.required_roles
    return TotpStatusPublic(
        enrolled=st.enrolled,
        pending=st.pending,
        recovery_left=st.recovery_left,
        required=requiring_role(principal.actor.roles, required) is not None,
    )


@router.post("/api/me/totp", response_model=TotpEnrolment, responses={403: {}, 409: {}})
def begin_totp(request: Request, principal: Session) -> TotpEnrolment:
    """Begin enrolling an authenticator app: a new secret, shown once. It is used at sign-in only once
    confirmed with a code (``POST /api/me/totp/confirm``). 409 when a confirmed factor exists (reset it first)."""
    svc = services(request)
    e = svc.services.store.second_factor.begin(_own_session(principal), svc.services.settings.totp.issuer)
    return TotpEnrolment(secret=e.secret, uri=e.uri)


@router.post("/api/me/totp/confirm", response_model=RecoveryCodes, responses={403: {}, 404: {}, 409: {}})
def confirm_totp(body: CodeIn, request: Request, principal: Session) -> RecoveryCodes:
    """Confirm the enrolment with a code from the app; answers the recovery codes (shown once). The session
    counts as signed in with the second factor from now on. A wrong code counts towards the sign-in limit."""
    svc = services(request)
    actor, ip = _own_session(principal), client_ip(request)
    limited(svc, actor.name, ip)
    try:
        codes = svc.services.store.second_factor.confirm(actor, body.code, svc.services.settings.totp.recovery_codes)
    except PolicyError:
        svc.limiter.failed(actor.name, ip)
        raise
    two_factors(request, actor.name)
    return RecoveryCodes(recovery_codes=codes)


@router.post("/api/me/totp/reset", status_code=204, responses={401: {}, 403: {}})
def reset_my_totp(body: CodeIn, request: Request, principal: Session) -> None:
    """Remove your own factor (to enrol a new device), with a current code or a recovery code from it."""
    svc = services(request)
    actor, ip = _own_session(principal), client_ip(request)
    limited(svc, actor.name, ip)
    code_limited(svc, actor.name, ip)
    store = svc.services.store
    if store.second_factor.enrolled(actor.name):
        result = store.second_factor.verify(actor.name, body.code)
        if result not in (Check.TOTP, Check.RECOVERY):
            svc.limiter.failed(actor.name, ip)
            svc.limiter.code_failed(actor.name)
            store.audit.record(actor.name, "auth.totp_failed", actor.name, {"ip": ip, "reason": str(result.value)})
            raise HTTPException(401, "wrong or already used code; resetting your second factor needs a current code")
    store.second_factor.reset(actor.name, actor)
    request.session["amr"] = "pwd"


@router.delete("/api/users/{name}/totp", status_code=204, responses={403: {}, 404: {}})
def reset_user_totp(name: str, request: Request, actor: Admin) -> None:
    """Reset another user's second factor (admins; audited): they enrol again at their next sign-in, and their
    sessions signed in with the old factor end. Your own is reset with a code (``POST /api/me/totp/reset``)."""
    if same_name(name, actor.name):  # as the store finds the user: ``ada `` is ada
        raise Forbidden("reset your own second factor with a current code (POST /api/me/totp/reset)")
    services(request).services.store.second_factor.reset(name, actor)
