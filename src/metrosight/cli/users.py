"""``metrosight user …``: users, their roles and passwords (every change audited)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from metrosight.cli.common import fail, governed
from metrosight.cli.context import cli_context
from metrosight.policy.passwords import new_password_hash
from metrosight.policy.rules import Actor

if TYPE_CHECKING:
    from metrosight.services.suite import Services

user_app = typer.Typer(help="Users and their roles.", no_args_is_help=True)


def nobody_has_a_password(rt: Services) -> bool:
    """True on an installation where no user has a password yet (made before the CLI asked for credentials)."""
    return not any(u.has_password for u in rt.store.accounts.users(Actor("system", frozenset({"admin"}))))


def ask_new_password(name: str) -> str:
    """Ask for a new user's password twice (hidden in a terminal; two lines of standard input otherwise); returns
    its hash. Exits with one line when the password policy refuses it."""
    with governed():  # the password policy: 12+ characters, not common, not built on the user or service name
        pw_hash = new_password_hash(
            typer.prompt(f"new password for {name}", hide_input=True, confirmation_prompt=True, err=True), name
        )
    return pw_hash


@user_app.command("add")
def user_add(
    ctx: typer.Context,
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
    c = cli_context(ctx)
    rt = c.services()
    first = rt.store.users.count() == 0
    if first and not password:
        fail("the first user is the installation's admin and needs a password (drop --no-password)")
    actor = None if first and not c.user else c.actor(rt)
    pw_hash = ask_new_password(name) if password else None
    with governed():
        rt.store.users.add(name, role, actor, pw_hash)
    c.out.print(f"added user {name} ({', '.join(sorted(set(role)))})")


@user_app.command("password")
def user_password(ctx: typer.Context, name: Annotated[str, typer.Argument(help="whose password to set")]) -> None:
    """Set a user's password: your own (asks for the current one), or reset anyone's as an admin. Either way the
    user's API tokens are revoked and their sessions end; after a reset the account holds no role until its user
    sets their own password. On an installation where nobody has a password yet (made before the CLI asked for
    credentials), an admin's first password can be set without one."""
    c = cli_context(ctx)
    rt = c.services()
    accounts = rt.store.accounts
    if nobody_has_a_password(rt):
        with governed():
            target = rt.store.users.actor(name)
        if not target.has("admin"):
            fail(f"nobody has a password yet: set an admin's first (not {name}, who is not an admin)")
        actor = target
    else:
        actor = c.actor(rt)
    current = None
    if actor.name == name and accounts.session_user(name)[1]:  # changing your own: the current password too
        current = str(typer.prompt(f"current password for {name}", hide_input=True, err=True))
    pw = typer.prompt(f"new password for {name}", hide_input=True, confirmation_prompt=True, err=True)
    with governed():
        revoked = accounts.set_password(name, pw, actor, current)
    reset = " (a reset: the account holds no role until its user sets their own password)" if actor.name != name else ""
    c.out.print(f"password of {name} set{reset}; {revoked} API token(s) revoked, sessions ended", highlight=False)


@user_app.command("list")
def user_list(ctx: typer.Context) -> None:
    """List users and roles."""
    c = cli_context(ctx)
    rt = c.services()
    table = Table("user", "roles", "disabled")
    for name, roles, disabled in rt.store.users.all():
        table.add_row(name, ", ".join(roles), "yes" if disabled else "")
    c.out.print(table)
