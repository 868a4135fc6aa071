"""The operator UI: server-rendered pages (Jinja2 templates in :mod:`metrosight.web`).

Pages read through the same store methods as the API (the same role checks and audit entries); their buttons
call the JSON API with the session's CSRF token. Not in the OpenAPI spec.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from metrosight.api.deps import ALERT_READERS, ANY_ROLE, WATCHLIST_READERS, NotSignedIn, principal_of, services
from metrosight.api.routes.alerts import alerts_public
from metrosight.api.routes.auth import client_ip, limited, sign_in_async, sign_out
from metrosight.api.routes.totp import SecondFactorRequired
from metrosight.api.sso import logout_target, sso_of
from metrosight.policy.alarms import ESCALATION_ROLES
from metrosight.policy.rules import Actor, Forbidden, PolicyError
from metrosight.store.scoping import CAMERA_READERS

router = APIRouter(include_in_schema=False)


def _when(dt: datetime | None) -> str:
    if dt is None:
        return "—"
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


#: the operator UI's templates and static assets
WEB = Path(__file__).resolve().parent.parent.parent / "web"


def _templates() -> Jinja2Templates:
    t = Jinja2Templates(directory=str(WEB / "templates"))
    t.env.filters["when"] = _when
    t.env.filters["unix"] = lambda v: _when(datetime.fromtimestamp(v, UTC)) if v else "—"
    t.env.filters["tojson_compact"] = lambda v: json.dumps(v, sort_keys=True, default=str)
    return t


templates = _templates()


class PageAuth(Exception):
    """Not signed in (redirect to the sign-in page) or lacking the role (403 page)."""

    def __init__(
        self, path: str, actor: Actor | None = None, roles: tuple[str, ...] = (), restricted: str | None = None
    ) -> None:
        self.path, self.actor, self.roles, self.restricted = path, actor, roles, restricted


def page_user(request: Request, roles: tuple[str, ...]) -> Actor:
    try:
        principal = principal_of(request, None)
    except NotSignedIn:
        raise PageAuth(request.url.path) from None
    actor = principal.actor
    if principal.restricted or actor.must_set_password or not actor.has(*roles):
        raise PageAuth(request.url.path, actor, roles, principal.restricted)
    return actor


def render(request: Request, name: str, actor: Actor | None, status: int = 200, **ctx: Any) -> HTMLResponse:
    nav = []
    if actor is not None:
        if actor.has(*ALERT_READERS):
            nav.append(("/", "Live alerts"))
        nav.append(("/cameras", "Cameras"))
        if actor.has(*WATCHLIST_READERS):
            nav.append(("/watchlists", "Watchlists"))
        nav.append(("/events", "Events"))
        if actor.has("auditor", "admin"):
            nav.append(("/audit", "Audit log"))
        if actor.has("admin"):
            nav.append(("/users", "Users"))
        nav.append(("/account", "Account"))
    return templates.TemplateResponse(
        request,
        name,
        {"user": actor, "nav": nav, "path": request.url.path, "csrf": request.session.get("csrf", ""), **ctx},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def page_auth_handler(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, PageAuth):  # registered for PageAuth only (create_app)
        raise TypeError(f"page_auth_handler handles PageAuth, not {type(exc).__name__}")
    if exc.actor is None:
        return RedirectResponse(f"/login?next={quote(exc.path)}", status_code=303)
    if exc.actor.must_set_password:  # an admin reset the password: the user sets their own before anything else
        return RedirectResponse("/account", status_code=303)
    if exc.restricted:  # a role that needs a second factor, signed in with a password alone: enrol first
        return RedirectResponse("/account/totp", status_code=303)
    return render(request, "forbidden.html", exc.actor, status=403, roles=exc.roles)


def safe_next(target: str | None) -> str:
    """``target`` when it is a path of this service, else ``/`` (``//host`` and ``/\\host`` lead elsewhere)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return "/" if any(c == "\\" or ord(c) < 0x20 or c == "\x7f" for c in target) else target


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None, changed: str | None = None) -> HTMLResponse:
    notice = "Your password was changed; sign in with the new one." if changed else None
    return render_login(request, next=safe_next(next), error=None, notice=notice)


def render_login(request: Request, status: int = 200, **ctx: Any) -> HTMLResponse:
    """The sign-in page: the password form (folded away as break-glass when ``auth.local_accounts`` is false) and
    the single sign-on button when ``auth.oidc`` is configured."""
    auth = services(request).services.settings.auth
    sso = sso_of(services(request))
    label = sso.client.cfg.display_name if sso is not None else None
    return render(request, "login.html", None, status=status, sso=label, local=auth.local_accounts, **ctx)


@router.post("/login", response_class=HTMLResponse)
async def login_form(
    request: Request,
    username: Annotated[str, Form(max_length=128)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=512)] = "/",
) -> Response:
    try:
        actor = await sign_in_async(request, username, password)
    except SecondFactorRequired:  # the password was right: the code is asked on a page of its own
        return RedirectResponse(f"/login/totp?next={quote(safe_next(next))}", status_code=303)
    except HTTPException as exc:
        return render_login(request, exc.status_code, next=safe_next(next), error=exc.detail)
    return RedirectResponse("/account" if actor.must_set_password else safe_next(next), status_code=303)


def _account_user(request: Request) -> Actor:
    try:
        return principal_of(request, None).actor
    except NotSignedIn:
        raise PageAuth(request.url.path) from None


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request) -> Response:
    """Set your own password (any signed-in user, and the only page of an account whose password an admin reset)."""
    return render(request, "account.html", _account_user(request), error=None)


@router.post("/account", response_class=HTMLResponse)
def account_form(
    request: Request,
    current: Annotated[str, Form(max_length=1024)],
    password: Annotated[str, Form(max_length=1024)],
    again: Annotated[str, Form(max_length=1024)],
    csrf: Annotated[str, Form(max_length=128)] = "",
) -> Response:

    actor = _account_user(request)
    if not csrf or csrf != request.session.get("csrf"):
        return render(request, "account.html", actor, status=403, error="the form expired; reload the page")
    if password != again:
        return render(request, "account.html", actor, status=422, error="the two new passwords differ")
    svc, ip = services(request), client_ip(request)
    try:
        limited(svc, actor.name, ip)
        svc.accounts.set_password(actor.name, password, actor, current)
    except HTTPException as exc:
        return render(request, "account.html", actor, status=exc.status_code, error=exc.detail)
    except Forbidden as exc:
        svc.limiter.failed(actor.name, ip)
        svc.signin_audit.failed(actor.name, ip)
        return render(request, "account.html", actor, status=403, error=str(exc))
    except PolicyError as exc:
        return render(request, "account.html", actor, status=409, error=str(exc))
    svc.limiter.succeeded(actor.name, ip)
    request.session.clear()  # the password changed: every session ends, this one too
    return RedirectResponse("/login?changed=1", status_code=303)


@router.post("/logout")
def logout_form(request: Request, csrf: Annotated[str, Form(max_length=128)] = "") -> Response:
    if csrf and csrf == request.session.get("csrf"):
        provider = logout_target(services(request), request.session)
        sign_out(request)
        if provider is not None:  # a page that opens the provider's sign-out (CSP form-action forbids a redirect)
            return render(request, "sso.html", None, error=None, target=provider, leaving=True)
    return RedirectResponse("/login", status_code=303)


@router.get("/", response_class=HTMLResponse)
def alerts_page(request: Request) -> Response:
    try:
        actor = page_user(request, ALERT_READERS)
    except PageAuth as exc:
        if exc.actor is not None and not exc.actor.must_set_password and not exc.restricted:  # a viewer: the cameras
            return RedirectResponse("/cameras", status_code=303)
        raise
    store = services(request).services.store
    rows = alerts_public(store, store.reviews.all(actor, None, 50), store.scoping.view(actor, ALERT_READERS))
    after = max((a.id for a in rows), default=0)
    return render(
        request,
        "alerts.html",
        actor,
        alerts=rows,
        after=after,
        can_review=actor.has("operator"),
        can_see_crops=actor.has("operator", "admin"),
        can_handle=actor.has("operator", *ESCALATION_ROLES),
        now=round(time.time(), 3),
    )


@router.get("/cameras", response_class=HTMLResponse)
def cameras_page(request: Request) -> Response:
    actor = page_user(request, ANY_ROLE)
    svc = services(request)
    view = svc.services.store.scoping.view(actor, CAMERA_READERS)
    return render(request, "cameras.html", actor, cameras=svc.cameras.rows(view.camera))


@router.get("/watchlists", response_class=HTMLResponse)
def watchlists_page(request: Request) -> Response:
    actor = page_user(request, WATCHLIST_READERS)
    store = services(request).services.store
    now = datetime.now(UTC)
    view = store.scoping.view(actor, WATCHLIST_READERS)
    entries = store.entries.all(view=view)
    cams = store.scoping.view(actor, CAMERA_READERS)
    return render(
        request,
        "watchlists.html",
        actor,
        watchlists=store.watchlists.all(view=view),
        entries=entries,
        now=now,
        can_create=actor.has("admin"),
        can_record=actor.has("approver", "admin"),
        can_approve=actor.has("approver"),
        cameras=[c.id for c in services(request).services.settings.cameras if cams.camera(c.id)],
        policies=store.alarms.policies(view),
    )


@router.get("/events", response_class=HTMLResponse)
def events_page(request: Request, camera: str | None = None, kind: str | None = None) -> Response:
    actor = page_user(request, ANY_ROLE)
    store = services(request).services.store
    view = store.scoping.view(actor, CAMERA_READERS)
    events = store.feed.recent_events(camera or None, kind or None, 200, view=view)
    return render(request, "events.html", actor, events=events, camera=camera or "", kind=kind or "")


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request) -> Response:
    actor = page_user(request, ("auditor", "admin"))
    store = services(request).services.store
    rows = store.audit.entries(actor, 200)
    store.audit.record(actor.name, "audit.read", None, {"entries": len(rows), "via": "ui"})
    return render(request, "audit.html", actor, entries=list(reversed(rows)))


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request) -> Response:
    actor = page_user(request, ("admin",))
    svc = services(request)
    return render(request, "users.html", actor, users=svc.accounts.users(actor), tokens=svc.accounts.tokens(actor))
