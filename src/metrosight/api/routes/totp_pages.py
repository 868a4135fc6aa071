"""The second factor in the operator UI: the code page of a password sign-in, and enrolment (QR code, secret,
confirmation, recovery codes), status and reset of your own factor on *Account → Two-factor sign-in*. The checks
are those of the API (:mod:`metrosight.api.routes.totp`). Not in the OpenAPI spec."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from metrosight.api.deps import NotSignedIn, Principal, principal_of, services
from metrosight.api.i18n import N_, Text
from metrosight.api.routes.pages import PageAuth, render, safe_next, signin_error
from metrosight.api.routes.totp import complete_sign_in
from metrosight.api.sessions import client_ip, code_limited, limited, two_factors
from metrosight.policy.rules import PolicyError
from metrosight.policy.totp import requiring_role
from metrosight.store.db import StoreError
from metrosight.store.second_factor import Check, Enrolment

router = APIRouter(include_in_schema=False)


@router.get("/login/totp", response_class=HTMLResponse)
def code_page(request: Request, next: str | None = None) -> Response:
    """The code step of a password sign-in (after ``POST /login`` found the account has a factor)."""
    if not request.session.get("pending"):
        return RedirectResponse(f"/login?next={quote(safe_next(next))}", status_code=303)
    return render(request, "totp_login.html", None, next=safe_next(next), error=None)


@router.post("/login/totp", response_class=HTMLResponse)
def code_form(
    request: Request,
    code: Annotated[str, Form(max_length=32)],
    next: Annotated[str, Form(max_length=512)] = "/",
) -> Response:
    try:
        actor = complete_sign_in(request, code)
    except HTTPException as exc:
        if not request.session.get("pending"):  # expired or the account changed: start again
            return RedirectResponse(f"/login?next={quote(safe_next(next))}", status_code=303)
        error = signin_error(exc, password_step=False)
        return render(request, "totp_login.html", None, status=exc.status_code, next=safe_next(next), error=error)
    return RedirectResponse("/account" if actor.must_set_password else safe_next(next), status_code=303)


def _principal(request: Request) -> Principal:
    """The signed-in caller of these pages; their forms check their own ``csrf`` field (:func:`_form_ok`), so the
    X-CSRF-Token header of the JSON API is not asked for."""
    try:
        return principal_of(request, None, str(request.session.get("csrf", "")))
    except NotSignedIn:
        raise PageAuth(request.url.path) from None


def _page(
    request: Request,
    principal: Principal,
    status: int = 200,
    *,
    enrolment: Enrolment | None = None,
    codes: list[str] | None = None,
    error: Text | str | None = None,
) -> HTMLResponse:
    svc = services(request).services
    actor = principal.actor
    qr = None
    if enrolment is not None:
        import segno  # the QR code, only on the enrolment page

        qr = segno.make(enrolment.uri, error="m").svg_data_uri(scale=5)
    return render(
        request,
        "totp_account.html",
        actor,
        status,
        st=svc.store.second_factor.status(actor.name),
        required=requiring_role(actor.roles, svc.settings.totp.required_roles),
        restricted=principal.restricted,
        enrolment=enrolment,
        qr=qr,
        codes=codes,
        error=error,
    )


def _form_ok(request: Request, csrf: str) -> bool:
    return bool(csrf) and csrf == request.session.get("csrf")


@router.get("/account/totp", response_class=HTMLResponse)
def totp_page(request: Request) -> Response:
    """Your second factor: its state; enrol, finish an enrolment, or reset it."""
    principal = _principal(request)
    issuer = services(request).services.settings.totp.issuer
    pending = services(request).services.store.second_factor.pending(principal.actor, issuer)
    return _page(request, principal, enrolment=pending)


@router.post("/account/totp/begin", response_class=HTMLResponse)
def totp_begin(request: Request, csrf: Annotated[str, Form(max_length=128)] = "") -> Response:
    principal = _principal(request)
    if not _form_ok(request, csrf):
        return _page(request, principal, 403, error=N_("the form expired; reload the page"))
    svc = services(request).services
    try:
        e = svc.store.second_factor.begin(principal.actor, svc.settings.totp.issuer)
    except (PolicyError, StoreError) as exc:
        return _page(request, principal, 409, error=str(exc))
    return _page(request, principal, enrolment=e)


@router.post("/account/totp/confirm", response_class=HTMLResponse)
def totp_confirm(
    request: Request, code: Annotated[str, Form(max_length=32)], csrf: Annotated[str, Form(max_length=128)] = ""
) -> Response:
    principal = _principal(request)
    if not _form_ok(request, csrf):
        return _page(request, principal, 403, error=N_("the form expired; reload the page"))
    app, actor, ip = services(request), principal.actor, client_ip(request)
    svc = app.services
    try:
        limited(app, actor.name, ip)
        codes = svc.store.second_factor.confirm(actor, code, svc.settings.totp.recovery_codes)
    except HTTPException as exc:
        return _page(request, principal, exc.status_code, error=signin_error(exc, password_step=False))
    except (PolicyError, StoreError) as exc:
        if isinstance(exc, PolicyError):
            app.limiter.failed(actor.name, ip)
        pending = svc.store.second_factor.pending(actor, svc.settings.totp.issuer)
        return _page(request, principal, 409, enrolment=pending, error=str(exc))
    two_factors(request, actor.name)  # a valid code from the new device: this session has both factors
    return _page(request, Principal(actor, "session"), codes=codes)


@router.post("/account/totp/reset", response_class=HTMLResponse)
def totp_reset(
    request: Request, code: Annotated[str, Form(max_length=32)], csrf: Annotated[str, Form(max_length=128)] = ""
) -> Response:
    principal = _principal(request)
    if not _form_ok(request, csrf):
        return _page(request, principal, 403, error=N_("the form expired; reload the page"))
    app, actor, ip = services(request), principal.actor, client_ip(request)
    store = app.services.store
    try:
        limited(app, actor.name, ip)
        code_limited(app, actor.name, ip)
    except HTTPException as exc:
        return _page(request, principal, exc.status_code, error=signin_error(exc, password_step=False))
    result = store.second_factor.verify(actor.name, code)
    if result not in (Check.TOTP, Check.RECOVERY, Check.NONE):
        app.limiter.failed(actor.name, ip)
        app.limiter.code_failed(actor.name)
        store.audit.record(actor.name, "auth.totp_failed", actor.name, {"ip": ip, "reason": result.value})
        return _page(request, principal, 401, error=N_("wrong or already used code; a reset needs a current code"))
    store.second_factor.reset(actor.name, actor)
    request.session["amr"] = "pwd"
    return RedirectResponse("/account/totp", status_code=303)
