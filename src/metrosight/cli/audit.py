"""``metrosight audit …`` (the hash-chained audit log) and ``metrosight purge`` (retention)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from metrosight.cli.common import fail, governed
from metrosight.cli.context import cli_context
from metrosight.store.retention import Retention

audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify(ctx: typer.Context) -> None:
    """Check the keyed hash chain against the signed checkpoints; reports the first broken link after any edit,
    deletion (of any entries, the newest or all), re-chaining or reordering, and a missing, truncated or edited
    checkpoint file; then cross-checks approvals, revocations, alert reviews and alert statuses in the database
    against the keyed log and lists every row it does not back. Needs the master key (as every command does), no
    user."""
    c = cli_context(ctx)
    res = c.services().store.audit.verify()
    if res.ok:
        c.out.print(f"audit log OK: {res.checked} entries, chain intact ({res.checkpoints} signed checkpoints)")
        return
    if res.mismatches:  # the chain is intact, but the database holds governed rows it does not back
        for m in res.mismatches:
            c.out.print(f"NOT BACKED BY THE AUDIT LOG: {m}")
        fail(
            f"audit log intact ({res.checked} entries), but {len(res.mismatches)} governed record(s) in the "
            "database are not backed by it (forged or rolled back by a database writer; listed above)",
            1,
        )
    fail(f"audit log BROKEN at entry {res.broken_seq}: {res.reason}", 1)


@audit_app.command("show")
def audit_show(
    ctx: typer.Context,
    last: Annotated[int, typer.Option("--last", min=1, max=1_000_000, help="how many of the newest entries")] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The newest audit entries (needs the auditor or admin role)."""
    c = cli_context(ctx)
    rt = c.services()
    with governed():
        actor = c.actor(rt)
        rows = rt.store.audit.entries(actor, last)
        rt.store.audit.record(actor.name, "audit.read", None, {"entries": len(rows)})
    if as_json:
        for e in rows:
            c.emit(
                json.dumps(
                    {
                        "seq": e.seq,
                        "at": e.at,
                        "actor": e.actor,
                        "action": e.action,
                        "target": e.target,
                        "details": json.loads(e.details),
                        "hash": e.hash,
                    }
                )
            )
        return
    table = Table("seq", "at", "actor", "action", "target", "details")
    for e in rows:
        table.add_row(str(e.seq), e.at[:19], e.actor, e.action, e.target or "", e.details[:80])
    c.out.print(table)


def purge(ctx: typer.Context) -> None:
    """Delete alerts, crops, events and audit entries older than the configured retention periods, and retire
    expired watchlist entries."""
    c = cli_context(ctx)
    rt = c.services()
    r = rt.settings.privacy.retention
    with governed():
        counts = rt.store.retention.purge(
            Retention(r.alerts_days, r.crops_days, r.events_days, r.audit_days), c.actor(rt)
        )
    c.out.print("purged: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
