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

import functools
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from metrosight.api import sso
from metrosight.api.deps import AnyUser
from metrosight.api.errors import add_error_handlers
from metrosight.api.live import AlertHub, CameraBoard
from metrosight.api.metrics import make_registry, render, scoped_registry
from metrosight.api.middleware import add_middleware
from metrosight.api.routes import (
    alarms,
    alerts,
    auth,
    oidc,
    operations,
    pages,
    sso_links,
    totp,
    totp_pages,
    watchlists,
    webhooks,
)
from metrosight.api.routes.pages import WEB
from metrosight.api.security import EndedSessions, LoginLimiter, SignInAudit, session_secret
from metrosight.api.state import ApiConfig, AppState, StartupHook
from metrosight.bus.base import Bus
from metrosight.bus.inproc import (
    TOPIC_ALERTS,
    TOPIC_CAMERA_SNAPSHOT,
    TOPIC_CAMERA_STATE,
    TOPIC_CAMERA_STATS,
    InProcessBus,
)
from metrosight.bus.topics import ALARMS
from metrosight.services.alarms import AlarmClock
from metrosight.services.suite import Services
from metrosight.store.scoping import CAMERA_READERS

log = logging.getLogger(__name__)


def write_signin_audit(svc: AppState, *, all: bool = False) -> int:
    """Write the closed windows of failed/refused sign-ins (every window with ``all``) to the audit log, one row
    each. Returns how many rows were written."""
    rows = svc.signin_audit.due(all=all)
    for action, target, details in rows:
        try:
            svc.services.store.audit.record("anonymous", action, target, details)
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
    svc = _app_state(services, bus, config)
    sso.attach(svc)  # single sign-on (auth.oidc), when configured
    app = FastAPI(
        title="metrosight operator service",
        version="1",
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan(svc, startup),
    )
    app.state.services = svc
    add_error_handlers(app)
    add_middleware(
        app,
        max_body_bytes=config.max_body_bytes,
        max_upload_bytes=config.max_upload_bytes,
        session_secret=session_secret(services.home.root),
        session_max_age=config.session_max_age,
        secure_cookies=config.secure_cookies or services.settings.api.tls.enabled,
        trusted_proxies=services.settings.api.trusted_proxies,
        hsts_seconds=services.settings.api.tls.hsts_seconds,
    )
    _add_routes(app, svc)
    return app


DESCRIPTION = (
    "Alerts, two-person review, watchlists, cameras, behaviour events, audit log and users of a metrosight "
    "installation. Every endpoint needs a signed-in user with a role: a session cookie (web UI; changes "
    "also need the X-CSRF-Token header) or an API token (`Authorization: Bearer mst_…`). 401: not "
    "signed in; 403: wrong role or a rule refused (e.g. approving your own entry); 404: no such thing; "
    "409: the request conflicts with a rule or the current state; 410: the data was crypto-shredded; "
    "413: body too large; 422: malformed request."
)


def _app_state(services: Services, bus: InProcessBus | None, config: ApiConfig) -> AppState:
    """The app's shared state, its metrics registry, and the camera board fed from ``bus``."""
    board = CameraBoard(list(services.settings.cameras))
    store = services.store
    svc = AppState(
        services=services,
        accounts=store.accounts,
        config=config,
        hub=AlertHub(),
        cameras=board,
        limiter=LoginLimiter(config.login_max_failures, config.login_max_per_ip, config.login_window),
        signin_audit=SignInAudit(services.settings.api.failed_signin_audit_seconds),
        ended=EndedSessions(config.session_max_age),
        bus=bus,
    )
    svc.registry = make_registry(
        board, store.alerts.status_counts, operating=svc.operating_status, home=services.home.root
    )
    if bus is not None:
        bus.subscribe(TOPIC_CAMERA_STATE, board.on_state)
        bus.subscribe(TOPIC_CAMERA_STATS, board.on_stats)
        bus.subscribe(TOPIC_CAMERA_SNAPSHOT, lambda p: board.on_snapshot(p.camera_id, p.jpeg, p.wall_time))
    return svc


def start_alarm_clock(svc: AppState) -> Callable[[], None]:
    """The service's alarm clock (escalation, alarm steps onto the bus: :mod:`metrosight.services.alarms`); its
    stop callable stops it. The steps go to ``svc.extras["alarm_bus"]`` when a startup hook put a bus there (a
    Redis deployment: the bus its outbound consumers read), else to the app's bus; a running supervisor's
    dispatcher is waited for."""
    bus: Bus | None = svc.extras.get("alarm_bus", svc.bus)
    sup = svc.extras.get("supervisor")
    clock = AlarmClock(
        svc.services.store.alarms,
        (lambda p: bus.publish(ALARMS, p)) if bus is not None else None,
        svc.config.alarm_tick_seconds,
        svc.hub.notify,
        ready=getattr(sup, "dispatching", None),
    )
    svc.extras["alarm_clock"] = clock
    return clock.start()


def _lifespan(svc: AppState, startup: Sequence[StartupHook]) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up and shut-down: the sign-in audit writer, then the hooks, then the alarm clock (stopped in reverse
    order), then the live feed's subscription to alerts on the bus."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stops: list[Callable[[], None]] = [start_signin_audit(svc)]
        for hook in startup:
            stop = hook(svc)
            if stop is not None:
                stops.append(stop)
        stops.append(start_alarm_clock(svc))  # after the hooks: it publishes where they say (svc.extras)
        if svc.bus is not None:  # after the hooks: a store subscribed by a hook runs first, so the row is there
            svc.bus.subscribe(TOPIC_ALERTS, svc.hub.notify)
        try:
            yield
        finally:
            for stop in reversed(stops):
                try:
                    stop()
                except Exception:
                    log.exception("a shutdown hook failed")

    return lifespan


def _add_routes(app: FastAPI, svc: AppState) -> None:
    """The API and UI routes, /metrics, /healthz, the static assets and the offline Swagger UI."""
    app.include_router(auth.router)
    app.include_router(oidc.router)
    app.include_router(sso_links.router)
    app.include_router(totp.router)
    app.include_router(alerts.router)
    app.include_router(alarms.router)
    app.include_router(watchlists.router)
    app.include_router(operations.router)
    app.include_router(webhooks.router)
    app.include_router(pages.router)
    app.include_router(totp_pages.router)
    app.add_exception_handler(pages.PageAuth, pages.page_auth_handler)

    @app.get("/metrics", tags=["metrics"], response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    def metrics(actor: AnyUser) -> Response:
        """Prometheus metrics (any role; scrape with an API token). A scoped user gets the cameras and alerts of
        their scope only."""
        store = svc.services.store
        view = store.scoping.view(actor, CAMERA_READERS)  # any role reads /metrics
        registry = svc.registry
        if not view.everything:
            counts = functools.partial(store.alerts.status_counts, view)
            registry = scoped_registry(svc.cameras, view.camera, counts, svc.services.home.root)
        return Response(render(registry), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

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
