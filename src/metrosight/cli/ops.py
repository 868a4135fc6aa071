"""``metrosight doctor``, ``backup`` and ``restore``: thin commands over :mod:`metrosight.ops`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from metrosight.cli.common import fail, governed
from metrosight.cli.context import cli_context
from metrosight.config.home import Home
from metrosight.config.load import ConfigError, load_settings
from metrosight.config.model import Settings
from metrosight.ops.checks import Check, Report, Status
from metrosight.policy.crypto import load_master_key
from metrosight.policy.rules import require
from metrosight.store.repo import CHECKPOINTS_ENV, Store, checkpoint_path

PASSPHRASE_ENV = "METROSIGHT_BACKUP_PASSPHRASE"
MAX_PASSPHRASE_FILE = 4096  # bytes


def doctor(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", help="YAML configuration file (cameras, database)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document: every check with its figures")] = False,
    bus: Annotated[
        str | None, typer.Option("--bus", envvar="METROSIGHT_BUS", help="also check this Redis (redis://…)")
    ] = None,
    codec: Annotated[
        list[str] | None, typer.Option("--codec", help="also require this FFmpeg decoder (repeatable), e.g. hevc")
    ] = None,
    no_cameras: Annotated[bool, typer.Option("--no-cameras", help="do not open the configured cameras")] = False,
    no_models: Annotated[bool, typer.Option("--no-models", help="do not load the models")] = False,
) -> None:
    """Check the host and the installation: Python and packages, FFmpeg decoders, models (hash, load time), the
    home (owner, mode, free space), the database (migrations) and the keys, Redis, and each configured camera (one
    frame: resolution, frame rate, transport). One line per check with what to do; exit 1 if any check fails."""
    # heavy: the checks load the models, FFmpeg probes and the database drivers
    from metrosight.ops.doctor import run_doctor

    c = cli_context(ctx)
    out = c.out
    settings, bad_config = Settings.model_construct(), None  # an invalid configuration: the defaults, no cameras
    try:
        settings = load_settings(config or c.config)
    except ConfigError as exc:  # a failing check like any other (in --json too)
        bad = f"invalid configuration: {exc}"
        bad_config = Check("config", Status.FAIL, bad, "fix the key it names (`metrosight config check FILE`)")
    report = run_doctor(
        settings,
        Home.resolve(c.home_dir).root,
        bus_url=bus,
        codecs=tuple(codec or ()),
        cameras=not no_cameras and bad_config is None,
        models=not no_models,
    )
    if bad_config is not None:
        report = Report([bad_config, *report.checks])
    if as_json:
        out.print_json(json.dumps({"ok": report.ok, "checks": [check.as_dict() for check in report.checks]}))
    else:
        for check in report.checks:
            out.print(check.line(), highlight=False, soft_wrap=True, markup=False)
        out.print("all checks passed" if report.ok else "some checks failed", highlight=False)
    raise typer.Exit(0 if report.ok else 1)


def read_passphrase(file: Path | None, confirm: bool) -> str:
    """From ``--passphrase-file``, else ``METROSIGHT_BACKUP_PASSPHRASE`` (removed once read), else a hidden prompt."""
    if file is not None:
        try:
            with file.open("rb") as f:
                raw = f.read(MAX_PASSPHRASE_FILE + 1)  # bounded: a device such as /dev/zero never ends
        except OSError as exc:
            fail(f"cannot read the passphrase file {file}: {exc.strerror}")
        if len(raw) > MAX_PASSPHRASE_FILE:
            fail(f"the passphrase file {file} is over {MAX_PASSPHRASE_FILE} bytes: it should hold the passphrase only")
        try:
            return raw.decode("utf-8-sig").rstrip("\r\n")  # a byte-order mark (Windows editors) is not part of it
        except UnicodeDecodeError:
            fail(f"the passphrase file {file} is not UTF-8 text: save the passphrase as UTF-8")
    env = os.environ.pop(PASSPHRASE_ENV, None)
    if env is not None:
        return env
    if not sys.stdin.isatty():
        fail(f"a backup passphrase is needed: give --passphrase-file FILE or set {PASSPHRASE_ENV}")
    return str(typer.prompt("backup passphrase", hide_input=True, confirmation_prompt=confirm, err=True))


def backup(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the data file (NAME.backup)")],
    keys_out: Annotated[
        Path | None, typer.Option("--keys-out", help="folder for the keys file (default --out; keep them apart)")
    ] = None,
    passphrase_file: Annotated[
        Path | None, typer.Option("--passphrase-file", help="read the keys file's passphrase from this file")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML configuration file")] = None,
) -> None:
    """Back up the installation (admin): a consistent snapshot of the database (SQLite online backup, or pg_dump),
    the encrypted media and the audit checkpoints in NAME.backup, and the master key in NAME.keys, sealed under a
    passphrase (at least 12 characters). Audited as backup.create."""
    # heavy: the backup loads the database dump tools and the sealing
    from metrosight.ops.backup import BackupError, create_backup

    c = cli_context(ctx)
    out = c.out
    rt = c.services(config)
    actor = c.actor(rt)
    with governed():
        require(actor, "back up the installation", "admin")
    phrase = read_passphrase(passphrase_file, confirm=True)
    root = rt.home.root
    try:
        res = create_backup(
            rt.store,
            root,
            load_master_key(root),
            checkpoint_path(root),
            out_dir,
            phrase,
            actor.name,
            rt.settings.storage.database_url,
            keys_out,
        )
    except BackupError as exc:
        fail(str(exc), 1)
    out.print(
        f"backup {res.backup_id} ({res.kind}, {res.files} media file(s), {res.size / 1e6:.1f} MB):", highlight=False
    )
    out.print(f"  data: {res.data}", highlight=False, markup=False)
    out.print(f"  keys: {res.keys}   (store it apart from the data file; its passphrase opens it)", markup=False)


def restore(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="the backup's data file (NAME.backup)")],
    keys: Annotated[Path, typer.Argument(help="its keys file (NAME.keys)")],
    passphrase_file: Annotated[
        Path | None, typer.Option("--passphrase-file", help="read the keys file's passphrase from this file")
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="for a PostgreSQL backup: the URL of an empty database to restore into")
    ] = None,
) -> None:
    """Restore a backup into a fresh home (--home; absent or empty) and, for PostgreSQL, an empty database. The
    audit chain is verified afterwards and the restore audited as backup.restore; exit 1 if it does not verify."""
    # heavy: the restore loads the database dump tools and the sealing
    from metrosight.ops.backup import BackupError, restore_backup

    c = cli_context(ctx)
    out, err = c.out, c.err

    def open_store(home: Path, url: str | None) -> Store:
        Home(home).ensure()
        return Store.for_home(home, url)

    home = Home.resolve(c.home_dir).root
    cps = os.environ.get(CHECKPOINTS_ENV)
    phrase = read_passphrase(passphrase_file, confirm=False)
    try:
        res = restore_backup(data, keys, phrase, home, open_store, db, Path(cps) if cps else None)
    except BackupError as exc:
        fail(str(exc), 1)
    out.print(
        f"restored backup {res.backup_id} ({res.kind}, made {res.created}, {res.files} media file(s)) into {home}",
        highlight=False,
        markup=False,
    )
    if not res.key_file:
        out.print("the master key was not written to the home: METROSIGHT_MASTER_KEY holds it", highlight=False)
    if not res.audit.ok:
        err.print(f"error: the restored audit chain does not verify: {res.audit.reason}", highlight=False, markup=False)
        raise typer.Exit(1)
    out.print(f"audit chain verified ({res.audit.checked} entries)", highlight=False)
