"""The context of one command: global options, consoles, settings, the installation and the acting user.

The root callback (:mod:`metrosight.cli.app`) builds one :class:`CliContext` per invocation and stores it in
``typer.Context.obj``; commands take ``ctx: typer.Context`` and read it with :func:`cli_context`. Nothing about a
command's run lives in module state, so the app can be invoked many times in one process (tests do).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from metrosight.cli.common import fail, governed
from metrosight.config.home import Home
from metrosight.config.load import ConfigError, load_settings
from metrosight.config.model import Settings
from metrosight.console import SafeConsole
from metrosight.policy.crypto import MASTER_KEY_ENV, CryptoError
from metrosight.policy.rules import Actor
from metrosight.store.accounts import Accounts
from metrosight.store.db import StoreError

if TYPE_CHECKING:
    from metrosight.services.suite import Services

TOKEN_ENV = "METROSIGHT_TOKEN"
PASSWORD_ENV = "METROSIGHT_PASSWORD"
TOTP_ENV = "METROSIGHT_TOTP"  # the second factor's code (or a recovery code) for a password sign-in


def _stdout_console() -> SafeConsole:
    return SafeConsole(soft_wrap=True)  # user-supplied text printed as text (metrosight/console.py)


def _stderr_console() -> SafeConsole:
    return SafeConsole(stderr=True, soft_wrap=True)


@dataclass
class CliContext:
    """What every command of one invocation shares.

    Attributes:
        home_dir: ``--home`` (or ``$METROSIGHT_HOME``); None for the default home.
        config: ``--config`` given before the command; None for the built-in defaults.
        user: ``--as`` (or ``$METROSIGHT_USER``): who claims to act; checked by :meth:`actor`.
        out: console for results (standard output); prints user-supplied text as text.
        err: console for progress, notes and errors (standard error).
    """

    home_dir: Path | None = None
    config: Path | None = None
    user: str | None = None
    out: SafeConsole = field(default_factory=_stdout_console)
    err: SafeConsole = field(default_factory=_stderr_console)
    authenticated: Actor | None = None  # the actor, once :meth:`actor` has checked the credential
    opened: list[Services] = field(
        default_factory=list
    )  # by :meth:`services`; their stores are signed at :meth:`close`

    def emit(self, line: str) -> None:
        """One line of machine-readable output (a JSON object, an alert line, a token) on standard output, flushed
        at once so that a reader of a long run sees each line as it happens."""
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def settings(self, config: Path | None = None) -> Settings:
        """The settings of ``config`` (a command's own ``--config``), else of the global ``--config``.

        Exits with one error line naming the failing key when the file is invalid."""
        try:
            return load_settings(config or self.config)
        except ConfigError as exc:
            fail(f"invalid configuration: {exc}")

    def home(self) -> Home:
        """The home directory (``--home``, ``$METROSIGHT_HOME`` or the default), created if needed."""
        try:
            return Home.resolve(self.home_dir).ensure()
        except OSError as exc:
            fail(f"cannot use home directory: {exc}", 1)

    def services(self, config: Path | None = None, settings: Settings | None = None) -> Services:
        """The installation's services (store, keys, models; :class:`metrosight.services.suite.Services`) for these
        settings (``settings``, else those of ``config``); one error line when the home or the store cannot be
        opened."""
        # heavy: the services load the model backends (OpenCV, dlib, onnxruntime); commands that need no
        # installation (config check, plan, --help) must not pay for it
        from metrosight.services.suite import Services

        settings = settings or self.settings(config)
        try:
            svc = Services.open(Home.resolve(self.home_dir), settings)
        except StoreError as exc:
            fail(str(exc), 1)
        except CryptoError as exc:  # the master key: not a key, an empty METROSIGHT_MASTER_KEY, a folder
            fail(
                f"{exc} — set the installation's master key (the same {MASTER_KEY_ENV} on every host, or master.key "
                "from the backup keys file: `metrosight restore`)",
                1,
            )
        except OSError as exc:
            fail(f"cannot use home directory: {exc}", 1)
        self.opened.append(svc)
        return svc

    def close(self) -> None:
        """At the end of the command: every store it opened signs the newest audit head it wrote."""
        for svc in self.opened:
            svc.store.checkpoint()

    def actor(self, rt: Services, *, enrolling: bool = False) -> Actor:
        """The authenticated user doing a governed action (anything audited as a person's act).

        The credential is, in this order: an API token in ``METROSIGHT_TOKEN`` (it names its user; ``--as``, if
        given, must agree), the password in ``METROSIGHT_PASSWORD`` for ``--as USER``, or a hidden password prompt
        when the command runs in a terminal. A user with a second factor then gives its code (``METROSIGHT_TOTP``
        or a prompt; a recovery code works once); a user whose role needs one (``totp.required_roles``) and who has
        none may only enrol it (``enrolling``). The environment variables are removed once read, so that child
        processes do not inherit them. A refused credential is audited and ends the command with one line; the
        actor is asked for once per command.
        """
        if self.authenticated is None:
            token = os.environ.pop(TOKEN_ENV, None)
            accounts = rt.store.accounts
            if token:
                self.authenticated = self._token_actor(accounts, token)
            else:
                actor = self._password_actor(rt, accounts)
                self._second_factor(rt, actor, enrolling)
                self.authenticated = actor
        return self.authenticated

    def _second_factor(self, rt: Services, actor: Actor, enrolling: bool) -> None:
        """The code step after a right password (see :meth:`actor`); ends the command with one line when it fails."""
        from metrosight.policy.totp import enrol_restriction  # the second factor's rules
        from metrosight.store.second_factor import Check

        factors = rt.store.second_factor
        if not factors.enrolled(actor.name):
            why = enrol_restriction(actor, "pwd", rt.settings.totp.required_roles)
            if why and not enrolling:
                fail(why)
            return
        code = os.environ.pop(TOTP_ENV, None)
        if code is None:
            if not sys.stdin.isatty():
                fail(
                    f"{actor.name} signs in with a second factor: run this in a terminal to be asked for the code, or "
                    f"set {TOTP_ENV} (or use an API token in {TOKEN_ENV})"
                )
            code = typer.prompt(f"code from {actor.name}'s authenticator app", hide_input=False, err=True)
        with governed():
            result = factors.verify(actor.name, str(code))
            if result not in (Check.TOTP, Check.RECOVERY):
                reason = "code already used" if result is Check.REPLAYED else "wrong code"
                rt.store.audit.record(actor.name, "auth.totp_failed", actor.name, {"via": "cli", "reason": reason})
        if result is Check.REPLAYED:
            fail(f"that code of {actor.name}'s was already used; wait for the next one")
        if result not in (Check.TOTP, Check.RECOVERY):
            fail(f"wrong code for {actor.name}: type the 6-digit code the authenticator app shows now")

    def _token_actor(self, accounts: Accounts, token: str) -> Actor:
        with governed():
            actor = accounts.token_actor(token.strip())
        if actor is None:
            fail(f"{TOKEN_ENV} is not a valid API token (unknown, revoked or expired, or its user is disabled)")
        if self.user and self.user != actor.name:
            fail(f"{TOKEN_ENV} acts as {actor.name}, not {self.user}: drop --as, or use {self.user}'s credential")
        return actor

    def _password_actor(self, rt: Services, accounts: Accounts) -> Actor:
        user = self.user
        if not user:
            fail("this action needs a user: pass --as USER (create users with `metrosight user add`)")
        password = os.environ.pop(PASSWORD_ENV, None)
        if password is None:
            if not sys.stdin.isatty():
                fail(
                    f"{user} must authenticate: run this in a terminal to be asked for the password, or set "
                    f"{TOKEN_ENV} (an API token from `metrosight token create`) or {PASSWORD_ENV}"
                )
            password = typer.prompt(f"password for {user}", hide_input=True, err=True)
        with governed():
            actor = accounts.authenticate(user, password)
            if actor is None:
                rt.store.audit.record("anonymous", "cli.auth_failed", user, {"user": user})
        if actor is None:
            fail(
                f"wrong password for {user!r}, or no such enabled user with a password "
                "(an admin sets one with `metrosight user password NAME`)"
            )
        return actor


def cli_context(ctx: typer.Context) -> CliContext:
    """The :class:`CliContext` the root callback stored for this invocation (typed access to ``ctx.obj``)."""
    obj = ctx.find_object(CliContext)
    if obj is None:  # a command invoked without the root app's callback: a programming error
        raise RuntimeError("metrosight command run outside the metrosight app (no CliContext)")
    return obj
