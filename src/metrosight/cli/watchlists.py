"""``metrosight watchlist …``: create and list watchlists; approve, revoke and shred their entries; their alert
policies."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from metrosight.cli.alarms import policy_cells
from metrosight.cli.common import fail, governed, when
from metrosight.cli.context import CliContext, cli_context
from metrosight.console import visible
from metrosight.core.names import same_name
from metrosight.core.types import Category
from metrosight.core.when import describe

if TYPE_CHECKING:
    from metrosight.services.suite import Services

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


def _need_groups_config(c: CliContext, rt: Services, groups: tuple[str, ...]) -> None:
    """Stop with one line when a policy names camera groups and no configuration was given: the groups are the
    configuration's, and without it a mistyped name could not be caught."""
    if groups and c.config is None and not rt.settings.camera_group_members():
        fail(
            "the policy names camera groups (cameras' lines and groups, camera_groups of the configuration), "
            "and no configuration was given: run `metrosight --config FILE watchlist policy …` with the "
            "installation's one"
        )


@watchlist_app.command("policy")
def watchlist_policy(
    ctx: typer.Context,
    watchlist: Annotated[str | None, typer.Argument(help="the watchlist (none: show every watchlist's policy)")] = None,
    priority: Annotated[str | None, typer.Option("--priority", help="critical, high, normal or low")] = None,
    colour: Annotated[str | None, typer.Option("--colour", help="#rgb or #rrggbb (default: the priority's)")] = None,
    ack: Annotated[
        bool | None, typer.Option("--ack-required/--ack-optional", help="must an operator acknowledge each alarm")
    ] = None,
    groups: Annotated[
        str | None,
        typer.Option(
            "--groups",
            help="camera groups it applies to (a camera's line, group, or a named group), comma-separated; '' : all",
        ),
    ] = None,
    escalate_after: Annotated[
        int | None,
        typer.Option(
            "--escalate-after", min=1, max=7 * 24 * 3600, help="seconds before an unacknowledged alarm escalates"
        ),
    ] = None,
    escalate_to: Annotated[
        str | None, typer.Option("--escalate-to", help="the role it escalates to: admin or operator")
    ] = None,
    no_escalation: Annotated[bool, typer.Option("--no-escalation", help="never escalate")] = False,
    reset: Annotated[bool, typer.Option("--reset", help="back to the default policy")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="show as JSON lines")] = False,
) -> None:
    """Show or set a watchlist's alert policy (admins set; audited). Options change only what they name; the policy
    applies to alarms raised from then on."""
    c = cli_context(ctx)
    rt = c.services()
    changing = (
        reset
        or no_escalation
        or any(v is not None for v in (priority, colour, ack, groups, escalate_after, escalate_to))
    )
    if not changing:
        with governed():
            infos = rt.store.alarms.policies() if watchlist is None else [rt.store.alarms.policy(watchlist)]
        if as_json:
            for i in infos:
                c.emit(json.dumps({"watchlist": i.watchlist, **i.policy.to_json(), "set_by": i.set_by}))
            return
        table = Table("watchlist", "priority", "colour", "acknowledgement", "camera groups", "escalation", "set by")
        for i in infos:
            table.add_row(
                i.watchlist, *policy_cells(i.policy), f"{i.set_by} {when(i.set_at)}" if i.set_by else "default"
            )
        c.out.print(table)
        return
    if watchlist is None:
        fail("name the watchlist whose policy to change: `metrosight watchlist policy WATCHLIST --priority …`")
    with governed():
        actor = c.actor(rt)
        if reset:
            info = rt.store.alarms.set_policy(watchlist, None, actor)
        else:
            p = rt.store.alarms.policy(watchlist).policy
            p = replace(
                p,
                priority=priority if priority is not None else p.priority,
                colour=colour if colour is not None else p.colour,
                ack_required=ack if ack is not None else p.ack_required,
                groups=tuple(g for g in groups.split(",") if g.strip()) if groups is not None else p.groups,
                escalate_after_s=None
                if no_escalation
                else escalate_after
                if escalate_after is not None
                else p.escalate_after_s,
                escalate_to=None if no_escalation else escalate_to if escalate_to is not None else p.escalate_to,
            )
            _need_groups_config(c, rt, p.groups)
            info = rt.store.alarms.set_policy(watchlist, p, actor)
    prio, shown, acked, where, esc = policy_cells(info.policy)
    c.out.print(
        f"{info.watchlist}: {prio} ({shown}), acknowledgement {acked}, {where}, escalation {esc}", highlight=False
    )
