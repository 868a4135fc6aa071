"""``metrosight watchlist …``: create and list watchlists; approve, revoke and shred their entries."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from metrosight.cli.common import fail, governed, when
from metrosight.cli.context import cli_context
from metrosight.console import visible
from metrosight.core.names import same_name
from metrosight.core.types import Category
from metrosight.core.when import describe

watchlist_app = typer.Typer(help="Create and list watchlists.", no_args_is_help=True)


@watchlist_app.command("create")
def watchlist_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="watchlist name")],
    category: Annotated[Category, typer.Option("--category", help="why people are on it")],
) -> None:
    """Create an empty watchlist."""
    c = cli_context(ctx)
    name = name.strip()
    if not name:
        fail("a watchlist needs a non-empty name")
    rt = c.services()
    with governed():
        rt.store.watchlists.create(name, category, c.actor(rt))
    c.out.print(Text.assemble("created watchlist ", (visible(name), "bold"), f" ({category.value})"))


@watchlist_app.command("list")
def watchlist_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List watchlists with their entry and template counts."""
    c = cli_context(ctx)
    rows = c.services().store.watchlists.all()
    if as_json:
        for r in rows:
            c.emit(
                json.dumps({"name": r.name, "category": r.category, "subjects": r.subjects, "templates": r.templates})
            )
        return
    table = Table("watchlist", "category", "subjects", "templates", "created")
    for r in rows:
        table.add_row(r.name, r.category, str(r.subjects), str(r.templates), r.created_at.strftime("%Y-%m-%d %H:%M"))
    c.out.print(table)


@watchlist_app.command("entries")
def watchlist_entries(
    ctx: typer.Context,
    watchlist: Annotated[str | None, typer.Argument(help="only this watchlist")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Entries with their authorisation, status and expiry."""
    c = cli_context(ctx)
    rows = c.services().store.entries.all(watchlist)
    if as_json:
        for e in rows:
            c.emit(
                json.dumps(
                    {
                        "id": e.id,
                        "watchlist": e.watchlist,
                        "name": e.name,
                        "status": e.status,
                        "urgent": e.urgent,
                        "legal_basis": e.legal_basis,
                        "authority": e.authority,
                        "reference": e.reference,
                        "scope": e.scope,
                        "expires_at": e.expires_at.isoformat() if e.expires_at else None,
                        "created_by": e.created_by,
                        "approved_by": e.approved_by,
                        "templates": e.templates,
                    }
                )
            )
        return
    table = Table(
        "watchlist", "entry", "status", "reference", "authority", "scope", "expires", "by", "approved by", "photos"
    )
    for e in rows:
        scope = ", ".join((e.scope or {}).get("cameras", []) + (e.scope or {}).get("lines", [])) or "all"
        status = e.status + (" (urgent)" if e.urgent and not e.approved_by else "")
        table.add_row(
            e.watchlist,
            e.name,
            status,
            e.reference or "",
            e.authority or "",
            scope,
            when(e.expires_at),
            e.created_by or "",
            e.approved_by or "",
            str(e.templates),
        )
    c.out.print(table)


@watchlist_app.command("approve")
def watchlist_approve(
    ctx: typer.Context,
    watchlist: Annotated[str, typer.Argument()],
    names: Annotated[list[str] | None, typer.Argument(help="entries to approve")] = None,
    all_pending: Annotated[
        bool, typer.Option("--all-pending", help="approve every pending entry (each audited)")
    ] = False,
) -> None:
    """Activate pending entries. The approver must hold the approver role and must not have recorded them."""
    c = cli_context(ctx)
    rt = c.services()
    actor = c.actor(rt)
    if all_pending:
        names = [e.name for e in rt.store.entries.all(watchlist) if e.status == "pending"]
        if not names:
            fail(f"no pending entries on {watchlist}")
    if not names:
        fail("name the entries to approve, or pass --all-pending")
    for name in names:
        with governed():
            rt.store.entries.approve(watchlist, name, actor)
        e = next((e for e in rt.store.entries.all(watchlist) if same_name(e.name, name)), None)
        until = f" until {describe(e.expires_at, rt.clock.tz, end=True)}" if e is not None and e.expires_at else ""
        c.out.print(f"approved {watchlist}/{e.name if e is not None else name}: active{until}", highlight=False)


@watchlist_app.command("revoke")
def watchlist_revoke(
    ctx: typer.Context,
    watchlist: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option("--reason", help="why (recorded in the audit log)")],
) -> None:
    """Stop matching an entry at once and destroy its templates."""
    c = cli_context(ctx)
    rt = c.services()
    with governed():
        n = rt.store.entries.revoke(watchlist, name, c.actor(rt), reason)
    c.out.print(f"revoked {watchlist}/{name}; {n} template(s) destroyed", highlight=False)


@watchlist_app.command("shred")
def watchlist_shred(
    ctx: typer.Context,
    watchlist: Annotated[str, typer.Argument()],
    yes: Annotated[bool, typer.Option("--yes", help="confirm: this cannot be undone")] = False,
) -> None:
    """Destroy a watchlist's encryption key and templates (crypto-shredding); its crops become unreadable."""
    if not yes:
        fail("shredding cannot be undone: pass --yes")
    c = cli_context(ctx)
    rt = c.services()
    with governed():
        rt.store.watchlists.shred(watchlist, c.actor(rt))
    c.out.print(f"shredded {watchlist}: its key, templates and crops are unreadable")
