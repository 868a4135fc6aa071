"""``metrosight webhooks …``: outbound webhook subscriptions and their delivery log (admins; every change audited)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.table import Table

from metrosight.cli.common import MAX_ID, fail, governed, when
from metrosight.cli.context import cli_context

webhooks_app = typer.Typer(
    help="Outbound webhooks: signed JSON POSTs of alerts, reviews, behaviour events and camera states (admins).",
    no_args_is_help=True,
)

WebhookId = Annotated[int, typer.Argument(min=1, max=MAX_ID, help="webhook id (see `metrosight webhooks list`)")]


def _json(obj: Any) -> str:
    return json.dumps(asdict(obj), default=str, ensure_ascii=False)


@webhooks_app.command("add")
def webhooks_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="what receives it, e.g. 'control room VMS'")],
    url: Annotated[
        str, typer.Argument(help="http:// or https:// URL of the receiver (credentials are kept encrypted)")
    ],
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event", "-e", help="alert, alert_review, episode, behaviour, camera_state, alarm (repeat; default all)"
        ),
    ] = None,
    watchlist: Annotated[list[str] | None, typer.Option("--watchlist", "-w", help="only these watchlists")] = None,
    category: Annotated[list[str] | None, typer.Option("--category", help="only these categories")] = None,
    group: Annotated[list[str] | None, typer.Option("--group", "-g", help="only cameras of these groups")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the subscription and its secret as one JSON line")] = False,
) -> None:
    """Subscribe a receiver. The signing secret is printed ONCE (store it in the receiver now): it cannot be
    shown again; to change it, remove the webhook and add it again."""
    from metrosight.outbound.webhooks import add_subscription  # heavy: the HTTP client

    c = cli_context(ctx)
    rt = c.services()
    with governed():
        actor = c.actor(rt)
    if group and c.config is None and not rt.settings.camera_group_members():
        # the camera groups are the configuration's: without it every name would be refused as unknown
        fail(
            "--group names camera groups of the configuration (cameras' lines and groups, camera_groups), and no "
            "configuration was given: run `metrosight --config FILE webhooks add …` with the installation's one"
        )
    with governed():
        info, secret = add_subscription(
            rt.store.webhooks, actor, name, url, event or (), watchlist or (), category or (), group or ()
        )
    if as_json:
        c.emit(json.dumps({**json.loads(_json(info)), "secret": secret}, ensure_ascii=False))
        return
    c.out.print(f"webhook {info.id} ({info.name}) → {info.url}; events: {', '.join(info.event_types)}", highlight=False)
    c.err.print("signing secret (shown once; the receiver verifies X-Metrosight-Signature with it):", highlight=False)
    c.emit(secret)


@webhooks_app.command("list")
def webhooks_list(
    ctx: typer.Context,
    removed: Annotated[bool, typer.Option("--removed", help="include removed webhooks")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per webhook")] = False,
) -> None:
    """Webhooks with their filters and how many deliveries are pending, dead and delivered (never a secret)."""
    c = cli_context(ctx)
    rt = c.services()
    with governed():
        rows = rt.store.webhooks.all(c.actor(rt), include_removed=removed)
    if as_json:
        for w in rows:
            c.emit(_json(w))
        return
    table = Table("id", "name", "url", "events", "filters", "enabled", "pending", "dead", "delivered", "created")
    for w in rows:
        filters = "; ".join(
            f"{k}: {', '.join(v)}"
            for k, v in (("watchlists", w.watchlists), ("categories", w.categories), ("groups", w.camera_groups))
            if v
        )
        state = "removed" if w.removed_at else "yes" if w.enabled else "paused"
        table.add_row(
            str(w.id),
            w.name,
            w.url,
            ", ".join(w.event_types),
            filters or "-",
            state,
            str(w.pending),
            str(w.dead),
            str(w.delivered),
            when(w.created_at),
        )
    c.out.print(table)


@webhooks_app.command("remove")
def webhooks_remove(ctx: typer.Context, webhook: WebhookId) -> None:
    """Remove a webhook: its URL and secret are destroyed, what it had queued is cancelled; its log stays."""
    c = cli_context(ctx)
    rt = c.services()
    with governed():
        n = rt.store.webhooks.remove(c.actor(rt), webhook)
    c.out.print(f"removed webhook {webhook} ({n} queued deliveries cancelled)")


@webhooks_app.command("pause")
def webhooks_pause(ctx: typer.Context, webhook: WebhookId) -> None:
    """Stop queueing events for a webhook (what is queued waits); `resume` starts again."""
    c = cli_context(ctx)
    rt = c.services()
    with governed():
        rt.store.webhooks.set_enabled(c.actor(rt), webhook, False)
    c.out.print(f"paused webhook {webhook}")


@webhooks_app.command("resume")
def webhooks_resume(ctx: typer.Context, webhook: WebhookId) -> None:
    """Queue events for a paused webhook again."""
    c = cli_context(ctx)
    rt = c.services()
    with governed():
        rt.store.webhooks.set_enabled(c.actor(rt), webhook, True)
    c.out.print(f"resumed webhook {webhook}")


@webhooks_app.command("test")
def webhooks_test(ctx: typer.Context, webhook: WebhookId) -> None:
    """Send the webhook a signed test request now (type `ping`; not queued, not retried) and show the answer."""
    from metrosight.outbound.webhooks import ping  # heavy: the HTTP client

    c = cli_context(ctx)
    rt = c.services()
    with governed():
        out = ping(rt.store.webhooks, c.actor(rt), webhook, rt.settings.outbound.webhooks)
    shown = f"HTTP {out.status_code}" if out.status_code is not None else "no answer"
    c.out.print(f"webhook {webhook}: {shown} in {out.latency_ms:.0f} ms" + (f" ({out.error})" if out.error else ""))
    if not out.delivered:
        raise typer.Exit(1)


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    ctx: typer.Context,
    webhook: Annotated[int | None, typer.Option("--webhook", min=1, max=MAX_ID, help="of this webhook only")] = None,
    state: Annotated[
        str | None, typer.Option("--state", help="pending, delivering, delivered, dead or cancelled")
    ] = None,
    attempts: Annotated[
        int | None, typer.Option("--attempts", min=1, max=MAX_ID, help="every attempt of this delivery")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per row")] = False,
) -> None:
    """The delivery log, newest first: state, attempts, last status code, latency and error (never a body)."""
    c = cli_context(ctx)
    rt = c.services()
    actor = c.actor(rt)
    if attempts is not None:
        with governed():
            tries = rt.store.webhooks.attempts(actor, attempts)
        if as_json:
            for a in tries:
                c.emit(_json(a))
            return
        t = Table("attempt", "at", "status", "latency ms", "error")
        for a in tries:
            t.add_row(str(a.number), when(a.at), str(a.status_code or "-"), f"{a.latency_ms:.0f}", a.error or "")
        c.out.print(t)
        return
    with governed():
        rows = rt.store.webhooks.deliveries(actor, webhook, state, limit)
    if as_json:
        for d in rows:
            c.emit(_json(d))
        return
    table = Table("id", "webhook", "event", "type", "state", "attempts", "status", "latency ms", "next", "error")
    for d in rows:
        table.add_row(
            str(d.id),
            str(d.subscription_id),
            d.event_id,
            d.event_type,
            d.state,
            str(d.attempts),
            str(d.last_status or "-"),
            f"{d.last_latency_ms:.0f}" if d.last_latency_ms is not None else "-",
            when(d.next_attempt_at),
            d.last_error or "",
        )
    c.out.print(table)


@webhooks_app.command("retry")
def webhooks_retry(
    ctx: typer.Context,
    delivery: Annotated[int | None, typer.Argument(min=1, max=MAX_ID, help="a dead delivery's id")] = None,
    webhook: Annotated[
        int | None, typer.Option("--webhook", min=1, max=MAX_ID, help="every dead delivery of this webhook")
    ] = None,
) -> None:
    """Queue dead deliveries again (one, or every dead one of a webhook); they are attempted at once."""
    from datetime import timedelta

    if (delivery is None) == (webhook is None):
        fail("give a delivery id or --webhook ID (not both)")
    c = cli_context(ctx)
    rt = c.services()
    give_up = timedelta(hours=rt.settings.outbound.webhooks.give_up_hours)
    with governed():
        n = rt.store.webhooks.retry(c.actor(rt), delivery, webhook, give_up)
    c.out.print(f"{n} dead deliveries queued again")
