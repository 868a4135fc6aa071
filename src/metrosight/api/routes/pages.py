"""The operator UI: server-rendered pages (Jinja2 templates in :mod:`metrosight.web`).

Pages read through the same store methods as the API (the same role checks and audit entries); their buttons
call the JSON API with the session's CSRF token. Not in the OpenAPI spec.
"""

from __future__ import annotations

import hmac
import json
import time
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final
from urllib.parse import quote
from zoneinfo import available_timezones

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, pass_context
from jinja2.runtime import Context

from metrosight.api.deps import ALERT_READERS, ANY_ROLE, WATCHLIST_READERS, NotSignedIn, principal_of, services
from metrosight.api.i18n import N_, NATIVE_NAMES, Language, Languages, Text, format_number, format_when, translate
from metrosight.api.routes.alerts import alerts_public
from metrosight.api.routes.auth import LocalAccountsOff, client_ip, limited, sign_in_async, sign_out
from metrosight.api.routes.totp import SecondFactorRequired
from metrosight.api.sso import logout_target, sso_of
from metrosight.core.when import zone, zone_name
from metrosight.policy.alarms import ESCALATION_ROLES
from metrosight.policy.rules import Actor, Forbidden, PolicyError
from metrosight.store.scoping import CAMERA_READERS

router = APIRouter(include_in_schema=False)


#: the operator UI's templates, static assets and catalogues
WEB = Path(__file__).resolve().parent.parent.parent / "web"
#: the UI's languages (English and one per catalogue under web/locale), read once
LANGUAGES = Languages.load(WEB)


def _templates(language: Language) -> Jinja2Templates:
    """The templates of one language: gettext through Jinja2's i18n extension; ``when`` shows a datetime (or Unix
    seconds) in the page's zone (``tz`` of the context) and the language's format."""
    env = Environment(loader=FileSystemLoader(str(WEB / "templates")), autoescape=True, extensions=["jinja2.ext.i18n"])
    env.install_gettext_translations(language.translations, newstyle=True)  # type: ignore[attr-defined]

    @pass_context
    def when(ctx: Context, value: datetime | float | str | None) -> str:
        return format_when(value, language, ctx.get("tz") or UTC)

    env.filters["when"] = when
    env.filters["unix"] = when
    env.filters["tr"] = lambda text: translate(language, text)
    env.filters["num"] = lambda value, digits=0: format_number(value, digits, language)
    env.filters["tojson_compact"] = lambda v: json.dumps(v, sort_keys=True, default=str)
    env.globals["lang"] = language.code
    env.globals["languages"] = {c: NATIVE_NAMES.get(c, c) for c in LANGUAGES.codes}
    return Jinja2Templates(env=env)


#: the IANA zones offered on the account page (any other zone name is accepted too)
ZONES: Final = tuple(sorted(available_timezones()))
#: language code -> its templates
TEMPLATES: Final = MappingProxyType({code: _templates(lang) for code, lang in LANGUAGES.by_code.items()})


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


def page_language(request: Request, actor: Actor | None) -> tuple[Language, tzinfo]:
    """The page's language and time zone: the user's settings, else the browser's language (English) and the
    installation's zone (UTC)."""
    svc = services(request).services
    prefs = svc.store.preferences.get(actor.name) if actor is not None else None
    language = LANGUAGES.negotiate(prefs.language if prefs else None, request.headers.get("accept-language"))
    if prefs is not None and prefs.timezone:
        return language, zone(prefs.timezone)
    configured = svc.settings.deployment.timezone
    return language, zone(configured) if configured else UTC


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
    language, tz = page_language(request, actor)
    return TEMPLATES[language.code].TemplateResponse(
        request,
        name,
        {
            "user": actor,
            "nav": nav,
            "path": request.url.path,
            "csrf": request.session.get("csrf", ""),
            "tz": tz,
            "tz_name": zone_name(tz),
            **ctx,
        },
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


@router.get("/i18n/{code}.js")
def catalogue_script(code: str) -> Response:
    """The catalogue of one language for the page scripts (``t``/``tn`` of ``/static/app.js``); 404 for a language
    the UI does not have."""
    language = LANGUAGES.get(code)
    if language is None:
        raise HTTPException(404, f"no catalogue for language {code!r}")
    return Response(
        language.script(),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "no-cache"},
    )


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None, changed: str | None = None) -> HTMLResponse:
    notice = N_("Your password was changed; sign in with the new one.") if changed else None
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
        return render_login(request, exc.status_code, next=safe_next(next), error=signin_error(exc))
    return RedirectResponse("/account" if actor.must_set_password else safe_next(next), status_code=303)


def signin_error(exc: HTTPException, password_step: bool = True) -> Text | str:
    """The page's words for a refused sign-in (the API's own detail where it has none; for a 401 of the code
    step, ``password_step`` false, too)."""
    wait = (exc.headers or {}).get("Retry-After")
    if exc.status_code == 401 and password_step:
        return N_("wrong user name or password")
    if exc.status_code == 429 and wait:
        return N_("too many sign-in attempts; try again in %(seconds)s s", seconds=wait)
    if isinstance(exc, LocalAccountsOff):
        return N_("password sign-in is disabled here (%(setting)s); use single sign-on", setting="auth.local_accounts")
    return str(exc.detail)


def _account_user(request: Request) -> Actor:
    """The signed-in user of the account page (its forms check their own ``csrf`` field: :func:`_form_token_ok`)."""
    try:
        return principal_of(request, None, str(request.session.get("csrf", ""))).actor
    except NotSignedIn:
        raise PageAuth(request.url.path) from None


def _form_token_ok(request: Request, csrf: str) -> bool:
    """Whether a page form's hidden ``csrf`` field is the session's token."""
    return bool(csrf) and hmac.compare_digest(csrf, str(request.session.get("csrf", "")))


def render_account(request: Request, actor: Actor, status: int = 200, **ctx: Any) -> HTMLResponse:
    """The account page: the password form, and the language and time zone of the user's pages."""
    svc = services(request).services
    configured = svc.settings.deployment.timezone
    return render(
        request,
        "account.html",
        actor,
        status=status,
        prefs=svc.store.preferences.get(actor.name),
        zones=ZONES,
        default_zone=zone_name(zone(configured)) if configured else "UTC",
        **ctx,
    )


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request) -> Response:
    """Set your own password (any signed-in user, and the only page of an account whose password an admin reset),
    language and time zone."""
    return render_account(request, _account_user(request), error=None)


@router.post("/account/preferences", response_class=HTMLResponse)
def preferences_form(
    request: Request,
    language: Annotated[str, Form(max_length=16)] = "",
    timezone: Annotated[str, Form(max_length=64)] = "",
    csrf: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Set the user's own language (empty: the browser's) and time zone (empty: the installation's); audited."""
    actor = _account_user(request)
    if actor.must_set_password:
        return RedirectResponse("/account", status_code=303)
    if not _form_token_ok(request, csrf):
        return render_account(request, actor, 403, prefs_error=N_("the form expired; reload the page"))
    if language and LANGUAGES.get(language) is None:
        error = N_("unknown language %(code)s", code=language)
        return render_account(request, actor, 422, prefs_error=error)
    try:
        services(request).services.store.preferences.set(actor, language or None, timezone or None)
    except PolicyError:
        return render_account(request, actor, 422, prefs_error=N_("unknown time zone %(zone)s", zone=timezone))
    return render_account(request, actor, prefs_notice=N_("Saved."))


@router.post("/account", response_class=HTMLResponse)
def account_form(
    request: Request,
    current: Annotated[str, Form(max_length=1024)],
    password: Annotated[str, Form(max_length=1024)],
    again: Annotated[str, Form(max_length=1024)],
    csrf: Annotated[str, Form(max_length=128)] = "",
) -> Response:

    actor = _account_user(request)
    if not _form_token_ok(request, csrf):
        return render_account(request, actor, 403, error=N_("the form expired; reload the page"))
    if password != again:
        return render_account(request, actor, 422, error=N_("the two new passwords differ"))
    svc, ip = services(request), client_ip(request)
    try:
        limited(svc, actor.name, ip)
        svc.accounts.set_password(actor.name, password, actor, current)
    except HTTPException as exc:
        return render_account(request, actor, exc.status_code, error=exc.detail)
    except Forbidden as exc:
        svc.limiter.failed(actor.name, ip)
        svc.signin_audit.failed(actor.name, ip)
        return render_account(request, actor, 403, error=str(exc))
    except PolicyError as exc:
        return render_account(request, actor, 409, error=str(exc))
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
