"""The operator service's app factory.

:func:`create_app` builds a FastAPI app around one installation's :class:`~metrosight.services.suite.Services`
(the store, the settings, the face models for enrolment). Everything a route needs comes through ``Depends`` (see
:mod:`metrosight.api.deps`). What feeds the live views comes from a bus: pass the bus the cameras publish on, and
the app subscribes to alerts (to wake the live feed), camera states and counters (the camera board).

Startup hooks: ``startup`` is a list of callables run when the app starts, each given the app's :class:`AppState`;
one may return a callable that is run at shutdown (in reverse order). ``metrosight serve`` starts the camera
supervisor this way; a consumer of a Redis bus (scale-out) plugs in the same way, publishing what it reads to
``services.bus`` (or calling ``services.hub.notify`` / ``services.cameras.on_state`` / ``.on_stats``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from metrosight.api.deps import SESSION_COOKIE, AnyUser
from metrosight.api.live import AlertHub, CameraBoard
from metrosight.api.metrics import make_registry, render
from metrosight.api.security import EndedSessions, LoginLimiter, SignInAudit, session_secret
from metrosight.bus.inproc import (
    TOPIC_ALERTS,
    TOPIC_CAMERA_SNAPSHOT,
    TOPIC_CAMERA_STATE,
    TOPIC_CAMERA_STATS,
    InProcessBus,
)
from metrosight.core.names import InvalidInput
from metrosight.policy.crypto import CryptoError
from metrosight.policy.rules import Forbidden, PolicyError
from metrosight.recognize.gallery import ModelMismatch
from metrosight.services.suite import Services
from metrosight.store.accounts import Accounts
from metrosight.store.db import StoreError
from metrosight.store.governance import Conflict, NotFound

log = logging.getLogger(__name__)

WEB = Path(__file__).resolve().parent.parent / "web"

StartupHook = Callable[["AppState"], Callable[[], None] | None]


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """Settings of the service itself.

    Attributes:
        session_max_age: seconds a UI session lasts (the cookie's signature expires with it).
        secure_cookies: mark the session cookie ``Secure`` (serve over HTTPS, e.g. behind a reverse proxy).
        poll_seconds: the live feed reads new alerts from the store at least this often.
        login_max_failures / login_max_per_ip / login_window: the sign-in rate limit (see ``LoginLimiter``).
        max_body_bytes: largest request body, except photo uploads.
        max_upload_bytes: largest photo-upload request body (each photo is limited on its own by
            ``photos.max_file_mb``); uploads are held in memory, never on disk.
    """

    session_max_age: int = 8 * 3600
    secure_cookies: bool = False
    poll_seconds: float = 0.5
    login_max_failures: int = 5
    login_max_per_ip: int = 30
    login_window: float = 300.0
    max_body_bytes: int = 1 << 20
    max_upload_bytes: int = 5 * 40 * (1 << 20) + (1 << 20)


@dataclass(slots=True)
class AppState:
    """What the routes share: the installation and the live state. One per app."""

    services: Services
    accounts: Accounts
    config: ApiConfig
    hub: AlertHub
    cameras: CameraBoard
    limiter: LoginLimiter
    signin_audit: SignInAudit
    ended: EndedSessions
    bus: InProcessBus | None
    registry: Any
    extras: dict[str, Any] = field(default_factory=dict)
    sign_in_slots: anyio.CapacityLimiter | None = None  # password checks at a time (routes/auth.py)
    started: float = field(default_factory=time.monotonic)  # when the app was built (live search rate)

    def operating_status(self) -> dict[str, Any]:
        """The recognition operating point (:meth:`~metrosight.services.matching.Matching.operating_status`) with
        the live cameras' search rate."""
        tracks = sum(int(t.get("tracks", 0)) for t in self.cameras.totals().values())
        return self.services.matching.operating_status(live_tracks=tracks, live_seconds=time.monotonic() - self.started)


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuses request bodies over the limit with 413, by ``Content-Length`` or while they stream in."""

    def __init__(self, app: ASGIApp, default: int, uploads: int, upload_paths: Callable[[str], bool]) -> None:
        self.app, self.default, self.uploads, self.upload_paths = app, default, uploads, upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.uploads if self.upload_paths(scope["path"]) else self.default
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _too_large(limit, send)
            return
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(limit, send)


def keep_uploads_in_memory(max_upload_bytes: int) -> None:
    """Uploaded face photos are never written to disk: Starlette spools each uploaded file into a
    ``SpooledTemporaryFile`` that moves to a temporary file on disk past ``MultiPartParser.spool_max_size`` (1 MiB);
    raising that to the largest upload :class:`BodyLimit` lets through keeps every upload in memory, where it is
    decoded (:func:`metrosight.ingest.images.decode_photo`) and dropped with the request. The setting is the
    parser's class attribute, so it holds for the whole process (the service is the only form parser in it)."""
    from starlette.formparsers import MultiPartParser

    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, max_upload_bytes + 1)


async def _too_large(limit: int, send: Send) -> None:
    body = JSONResponse({"detail": f"request body larger than {limit / 2**20:.0f} MiB"}, status_code=413).body
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", NO_STORE.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
# Responses carry personal data (alerts, crops, the audit log, users): no browser or proxy may keep a copy. Only the
# static assets (scripts, styles, the docs' bundle) may be cached.
NO_STORE = "no-store"
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; "
    "form-action 'self'"
)
CSP_DOCS = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'").replace(
    "script-src 'self'", "script-src 'self' 'unsafe-inline'"
)  # the Swagger UI page starts itself with an inline script


def _error(status: int) -> Callable[[Request, Exception], Response]:
    def handler(_request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return handler


def write_signin_audit(svc: AppState, *, all: bool = False) -> int:
    """Write the closed windows of failed/refused sign-ins (every window with ``all``) to the audit log, one row
    each. Returns how many rows were written."""
    rows = svc.signin_audit.due(all=all)
    for action, target, details in rows:
        try:
            svc.services.store.record("anonymous", action, target, details)
        except Exception:  # the store is down: keep serving, say so
            log.exception("could not audit %s for %s", action, target)
    return len(rows)


def start_signin_audit(svc: AppState) -> Callable[[], None]:
    """A thread that writes closed windows of failed sign-ins every few seconds; its stop callable writes the rest."""
    stop = threading.Event()
    every = max(0.05, min(5.0, svc.signin_audit.window / 4))

    def loop() -> None:
        while not stop.wait(every):
            write_signin_audit(svc)

    thread = threading.Thread(target=loop, name="metrosight-signin-audit", daemon=True)
    thread.start()

    def finish() -> None:
        stop.set()
        thread.join(10.0)
        write_signin_audit(svc, all=True)

    return finish


def create_app(
    services: Services,
    *,
    bus: InProcessBus | None = None,
    config: ApiConfig | None = None,
    startup: Sequence[StartupHook] = (),
) -> FastAPI:
    """The operator service.

    Args:
        services: the installation's services (store, settings, models for enrolment).
        bus: the bus cameras publish on (alerts, camera states and counters); None: the live views read the store
            only.
        config: settings of the service (sessions, rate limits, body limits).
        startup: hooks run at startup (see the module docstring).
    """
    config = config or ApiConfig()
    board = CameraBoard(list(services.settings.cameras))
    store = services.store

    svc = AppState(
        services=services,
        accounts=Accounts(store),
        config=config,
        hub=AlertHub(),
        cameras=board,
        limiter=LoginLimiter(config.login_max_failures, config.login_max_per_ip, config.login_window),
        signin_audit=SignInAudit(services.settings.api.failed_signin_audit_seconds),
        ended=EndedSessions(config.session_max_age),
        bus=bus,
        registry=None,
    )
    svc.registry = make_registry(board, store.alert_counts, operating=svc.operating_status, home=services.home.root)
    if bus is not None:
        bus.subscribe(TOPIC_CAMERA_STATE, board.on_state)  # type: ignore[arg-type]
        bus.subscribe(TOPIC_CAMERA_STATS, board.on_stats)  # type: ignore[arg-type]
        bus.subscribe(TOPIC_CAMERA_SNAPSHOT, lambda p: board.on_snapshot(p.camera_id, p.jpeg, p.wall_time))  # type: ignore[attr-defined]

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stops: list[Callable[[], None]] = [start_signin_audit(svc)]
        for hook in startup:
            stop = hook(svc)
            if stop is not None:
                stops.append(stop)
        if bus is not None:  # after the hooks: a store subscribed by a hook runs first, so the row is there
            bus.subscribe(TOPIC_ALERTS, svc.hub.notify)
        try:
            yield
        finally:
            for stop in reversed(stops):
                try:
                    stop()
                except Exception:
                    log.exception("a shutdown hook failed")

    app = FastAPI(
        title="metrosight operator service",
        version="1",
        description=(
            "Alerts, two-person review, watchlists, cameras, behaviour events, audit log and users of a metrosight "
            "installation. Every endpoint needs a signed-in user with a role: a session cookie (web UI; changes "
            "also need the X-CSRF-Token header) or an API token (`Authorization: Bearer mst_…`). 401: not "
            "signed in; 403: wrong role or a rule refused (e.g. approving your own entry); 404: no such thing; "
            "409: the request conflicts with a rule or the current state; 410: the data was crypto-shredded; "
            "413: body too large; 422: malformed request."
        ),
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.services = svc

    for exc_type, status in (
        (Forbidden, 403),
        (NotFound, 404),
        (Conflict, 409),
        (PolicyError, 409),
        (CryptoError, 410),
        (StoreError, 503),
        (ModelMismatch, 409),  # the watchlists hold templates of another descriptor model than the configured one
        (InvalidInput, 422),  # a name, camera id, date or duration that breaks its rule (core/names.py, core/when.py)
    ):
        app.add_exception_handler(exc_type, _error(status))

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    async def _busy(_request: Request, exc: Exception) -> Response:
        # the database did not answer in time (SQLite's write lock held past busy_timeout, the pool exhausted, a
        # PostgreSQL restart): nothing was changed; the client may retry
        log.warning("database unavailable: %s", str(exc).splitlines()[0][:200])
        return JSONResponse(
            {"detail": "the database is busy or unavailable; nothing was changed, try again"},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        response.headers.setdefault("Content-Security-Policy", CSP_DOCS if request.url.path == "/docs" else CSP)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", NO_STORE)
        return response

    keep_uploads_in_memory(config.max_upload_bytes)
    app.add_middleware(
        BodyLimit,
        default=config.max_body_bytes,
        uploads=config.max_upload_bytes,
        upload_paths=lambda p: p == "/api/identify" or p.startswith("/api/watchlists/") and p.endswith("/entries"),
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(services.home.root),
        session_cookie=SESSION_COOKIE,
        max_age=config.session_max_age,
        same_site="strict",
        https_only=config.secure_cookies,
    )
    if services.settings.api.trusted_proxies:  # outermost: every layer (and the audit) sees the real client
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(services.settings.api.trusted_proxies))

    from metrosight.api.routes import alerts, auth, operations, pages, watchlists

    app.include_router(auth.router)
    app.include_router(alerts.router)
    app.include_router(watchlists.router)
    app.include_router(operations.router)
    app.include_router(pages.router)
    app.add_exception_handler(pages.PageAuth, pages.page_auth_handler)

    @app.get("/metrics", tags=["metrics"], response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    def metrics(_actor: AnyUser) -> Response:
        """Prometheus metrics (any role; scrape with an API token)."""
        return Response(render(svc.registry), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    import fastapi_offline

    docs_static = Path(fastapi_offline.__file__).parent / "static"
    app.mount("/static/docs", StaticFiles(directory=docs_static), name="docs-static")
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI, served from this app (no CDN)."""
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="metrosight API",
            swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="/static/docs/favicon.png",
        )

    return app
