"""``metrosight privacy …``: no-identification windows (face matching off for a place and time)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from metrosight.cli.common import MAX_ID, governed, when
from metrosight.cli.context import cli_context
from metrosight.core.names import identifiers
from metrosight.core.when import describe, parse_when

privacy_app = typer.Typer(help="No-identification windows.", no_args_is_help=True)


@privacy_app.command("window-add")
def window_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    start: Annotated[
        str,
        typer.Option(
            "--from", help="YYYY-MM-DD (that day's start, deployment time zone), YYYY-MM-DDTHH:MM, or 0m for now"
        ),
    ],
    end: Annotated[
        str,
        typer.Option(
            "--until", help="YYYY-MM-DD (the end of that day), YYYY-MM-DDTHH:MM, or a duration from --from like 6h"
        ),
    ],
    reason: Annotated[str, typer.Option("--reason")],
    cameras: Annotated[str | None, typer.Option("--cameras", help="comma-separated camera ids (default: all)")] = None,
    lines: Annotated[str | None, typer.Option("--lines", help="comma-separated metro lines")] = None,
) -> None:
    """Switch face matching off for a place and time (analytics still run)."""
    c = cli_context(ctx)
    rt = c.services()
    now, tz = rt.clock.now(), rt.clock.tz
    with governed():
        starts_at = parse_when(start, now, tz, end=False, what="--from")
        ends_at = parse_when(end, starts_at, tz, end=True, what="--until")  # `--until 6h`: 6 h from the start
        wid = rt.store.windows.add(
            name,
            list(identifiers(cameras, "camera id")),
            list(identifiers(lines, "line")),
            starts_at,
            ends_at,
            reason,
            c.actor(rt),
            now,  # the clock the dates were read with
        )
    c.out.print(
        f"no-identification window {wid} ({name}) set from {describe(starts_at, tz)} until "
        f"{describe(ends_at, tz, end=True)}",
        highlight=False,
    )


@privacy_app.command("window-list")
def window_list(ctx: typer.Context) -> None:
    """Current and future no-identification windows."""
    c = cli_context(ctx)
    rt = c.services()
    table = Table("id", "name", "scope", "from", "until", "reason", "by")
    for w in rt.store.windows.all():
        scope = ", ".join((w.scope or {}).get("cameras", []) + (w.scope or {}).get("lines", [])) or "all cameras"
        table.add_row(str(w.id), w.name, scope, when(w.starts_at), when(w.ends_at), w.reason, w.created_by)
    c.out.print(table)


@privacy_app.command("window-remove")
def window_remove(
    ctx: typer.Context, window_id: Annotated[int, typer.Argument(min=1, max=MAX_ID, help="window id")]
) -> None:
    """End a no-identification window."""
    c = cli_context(ctx)
    rt = c.services()
    with governed():
        rt.store.windows.remove(window_id, c.actor(rt))
    c.err.print(f"window {window_id} removed")
