"""``metrosight sso …``: links between people at the OpenID provider and metrosight users (admin only; audited).

A person who signs in through the provider gets a user of their own; an admin may instead link their subject (or,
before their first sign-in, their *verified* e-mail address) to an existing user, which makes the two one person.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from metrosight.cli.common import fail, governed, when
from metrosight.cli.context import cli_context
from metrosight.config.model import Settings

sso_app = typer.Typer(help="Single sign-on: link provider identities to users.", no_args_is_help=True)

Subject = Annotated[str | None, typer.Option("--subject", help="the provider's subject (the ID token's sub)")]
Email = Annotated[
    str | None,
    typer.Option("--email", help="link whoever first signs in with this address, verified by the provider"),
]
Issuer = Annotated[str | None, typer.Option("--issuer", help="the provider (default: auth.oidc.issuer)")]


def check_sso(settings: Settings) -> None:
    """Exits with one line when single sign-on is configured but its client secret cannot be read (``serve``
    reads it at start; ``config check`` says so first)."""
    if settings.auth.oidc is not None:
        try:
            settings.auth.oidc.secret()
        except ValueError as exc:
            fail(str(exc))


def _issuer(ctx: typer.Context, given: str | None) -> str:
    if given:
        return given
    oidc = cli_context(ctx).settings().auth.oidc
    if oidc is None:
        fail("single sign-on is not configured (auth.oidc); pass --issuer or --config")
    return oidc.issuer


@sso_app.command("link")
def sso_link(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="the existing user the provider's person acts as")],
    subject: Subject = None,
    email: Email = None,
    issuer: Issuer = None,
) -> None:
    """Link a provider identity to an existing user (admin only; audited). A subject that signed in before and got
    a user of its own moves to USER; that user is disabled."""
    if (subject is None) == (email is None):
        fail("give --subject SUB or --email ADDRESS")
    c = cli_context(ctx)
    rt = c.services()
    iss = _issuer(ctx, issuer)
    with governed():
        info = rt.store.identities.link(user, iss, c.actor(rt), subject=subject, email=email)
    what = f"subject {info.subject}" if info.subject else f"the verified address {info.email}"
    c.out.print(f"{info.user}: linked to {what} at {info.issuer}", highlight=False)


@sso_app.command("unlink")
def sso_unlink(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="the user to unlink")],
    subject: Subject = None,
    email: Email = None,
    issuer: Issuer = None,
) -> None:
    """Remove a link (admin only; audited): the subject's next sign-in gets a user of its own."""
    if (subject is None) == (email is None):
        fail("give --subject SUB or --email ADDRESS")
    c = cli_context(ctx)
    rt = c.services()
    with governed():
        rt.store.identities.unlink(user, _issuer(ctx, issuer), c.actor(rt), subject=subject, email=email)
    c.out.print(f"{user}: unlinked", highlight=False)


@sso_app.command("list")
def sso_list(ctx: typer.Context, user: Annotated[str, typer.Argument(help="whose identities")]) -> None:
    """The provider identities a user acts through (admins: anyone's)."""
    c = cli_context(ctx)
    rt = c.services()
    with governed():
        rows = rt.store.identities.of_user(user, c.actor(rt))
    table = Table("issuer", "subject", "waiting for address", "made by", "last sign-in")
    for r in rows:
        table.add_row(
            r.issuer,
            r.subject or "-",
            r.email or "",
            "first sign-in" if r.provisioned else r.created_by,
            when(r.last_login_at),
        )
    c.out.print(table)
