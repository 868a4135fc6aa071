"""``metrosight alert …``: review alerts (two different operators must confirm one), handle their alarms (claim,
release, take over, acknowledge), export their crops."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from metrosight.cli.alarms import alarm_cell, step_line
from metrosight.cli.common import MAX_ID, governed, when
from metrosight.cli.context import cli_context
from metrosight.store.models import AlertRecord
from metrosight.store.scoping import ALERT_READERS

if TYPE_CHECKING:
    from metrosight.services.suite import Services

alert_app = typer.Typer(help="Review alerts: two different operators must confirm one.", no_args_is_help=True)

AlertId = Annotated[int, typer.Argument(min=1, max=MAX_ID, help="alert id")]


def watchlists_of(a: AlertRecord) -> str:
    """The watchlists an alert's person was matched on, comma-separated (the alert's own list when none)."""
    return ", ".join(dict.fromkeys(e["watchlist"] for e in a.entries or [])) or a.watchlist


def seen_span(a: AlertRecord) -> str:
    """When the alert's person was seen: wall-clock UTC times, or media seconds for alerts from a video file."""
    if a.first_at is None or a.last_at is None:
        return f"{a.first_seen:.1f}–{a.last_seen:.1f} s"
    first, last = datetime.fromtimestamp(a.first_at, UTC), datetime.fromtimestamp(a.last_at, UTC)
    return f"{first:%H:%M:%S}–{last:%H:%M:%S} UTC"


@alert_app.command("list")
def alert_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option("--status", help="new, confirmed_once, actionable, rejected")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Alerts (one per person and episode), newest first, with how many sightings on which cameras."""
    c = cli_context(ctx)
    rt = c.services()
    actor = c.actor(rt)
    with governed():
        rows = rt.store.reviews.all(actor, status)
    found = rt.store.feed.alert_cameras([a.id for a in rows], rt.store.scoping.view(actor, ALERT_READERS))
    cams = {a.id: found.get(a.id) or [a.camera_id] for a in rows}
    if as_json:
        for a in rows:
            c.emit(json.dumps(_alert_json(a, cams[a.id])))
        return
    table = Table("id", "cameras", "subject", "watchlists", "score", "seen", "sightings", "status", "alarm", "raised")
    for a in rows:
        table.add_row(
            str(a.id),
            ", ".join(cams[a.id]),
            a.subject_name,
            watchlists_of(a),
            f"{a.score:.3f}",
            seen_span(a),
            str(a.sightings),
            a.status,
            alarm_cell(a),
            when(a.created_at),
        )
    c.out.print(table)


def _alert_json(a: AlertRecord, cameras: list[str]) -> dict[str, object]:
    return {
        "id": a.id,
        "camera": a.camera_id,
        "cameras": cameras,
        "subject": a.subject_name,
        "person_id": a.person_id,
        "watchlist": a.watchlist,
        "watchlists": watchlists_of(a).split(", "),
        "score": a.score,
        "first_seen": a.first_seen,
        "last_seen": a.last_seen,
        "first_at": a.first_at,
        "last_at": a.last_at,
        "sightings": a.sightings,
        "status": a.status,
        "created_at": a.created_at.isoformat(),
        "alarm": None
        if a.alarm_state is None
        else {
            "state": a.alarm_state,
            "priority": a.priority,
            "owner": a.owner,
            "escalate_at": a.escalate_at,
            "escalate_to": a.escalate_to,
            "escalated_at": a.escalated_at,
        },
    }


@alert_app.command("show")
def alert_show(ctx: typer.Context, alert_id: AlertId) -> None:
    """One alert: the person, every list and authorisation they were matched on, every sighting (camera, time,
    score, crop), its reviews, and earlier rejected alerts of the same person (so a known false match shows)."""
    c = cli_context(ctx)
    out = c.out
    rt = c.services()
    actor = c.actor(rt)
    with governed():
        a, reviews, earlier = rt.store.reviews.detail(alert_id, actor)
    person = f" (person {a.person_id})" if a.person_id is not None else ""
    out.print(
        f"alert {a.id}: {a.subject_name}{person}, {a.category}, best score {a.score:.3f}, "
        f"{a.sightings} sighting(s), seen {seen_span(a)}, status {a.status}",
        highlight=False,
    )
    for e in a.entries or [{"watchlist": a.watchlist, "name": a.subject_name, "category": a.category}]:
        out.print(
            f"  on {e['watchlist']} ({e['category']}) as {e['name']!r}: ref. {e.get('reference') or '-'}, "
            f"{e.get('authority') or '-'}, {e.get('legal_basis') or '-'}",
            highlight=False,
        )
    for i, sg in enumerate(rt.store.reviews.sightings(a.id, actor), 1):
        at = datetime.fromtimestamp(sg.first_at, UTC)
        out.print(
            f"  sighting {i}: {sg.camera_id} track {sg.track_id} at {at:%Y-%m-%d %H:%M:%S} UTC, "
            f"{sg.first_seen:.2f}–{sg.last_seen:.2f} s of its video, score {sg.score:.3f}, "
            f"crop {'yes' if sg.crop_path else 'no'}",
            highlight=False,
        )
    for r in reviews:
        out.print(f"  {r.action} by {r.user} at {when(r.at)}" + (f": {r.reason}" if r.reason else ""), highlight=False)
    if a.alarm_state is not None:
        out.print(f"  alarm: {alarm_cell(a)} (policy of {a.policy_watchlist})", highlight=False)
        for t in rt.store.alarms.history([a.id])[a.id]:
            out.print(f"    {step_line(t)}", highlight=False)
    if earlier:
        out.print(Text(f"  {len(earlier)} earlier alert(s) for this person were rejected:", style="yellow"))
        for r in earlier[:5]:
            out.print(f"    alert {r.alert_id} by {r.user}: {r.reason}", highlight=False)


@alert_app.command("confirm")
def alert_confirm(ctx: typer.Context, alert_id: AlertId) -> None:
    """Confirm an alert; a second, different operator's confirmation makes it actionable."""
    c = cli_context(ctx)
    rt = c.services()
    with governed():
        actor = c.actor(rt)
        status = rt.store.reviews.review(alert_id, actor, "confirm")
    _announce(rt, alert_id, actor.name)
    c.out.print(f"alert {alert_id}: {status}" + (" (needs a second operator)" if status == "confirmed_once" else ""))


@alert_app.command("reject")
def alert_reject(
    ctx: typer.Context,
    alert_id: AlertId,
    reason: Annotated[str, typer.Option("--reason", help="why it is wrong (kept as feedback)")],
) -> None:
    """Reject an alert with a reason."""
    c = cli_context(ctx)
    rt = c.services()
    with governed():
        actor = c.actor(rt)
        status = rt.store.reviews.review(alert_id, actor, "reject", reason)
    _announce(rt, alert_id, actor.name)
    c.out.print(f"alert {alert_id}: {status}")


def _announce(rt: Services, alert_id: int, reviewer: str) -> None:
    """The review just made, to the outbound channels (webhooks queue it; a running host delivers it)."""
    from metrosight.bus.topics import ALERT_REVIEWS
    from metrosight.outbound.hosts import dispatch_once  # heavy: the channels' clients

    payload = rt.store.reviews.announcement(alert_id, reviewer)
    if payload is not None:
        dispatch_once(rt, ALERT_REVIEWS, payload)


def _alarm_step(ctx: typer.Context, alert_id: int, action: str, reason: str | None = None) -> None:
    c = cli_context(ctx)
    rt = c.services()
    with governed():
        step = rt.store.alarms.act(alert_id, c.actor(rt), action, reason)
    c.out.print(f"alert {alert_id}: alarm {alarm_cell(step.alert)}", highlight=False)


@alert_app.command("claim")
def alert_claim(ctx: typer.Context, alert_id: AlertId) -> None:
    """Claim an alert's alarm: you handle it, and every operator sees so (refused when someone else has: take it
    over instead)."""
    _alarm_step(ctx, alert_id, "claim")


@alert_app.command("release")
def alert_release(ctx: typer.Context, alert_id: AlertId) -> None:
    """Release your claim on an alarm (it is new again)."""
    _alarm_step(ctx, alert_id, "release")


@alert_app.command("takeover")
def alert_takeover(
    ctx: typer.Context,
    alert_id: AlertId,
    reason: Annotated[str, typer.Option("--reason", help="why (the previous owner and the audit log see it)")],
) -> None:
    """Take over an alarm another operator has claimed (audited, with the reason)."""
    _alarm_step(ctx, alert_id, "takeover", reason)


@alert_app.command("ack")
def alert_ack(ctx: typer.Context, alert_id: AlertId) -> None:
    """Acknowledge an alarm you have claimed (an unclaimed one is claimed and acknowledged at once): it will not
    escalate. Not a confirmation of the alert (that stays two operators' `alert confirm`)."""
    _alarm_step(ctx, alert_id, "acknowledge")


@alert_app.command("crop")
def alert_crop(
    ctx: typer.Context,
    alert_id: AlertId,
    output: Annotated[Path, typer.Option("--out", help="where to write the decrypted JPEG")],
    sighting: Annotated[
        int | None, typer.Option("--sighting", min=1, max=MAX_ID, help="the N-th sighting's crop (as in `alert show`)")
    ] = None,
) -> None:
    """Export an alert's redacted best-shot crop (decrypted; audited)."""
    c = cli_context(ctx)
    rt = c.services()
    with governed():
        data = rt.store.reviews.read_crop(alert_id, c.actor(rt), sighting)
    output.write_bytes(data)
    c.out.print(f"wrote {output}")
