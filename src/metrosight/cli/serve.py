"""``metrosight serve`` (the operator service with the configured cameras) and ``metrosight token …`` (API
tokens for machines)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from metrosight.cli.common import MAX_ID, fail, governed
from metrosight.cli.context import cli_context
from metrosight.cli.models import require_parity
from metrosight.cli.sso import check_sso
from metrosight.config.access import tls_problem
from metrosight.core.credentials import safe_url

if TYPE_CHECKING:
    from metrosight.api.state import AppState, StartupHook


def supervisor_hook(log_level: int = logging.WARNING) -> StartupHook:
    """A startup hook that runs the configured cameras with the node supervisor (worker processes) in a
    background thread, publishing on the app's bus; its stop callable stops the cameras in order."""

    def start(svc: AppState) -> Callable[[], None]:
        # heavy: the supervisor loads the model backends (OpenCV, dlib, onnxruntime)
        from metrosight.pipeline.supervisor import Supervisor

        sup = Supervisor(svc.services, bus=svc.bus, log_level=log_level)
        svc.extras["supervisor"] = sup
        thread = threading.Thread(target=sup.run, name="metrosight-supervisor", daemon=True)
        thread.start()

        def stop() -> None:
            sup.request_stop()
            thread.join(svc.services.settings.node.shutdown_timeout_seconds + 10.0)

        return stop

    return start


def syslog_hook(svc: AppState) -> Callable[[], None]:
    """A startup hook that forwards the audit log to syslog (``outbound.syslog``) while the service runs. At
    shutdown the sign-in and denial bursts still open are written first, so that they go out with the last flush."""
    from metrosight.api.app import write_signin_audit
    from metrosight.outbound.syslog import start_syslog

    stop_forwarding = start_syslog(svc.services)

    def stop() -> None:
        write_signin_audit(svc, all=True)
        stop_forwarding()

    return stop


def alarm_outbound_hook(svc: AppState) -> Callable[[], None]:
    """A startup hook for a service that runs no cameras: an outbound dispatcher for the alarm clock's steps on the
    app's bus (with cameras, the supervisor's dispatcher delivers them)."""
    from metrosight.outbound.dispatch import SERVICE_TOPICS
    from metrosight.outbound.hosts import dispatcher_for

    dispatcher = dispatcher_for(svc.services)
    if svc.bus is not None:
        dispatcher.attach(svc.bus, SERVICE_TOPICS)
    return dispatcher.close


def redis_alarm_hook(bus_url: str) -> StartupHook:
    """A startup hook for a Redis deployment: the alarm clock publishes its steps on ``bus_url`` (read by the
    ``outbound`` consumers there; each step published by one service process)."""

    def start(svc: AppState) -> Callable[[], None]:
        from metrosight.bus.redis_streams import RedisStreamsBus

        bus = RedisStreamsBus(bus_url, publish_timeout=10.0)
        svc.extras["alarm_bus"] = bus
        return bus.close

    return start


token_app = typer.Typer(help="API tokens for machines (Authorization: Bearer …).", no_args_is_help=True)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="port to listen on")] = 8080,
    config: Annotated[Path | None, typer.Option("--config", help="YAML configuration file (with `cameras:`)")] = None,
    secure_cookies: Annotated[
        bool,
        typer.Option(
            "--secure-cookies",
            help="mark the session cookie Secure on every response (it is already over HTTPS: api.tls, or a "
            "trusted proxy's X-Forwarded-Proto: https)",
        ),
    ] = False,
    no_cameras: Annotated[bool, typer.Option("--no-cameras", help="serve the UI/API only; start no camera")] = False,
    bus_url: Annotated[
        str | None,
        typer.Option(
            "--bus",
            envvar="METROSIGHT_BUS",
            help="scale-out: store what `metrosight worker`s publish on this Redis (redis://…); the cameras run on "
            "the workers",
        ),
    ] = None,
) -> None:
    """Run the operator service (web UI, REST API at /api, OpenAPI at /docs, Prometheus /metrics) and the cameras
    named in the config's `cameras:` list. Sign in with a user created by `metrosight user add NAME -r ROLE
    --password`. Ctrl-C or SIGTERM stop the cameras in order, then the service."""
    # heavy: the web app, the ASGI server and the camera supervisor load FastAPI, uvicorn and the model backends
    import uvicorn

    from metrosight.api.app import ApiConfig, create_app
    from metrosight.api.serve import server_config
    from metrosight.bus.inproc import InProcessBus
    from metrosight.outbound.mqtt import problem as mqtt_problem
    from metrosight.pipeline.consumer import startup_hook as consumer_hook
    from metrosight.pipeline.supervisor import Supervisor, SupervisorError

    c = cli_context(ctx)
    rt = c.services(config)
    if (why := mqtt_problem(rt.settings.outbound.mqtt)) is not None:
        fail(why)  # before anything is opened or stored
    if (why := tls_problem(rt.settings.api.tls)) is not None:  # before anything starts: one line, what to fix
        fail(why)
    check_sso(rt.settings)
    require_parity(rt.settings, rt.home.cache)  # a faster model variant without measured parity: one line
    if rt.store.users.count() == 0:
        c.err.print("note: no users yet; create the first with `metrosight user add admin -r admin --password`")
    hooks: list[StartupHook] = []
    if bus_url:  # scale-out: consume the workers' alerts and events into the store (one of the `store` group)
        hooks.extend([consumer_hook(bus_url), redis_alarm_hook(bus_url)])
    elif rt.settings.cameras and not no_cameras:
        try:  # validate the camera list now, with a clear error, before the server starts
            Supervisor(rt, bus=InProcessBus())
        except SupervisorError as exc:
            fail(str(exc))
        hooks.append(supervisor_hook(logging.getLogger().level))
    else:
        hooks.append(alarm_outbound_hook)
    bus = InProcessBus()
    app = create_app(rt, bus=bus, config=ApiConfig(secure_cookies=secure_cookies), startup=[syslog_hook, *hooks])
    cams = (
        f"on the workers of {safe_url(bus_url)}"  # never the Redis password: this line goes to the journal
        if bus_url
        else ", ".join(cam.id for cam in rt.settings.cameras)
        if rt.settings.cameras and not no_cameras
        else "none"
    )
    tls = rt.settings.api.tls
    scheme = "https" if tls.enabled else "http"
    c.err.print(
        f"metrosight serve: {scheme}://{host}:{port}/ (cameras: {cams}; store: {rt.home.root})", highlight=False
    )
    uvicorn.Server(server_config(app, host, port, tls)).run()


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="what uses the token, e.g. prometheus")],
    user: Annotated[
        str | None, typer.Option("--user", help="must be you (the default): a token for another user is refused")
    ] = None,
    days: Annotated[
        float | None,
        typer.Option(
            "--days",
            min=0.01,
            max=3650,
            help="lifetime in days (default 90, or the role's limit if shorter: "
            "operator/approver 30, auditor 90, viewer 365)",
        ),
    ] = None,
    forever: Annotated[
        bool, typer.Option("--no-expiry", help="the token never expires (admins only; audited)")
    ] = False,
) -> None:
    """Create an API token acting as you (the --as user); it is printed once (only its hash is stored). Nobody
    can create a token for another user: that user signs in and creates their own."""
    c = cli_context(ctx)
    rt = c.services()
    actor = c.actor(rt)
    expires = None if forever or days is None else datetime.now(UTC) + timedelta(days=days)
    with governed():
        info, token = rt.store.accounts.create_token(user or actor.name, name, actor, expires, never_expires=forever)
    c.out.print(
        f"token {info.id} for {info.user} ({info.name}), expires {info.expires_at or 'never'}:", highlight=False
    )
    c.emit(token)


@token_app.command("list")
def token_list(ctx: typer.Context) -> None:
    """Your tokens (an admin sees all)."""
    c = cli_context(ctx)
    rt = c.services()
    table = Table("id", "name", "user", "prefix", "created", "expires", "last used", "revoked")
    for t in rt.store.accounts.tokens(c.actor(rt)):
        table.add_row(
            str(t.id),
            t.name,
            t.user,
            t.prefix + "…",
            str(t.created_at)[:19],
            str(t.expires_at or "-")[:19],
            str(t.last_used_at or "-")[:19],
            str(t.revoked_at or "-")[:19],
        )
    c.out.print(table)


@token_app.command("revoke")
def token_revoke(ctx: typer.Context, token_id: Annotated[int, typer.Argument(min=1, max=MAX_ID)]) -> None:
    """Revoke a token."""
    c = cli_context(ctx)
    rt = c.services()
    with governed():
        rt.store.accounts.revoke_token(token_id, c.actor(rt))
    c.out.print(f"token {token_id} revoked")
