"""The root of the ``metrosight`` command line: global options, and every command group added explicitly.

Each group lives in its own module of this package and exposes its commands or its ``typer.Typer``; nothing is
registered by importing a module for its side effects. Commands reach the global options, the consoles and the
installation through the :class:`~metrosight.cli.context.CliContext` built here (``ctx.obj``).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from metrosight.cli import (
    alerts,
    analytics,
    audit,
    bench,
    calibrate,
    cluster,
    demo,
    enrol,
    evaluate,
    identify,
    models,
    node,
    ops,
    persons,
    plan,
    privacy,
    run,
    serve,
    sso,
    users,
    watchlists,
    webhooks,
)
from metrosight.cli.context import CliContext
from metrosight.console import SafeConsole, error_line
from metrosight.detect.base import DetectorError
from metrosight.recognize.embedder import EmbedderError


def main(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar="METROSIGHT_HOME", help="where the store, media and caches live"),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML configuration file")] = None,
    user: Annotated[
        str | None,
        typer.Option("--as", envvar="METROSIGHT_USER", help="the user doing this (recorded in the audit log)"),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log progress details")] = False,
) -> None:
    ctx.obj = CliContext(home_dir=home, config=config, user=user)
    ctx.call_on_close(ctx.obj.close)  # every command ends by signing the newest audit head it wrote
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def build_app() -> typer.Typer:
    """The ``metrosight`` app with every command and command group."""
    app = typer.Typer(
        name="metrosight",
        help="Watchlist face recognition and behaviour analytics for metro cameras.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    app.callback()(main)
    # commands, in the order `metrosight --help` lists them
    app.command("enroll")(enrol.enroll)
    app.command("identify")(identify.identify)
    app.command("run")(run.run)
    app.command("demo")(demo.demo)
    app.command("purge")(audit.purge)
    app.command("node")(node.node)
    app.command("calibrate")(calibrate.calibrate_cmd)
    app.command("serve")(serve.serve)
    app.command("worker")(cluster.worker)
    app.command("consume")(cluster.consume)
    app.command("plan")(plan.plan)
    app.command("doctor")(ops.doctor)
    app.command("backup")(ops.backup)
    app.command("restore")(ops.restore)
    # command groups
    app.add_typer(watchlists.watchlist_app, name="watchlist")
    app.add_typer(demo.config_app, name="config")
    app.add_typer(users.user_app, name="user")
    app.add_typer(alerts.alert_app, name="alert")
    app.add_typer(audit.audit_app, name="audit")
    app.add_typer(privacy.privacy_app, name="privacy")
    app.add_typer(persons.person_app, name="person")
    app.add_typer(evaluate.eval_app, name="eval")
    app.add_typer(bench.bench_app, name="bench")
    app.add_typer(analytics.analytics_app, name="analytics")
    app.add_typer(serve.token_app, name="token")
    app.add_typer(sso.sso_app, name="sso")
    app.add_typer(cluster.db_app, name="db")
    app.add_typer(webhooks.webhooks_app, name="webhooks")
    app.add_typer(models.models_app, name="models")
    return app


app = build_app()


def entrypoint() -> None:  # pragma: no cover - thin wrapper
    """Run the app as a program: Ctrl-C exits 130; a model that cannot be loaded is one error line, exit 2."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except (DetectorError, EmbedderError) as exc:  # a model that cannot be loaded or fit (missing file, other model)
        SafeConsole(stderr=True, soft_wrap=True).print(error_line(str(exc)), highlight=False, soft_wrap=True)
        sys.exit(2)
