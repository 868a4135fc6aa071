"""``metrosight user …``: users, their roles and passwords (every change audited)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from metrosight.cli.common import fail, governed
from metrosight.cli.context import cli_context
from metrosight.cli.totp import totp_app
from metrosight.core.names import same_name
from metrosight.policy.passwords import new_password_hash
from metrosight.policy.rules import Actor
from metrosight.policy.scope import SCOPE_SYNTAX, Scope
from metrosight.store.scoping import scopable

if TYPE_CHECKING:
    from metrosight.services.suite import Services

user_app = typer.Typer(help="Users and their roles.", no_args_is_help=True)
user_app.add_typer(totp_app, name="totp")


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


ScopeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--scope",
        help=f"limit the roles to camera groups and/or watchlists: {SCOPE_SYNTAX}; repeatable (both kinds: a "
        "role covers what is on those cameras AND those lists); admin and auditor stay global",
    ),
]


def _scopes(roles: list[str], items: list[str] | None, only: str | None = None) -> dict[str, Scope]:
    """The scope of ``items`` for each scopable role of ``roles`` (``only``: that role alone)."""
    if not items:
        return {}
    with governed():
        scope = Scope.parse(items)
    targets = [only] if only else scopable(roles)
    if not targets:
        fail(f"--scope: none of the roles {', '.join(sorted(set(roles)))} can be scoped (admin and auditor are global)")
    return dict.fromkeys(targets, scope)


def _describe(roles: list[str], scopes: dict[str, list[str]]) -> str:
    return ", ".join(f"{r} ({' '.join(scopes[r])})" if r in scopes else r for r in sorted(set(roles)))


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
    scope: ScopeOption = None,
) -> None:
    """Add a user. The very first user needs no --as, must be an admin and sets a password; after that an
    (authenticated) admin adds users. ``--scope`` limits every role given but admin and auditor to camera groups
    (configuration ``camera_groups``, or a camera's line or group) and/or watchlists."""
    c = cli_context(ctx)
    rt = c.services()
    first = rt.store.users.count() == 0
    if first and not password:
        fail("the first user is the installation's admin and needs a password (drop --no-password)")
    actor = None if first and not c.user else c.actor(rt)
    scopes = _scopes(role, scope)
    pw_hash = ask_new_password(name) if password else None
    with governed():
        rt.store.users.add(name, role, actor, pw_hash, scopes=scopes)
    shown = {r: s.items() for r, s in scopes.items()}
    c.out.print(f"added user {name} ({_describe(role, shown)})", highlight=False)


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
    if same_name(actor.name, name) and accounts.session_user(name)[1]:  # changing your own: the current password too
        current = str(typer.prompt(f"current password for {name}", hide_input=True, err=True))
    pw = typer.prompt(f"new password for {name}", hide_input=True, confirmation_prompt=True, err=True)
    with governed():
        revoked = accounts.set_password(name, pw, actor, current)
    own = same_name(actor.name, name)
    reset = "" if own else " (a reset: the account holds no role until its user sets their own password)"
    c.out.print(f"password of {name} set{reset}; {revoked} API token(s) revoked, sessions ended", highlight=False)


@user_app.command("list")
def user_list(ctx: typer.Context) -> None:
    """List users and roles."""
    c = cli_context(ctx)
    rt = c.services()
    table = Table("user", "roles (scope)", "disabled")
    scopes = rt.store.users.scopes()
    for name, roles, disabled in rt.store.users.all():
        table.add_row(name, _describe(roles, scopes.get(name, {})), "yes" if disabled else "")
    c.out.print(table)


@user_app.command("scope")
def user_scope(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="whose roles to scope")],
    scope: ScopeOption = None,
    role: Annotated[
        str | None, typer.Option("--role", "-r", help="scope this role only (default: every role but admin, auditor)")
    ] = None,
    everything: Annotated[
        bool, typer.Option("--global", help="remove the scope: the role(s) cover every camera and watchlist")
    ] = False,
) -> None:
    """Set the scope of a user's roles (admin only; audited). It applies at the user's next request, and to their
    open live feeds within seconds."""
    if bool(scope) == everything:
        fail("give --scope ITEM (repeatable) or --global")
    c = cli_context(ctx)
    rt = c.services()
    actor = c.actor(rt)
    accounts = rt.store.accounts
    with governed():
        info = next((u for u in accounts.users(actor) if same_name(u.name, name)), None)
    if info is None:
        fail(f"unknown user {name!r}")
    if role is not None and role not in info.roles:
        fail(f"{info.name} does not hold the {role} role (roles: {', '.join(info.roles)})")
    current = {r: Scope.parse(items) for r, items in info.scopes.items()}
    targets = [role] if role else scopable(info.roles)
    if not targets:
        fail(f"none of {info.name}'s roles can be scoped (admin and auditor are global)")
    new = _scopes(info.roles, scope, role) if scope else dict.fromkeys(targets, Scope())
    with governed():
        after = accounts.update_user(info.name, actor, scopes={**current, **new})
    c.out.print(f"{after.name}: {_describe(after.roles, after.scopes)}", highlight=False)
