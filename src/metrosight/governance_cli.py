"""CLI commands for accountability: users, entry approval/revocation, alert review, audit, purge, windows.

Registered on the main Typer app by :mod:`metrosight.cli`. Every command acts as the user given by ``--as``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from metrosight.cli import _actor, _runtime, app, err, fail, governed, out, state, watchlist_app

user_app = typer.Typer(help="Users and their roles.", no_args_is_help=True)
alert_app = typer.Typer(help="Review alerts: two different operators must confirm one.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
privacy_app = typer.Typer(help="No-identification windows.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(alert_app, name="alert")
app.add_typer(audit_app, name="audit")
app.add_typer(privacy_app, name="privacy")

MAX_ID = 2**63 - 1  # database ids: a larger number is refused by the option, not by the database (a traceback)


def _when(dt) -> str:  # type: ignore[no-untyped-def]
    return dt.strftime("%Y-%m-%d %H:%M UTC") if dt else "-"


# -- users ------------------------------------------------------------------------------------------------------
def _nobody_has_a_password(rt) -> bool:  # type: ignore[no-untyped-def]
    from metrosight.policy.rules import Actor
    from metrosight.store.accounts import Accounts

    return not any(u.has_password for u in Accounts(rt.store).users(Actor("system", frozenset({"admin"}))))


def _new_password(name: str) -> str:
    """Ask for a new user's password twice (hidden in a terminal; two lines of standard input otherwise)."""
    from metrosight.policy.passwords import new_password_hash

    with governed():  # the password policy: 12+ characters, not common, not built on the user or service name
        return new_password_hash(
            typer.prompt(f"new password for {name}", hide_input=True, confirmation_prompt=True, err=True), name
        )


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="user name")],
    role: Annotated[list[str], typer.Option("--role", "-r", help="admin, approver, operator, auditor or viewer")],
    password: Annotated[
        bool,
        typer.Option(
            "--password/--no-password",
            help="ask for the new user's password (default); --no-password for a machine user that only uses API "
            "tokens (the first user must have one)",
        ),
    ] = True,
) -> None:
    """Add a user. The very first user needs no --as, must be an admin and sets a password; after that an
    (authenticated) admin adds users."""
    rt = _runtime()
    first = rt.store.user_count() == 0
    if first and not password:
        fail("the first user is the installation's admin and needs a password (drop --no-password)")
    actor = None if first and not state.user else _actor(rt)
    pw_hash = _new_password(name) if password else None
    with governed():
        rt.store.add_user(name, role, actor, pw_hash)
    out.print(f"added user {name} ({', '.join(sorted(set(role)))})")


@user_app.command("password")
def user_password(name: Annotated[str, typer.Argument(help="whose password to set")]) -> None:
    """Set a user's password: your own (asks for the current one), or reset anyone's as an admin. Either way the
    user's API tokens are revoked and their sessions end; after a reset the account holds no role until its user
    sets their own password. On an installation where nobody has a password yet (made before the CLI asked for
    credentials), an admin's first password can be set without one."""
    from metrosight.store.accounts import Accounts

    rt = _runtime()
    accounts = Accounts(rt.store)
    if _nobody_has_a_password(rt):
        with governed():
            target = rt.store.actor(name)
        if not target.has("admin"):
            fail(f"nobody has a password yet: set an admin's first (not {name}, who is not an admin)")
        actor = target
    else:
        actor = _actor(rt)
    current = None
    if actor.name == name and accounts.session_user(name)[1]:  # changing your own: the current password too
        current = str(typer.prompt(f"current password for {name}", hide_input=True, err=True))
    pw = typer.prompt(f"new password for {name}", hide_input=True, confirmation_prompt=True, err=True)
    with governed():
        revoked = accounts.set_password(name, pw, actor, current)
    reset = " (a reset: the account holds no role until its user sets their own password)" if actor.name != name else ""
    out.print(f"password of {name} set{reset}; {revoked} API token(s) revoked, sessions ended", highlight=False)


@user_app.command("list")
def user_list() -> None:
    """List users and roles."""
    rt = _runtime()
    table = Table("user", "roles", "disabled")
    for name, roles, disabled in rt.store.list_users():
        table.add_row(name, ", ".join(roles), "yes" if disabled else "")
    out.print(table)


# -- watchlist entries ------------------------------------------------------------------------------------------
@watchlist_app.command("entries")
def watchlist_entries(
    watchlist: Annotated[str | None, typer.Argument(help="only this watchlist")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Entries with their authorisation, status and expiry."""
    rt = _runtime()
    rows = rt.store.entries(watchlist)
    if as_json:
        for e in rows:
            print(
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
            _when(e.expires_at),
            e.created_by or "",
            e.approved_by or "",
            str(e.templates),
        )
    out.print(table)


@watchlist_app.command("approve")
def watchlist_approve(
    watchlist: Annotated[str, typer.Argument()],
    names: Annotated[list[str] | None, typer.Argument(help="entries to approve")] = None,
    all_pending: Annotated[
        bool, typer.Option("--all-pending", help="approve every pending entry (each audited)")
    ] = False,
) -> None:
    """Activate pending entries. The approver must hold the approver role and must not have recorded them."""
    rt = _runtime()
    actor = _actor(rt)
    if all_pending:
        names = [e.name for e in rt.store.entries(watchlist) if e.status == "pending"]
        if not names:
            fail(f"no pending entries on {watchlist}")
    if not names:
        fail("name the entries to approve, or pass --all-pending")
    from metrosight.core.names import same_name
    from metrosight.core.when import describe

    for name in names:
        with governed():
            rt.store.approve(watchlist, name, actor)
        e = next((e for e in rt.store.entries(watchlist) if same_name(e.name, name)), None)
        until = f" until {describe(e.expires_at, rt.clock.tz, end=True)}" if e is not None and e.expires_at else ""
        out.print(f"approved {watchlist}/{e.name if e is not None else name}: active{until}", highlight=False)


@watchlist_app.command("revoke")
def watchlist_revoke(
    watchlist: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option("--reason", help="why (recorded in the audit log)")],
) -> None:
    """Stop matching an entry at once and destroy its templates."""
    rt = _runtime()
    with governed():
        n = rt.store.revoke(watchlist, name, _actor(rt), reason)
    out.print(f"revoked {watchlist}/{name}; {n} template(s) destroyed", highlight=False)


@watchlist_app.command("shred")
def watchlist_shred(
    watchlist: Annotated[str, typer.Argument()],
    yes: Annotated[bool, typer.Option("--yes", help="confirm: this cannot be undone")] = False,
) -> None:
    """Destroy a watchlist's encryption key and templates (crypto-shredding); its crops become unreadable."""
    if not yes:
        fail("shredding cannot be undone: pass --yes")
    rt = _runtime()
    with governed():
        rt.store.shred_watchlist(watchlist, _actor(rt))
    out.print(f"shredded {watchlist}: its key, templates and crops are unreadable")


# -- alerts -----------------------------------------------------------------------------------------------------
def _lists(a) -> str:  # type: ignore[no-untyped-def]
    return ", ".join(dict.fromkeys(e["watchlist"] for e in a.entries or [])) or a.watchlist


def _span(a) -> str:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    if a.first_at is None:
        return f"{a.first_seen:.1f}–{a.last_seen:.1f} s"
    first, last = datetime.fromtimestamp(a.first_at, UTC), datetime.fromtimestamp(a.last_at, UTC)
    return f"{first:%H:%M:%S}–{last:%H:%M:%S} UTC"


@alert_app.command("list")
def alert_list(
    status: Annotated[str | None, typer.Option("--status", help="new, confirmed_once, actionable, rejected")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Alerts (one per person and episode), newest first, with how many sightings on which cameras."""
    rt = _runtime()
    with governed():
        rows = rt.store.list_alerts(_actor(rt), status)
    from metrosight.store.feed import alert_cameras

    cams = alert_cameras(rt.store, [a.id for a in rows])
    cams = {a.id: cams.get(a.id) or [a.camera_id] for a in rows}
    if as_json:
        for a in rows:
            print(
                json.dumps(
                    {
                        "id": a.id,
                        "camera": a.camera_id,
                        "cameras": cams[a.id],
                        "subject": a.subject_name,
                        "person_id": a.person_id,
                        "watchlist": a.watchlist,
                        "watchlists": _lists(a).split(", "),
                        "score": a.score,
                        "first_seen": a.first_seen,
                        "last_seen": a.last_seen,
                        "first_at": a.first_at,
                        "last_at": a.last_at,
                        "sightings": a.sightings,
                        "status": a.status,
                        "created_at": a.created_at.isoformat(),
                    }
                )
            )
        return
    table = Table("id", "cameras", "subject", "watchlists", "score", "seen", "sightings", "status", "raised")
    for a in rows:
        table.add_row(
            str(a.id),
            ", ".join(cams[a.id]),
            a.subject_name,
            _lists(a),
            f"{a.score:.3f}",
            _span(a),
            str(a.sightings),
            a.status,
            _when(a.created_at),
        )
    out.print(table)


@alert_app.command("show")
def alert_show(alert_id: Annotated[int, typer.Argument(min=1, max=MAX_ID, help="alert id")]) -> None:
    """One alert: the person, every list and authorisation they were matched on, every sighting (camera, time,
    score, crop), its reviews, and earlier rejected alerts of the same person (so a known false match shows)."""
    from datetime import UTC, datetime

    rt = _runtime()
    with governed():
        a, reviews, earlier = rt.store.alert_detail(alert_id, _actor(rt))
    person = f" (person {a.person_id})" if a.person_id is not None else ""
    out.print(
        f"alert {a.id}: {a.subject_name}{person}, {a.category}, best score {a.score:.3f}, "
        f"{a.sightings} sighting(s), seen {_span(a)}, status {a.status}",
        highlight=False,
    )
    for e in a.entries or [{"watchlist": a.watchlist, "name": a.subject_name, "category": a.category}]:
        out.print(
            f"  on {e['watchlist']} ({e['category']}) as {e['name']!r}: ref. {e.get('reference') or '-'}, "
            f"{e.get('authority') or '-'}, {e.get('legal_basis') or '-'}",
            highlight=False,
        )
    for i, sg in enumerate(rt.store.sightings(a.id), 1):
        at = datetime.fromtimestamp(sg.first_at, UTC)
        out.print(
            f"  sighting {i}: {sg.camera_id} track {sg.track_id} at {at:%Y-%m-%d %H:%M:%S} UTC, "
            f"{sg.first_seen:.2f}–{sg.last_seen:.2f} s of its video, score {sg.score:.3f}, "
            f"crop {'yes' if sg.crop_path else 'no'}",
            highlight=False,
        )
    for r in reviews:
        out.print(f"  {r.action} by {r.user} at {_when(r.at)}" + (f": {r.reason}" if r.reason else ""), highlight=False)
    if earlier:
        out.print(Text(f"  {len(earlier)} earlier alert(s) for this person were rejected:", style="yellow"))
        for r in earlier[:5]:
            out.print(f"    alert {r.alert_id} by {r.user}: {r.reason}", highlight=False)


@alert_app.command("confirm")
def alert_confirm(alert_id: Annotated[int, typer.Argument(min=1, max=MAX_ID, help="alert id")]) -> None:
    """Confirm an alert; a second, different operator's confirmation makes it actionable."""
    rt = _runtime()
    with governed():
        status = rt.store.review(alert_id, _actor(rt), "confirm")
    out.print(f"alert {alert_id}: {status}" + (" (needs a second operator)" if status == "confirmed_once" else ""))


@alert_app.command("reject")
def alert_reject(
    alert_id: Annotated[int, typer.Argument(min=1, max=MAX_ID, help="alert id")],
    reason: Annotated[str, typer.Option("--reason", help="why it is wrong (kept as feedback)")],
) -> None:
    """Reject an alert with a reason."""
    rt = _runtime()
    with governed():
        status = rt.store.review(alert_id, _actor(rt), "reject", reason)
    out.print(f"alert {alert_id}: {status}")


@alert_app.command("crop")
def alert_crop(
    alert_id: Annotated[int, typer.Argument(min=1, max=MAX_ID, help="alert id")],
    output: Annotated[Path, typer.Option("--out", help="where to write the decrypted JPEG")],
    sighting: Annotated[
        int | None, typer.Option("--sighting", min=1, max=MAX_ID, help="the N-th sighting's crop (as in `alert show`)")
    ] = None,
) -> None:
    """Export an alert's redacted best-shot crop (decrypted; audited)."""
    rt = _runtime()
    with governed():
        data = rt.store.read_crop(alert_id, _actor(rt), sighting)
    output.write_bytes(data)
    out.print(f"wrote {output}")


# -- audit ------------------------------------------------------------------------------------------------------
@audit_app.command("verify")
def audit_verify() -> None:
    """Check the keyed hash chain against the signed checkpoints; reports the first broken link after any edit,
    deletion (of any entries, the newest or all), re-chaining or reordering, and a missing, truncated or edited
    checkpoint file; then cross-checks approvals, revocations, alert reviews and alert statuses in the database
    against the keyed log and lists every row it does not back. Needs the master key (as every command does), no
    user."""
    rt = _runtime()
    res = rt.store.verify_audit()
    if res.ok:
        out.print(f"audit log OK: {res.checked} entries, chain intact ({res.checkpoints} signed checkpoints)")
        return
    if res.mismatches:  # the chain is intact, but the database holds governed rows it does not back
        for m in res.mismatches:
            out.print(f"NOT BACKED BY THE AUDIT LOG: {m}")
        fail(
            f"audit log intact ({res.checked} entries), but {len(res.mismatches)} governed record(s) in the "
            "database are not backed by it (forged or rolled back by a database writer; listed above)",
            1,
        )
    fail(f"audit log BROKEN at entry {res.broken_seq}: {res.reason}", 1)


@audit_app.command("show")
def audit_show(
    last: Annotated[int, typer.Option("--last", min=1, max=1_000_000, help="how many of the newest entries")] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The newest audit entries (needs the auditor or admin role)."""
    rt = _runtime()
    with governed():
        actor = _actor(rt)
        rows = rt.store.audit_entries(actor, last)
        rt.store.record(actor.name, "audit.read", None, {"entries": len(rows)})
    if as_json:
        for e in rows:
            print(
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
    out.print(table)


# -- retention --------------------------------------------------------------------------------------------------
@app.command()
def purge() -> None:
    """Delete alerts, crops, events and audit entries older than the configured retention periods, and retire
    expired watchlist entries."""
    from metrosight.store.governance import Retention

    rt = _runtime()
    r = rt.settings.privacy.retention
    with governed():
        counts = rt.store.purge(Retention(r.alerts_days, r.crops_days, r.events_days, r.audit_days), _actor(rt))
    out.print("purged: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


# -- no-identification windows ----------------------------------------------------------------------------------
@privacy_app.command("window-add")
def window_add(
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
    from metrosight.core.names import identifiers
    from metrosight.core.when import describe, parse_when

    rt = _runtime()
    now, tz = rt.clock.now(), rt.clock.tz
    with governed():
        starts_at = parse_when(start, now, tz, end=False, what="--from")
        ends_at = parse_when(end, starts_at, tz, end=True, what="--until")  # `--until 6h`: 6 h from the start
        wid = rt.store.add_window(
            name,
            list(identifiers(cameras, "camera id")),
            list(identifiers(lines, "line")),
            starts_at,
            ends_at,
            reason,
            _actor(rt),
            now,  # the clock the dates were read with
        )
    out.print(
        f"no-identification window {wid} ({name}) set from {describe(starts_at, tz)} until {describe(ends_at, tz, end=True)}",
        highlight=False,
    )


@privacy_app.command("window-list")
def window_list() -> None:
    """Current and future no-identification windows."""
    rt = _runtime()
    table = Table("id", "name", "scope", "from", "until", "reason", "by")
    for w in rt.store.windows():
        scope = ", ".join((w.scope or {}).get("cameras", []) + (w.scope or {}).get("lines", [])) or "all cameras"
        table.add_row(str(w.id), w.name, scope, _when(w.starts_at), _when(w.ends_at), w.reason, w.created_by)
    out.print(table)


@privacy_app.command("window-remove")
def window_remove(window_id: Annotated[int, typer.Argument(min=1, max=MAX_ID, help="window id")]) -> None:
    """End a no-identification window."""
    rt = _runtime()
    with governed():
        rt.store.remove_window(window_id, _actor(rt))
    err.print(f"window {window_id} removed")
