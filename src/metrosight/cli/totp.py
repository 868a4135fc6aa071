"""``metrosight user totp …``: your second factor (TOTP) from the command line: enrol, confirm, status, reset (an
admin resets another user's). Every change is audited by the store (:mod:`metrosight.store.second_factor`)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from metrosight.cli.common import fail, governed
from metrosight.cli.context import cli_context

totp_app = typer.Typer(help="Your second factor (an authenticator app's TOTP codes).", no_args_is_help=True)


@totp_app.command("enrol")
def totp_enrol(ctx: typer.Context) -> None:
    """Begin enrolling an authenticator app for the --as user: prints the secret (text and otpauth:// URI, and a QR
    code in a terminal) once, then asks for a code from the app to confirm it (or run `user totp confirm CODE`).
    An account whose role needs a second factor may run this after its password alone."""
    c = cli_context(ctx)
    rt = c.services()
    actor = c.actor(rt, enrolling=True)
    with governed():
        e = rt.store.second_factor.begin(actor, rt.settings.totp.issuer)
    c.out.print(f"secret for {actor.name} (type it into the app, or scan the code below):", highlight=False)
    c.emit(e.secret)
    c.emit(e.uri)
    if sys.stdout.isatty():
        import segno  # the QR code, only in a terminal

        segno.make(e.uri, error="m").terminal(compact=True)
    if not sys.stdin.isatty():
        c.err.print(f"confirm with a code from the app: metrosight --as {actor.name} user totp confirm CODE")
        return
    code = str(typer.prompt("code the app shows now", err=True))
    _confirm(ctx, code)


@totp_app.command("confirm")
def totp_confirm(ctx: typer.Context, code: Annotated[str, typer.Argument(help="the code the app shows now")]) -> None:
    """Confirm your begun enrolment with a code from the app; prints the recovery codes (once: keep them offline)."""
    _confirm(ctx, code)


def _confirm(ctx: typer.Context, code: str) -> None:
    c = cli_context(ctx)
    rt = c.services()
    actor = c.actor(rt, enrolling=True)
    with governed():
        codes = rt.store.second_factor.confirm(actor, code, rt.settings.totp.recovery_codes)
    c.out.print(
        f"second factor of {actor.name} enabled; recovery codes (each works once instead of a code; shown only now):",
        highlight=False,
    )
    for rc in codes:
        c.emit(rc)


@totp_app.command("status")
def totp_status(
    ctx: typer.Context, name: Annotated[str | None, typer.Argument(help="whose (default: you; others: admins)")] = None
) -> None:
    """Whether a user has a second factor, and how many recovery codes are left."""
    c = cli_context(ctx)
    rt = c.services()
    own = name is None or name == c.user
    actor = c.actor(rt, enrolling=own)  # another user's: only a fully signed-in admin
    who = name or actor.name
    if who != actor.name and not actor.has("admin"):
        fail(f"{actor.name} may see only their own second factor (admins see anyone's)")
    st = rt.store.second_factor.status(who)
    state = "enabled" if st.enrolled else "begun, not confirmed" if st.pending else "none"
    c.out.print(f"{who}: second factor {state}; {st.recovery_left} recovery code(s) left", highlight=False)


@totp_app.command("reset")
def totp_reset(ctx: typer.Context, name: Annotated[str, typer.Argument(help="whose second factor to remove")]) -> None:
    """Remove a second factor: your own (you signed in with its code), or another user's as an admin (audited).
    The user enrols again; their sessions signed in with it end."""
    c = cli_context(ctx)
    rt = c.services()
    actor = c.actor(rt)
    with governed():
        had = rt.store.second_factor.reset(name, actor)
    c.out.print(
        f"second factor of {name} {'removed' if had else 'was not set up'}; they enrol again with "
        f"`metrosight --as {name} user totp enrol`",
        highlight=False,
    )
