"""Backup and restore of an installation: a consistent snapshot of the database, the media (crops, snapshots — stored
encrypted), the audit checkpoints and the calibration, in one sealed data file; the master key in a separate keys
file sealed under a passphrase (:mod:`metrosight.ops.sealed`).

What is in which file:

- ``NAME.backup`` (data): the database — SQLite through its online backup API (a consistent copy while the service
  writes), PostgreSQL with ``pg_dump`` (one snapshot) — plus ``media/``, ``calibration/`` and the audit checkpoint
  file, as a gzip'd tar encrypted under a key derived from the master key. It holds no key: templates, crops and
  wrapped watchlist keys inside were encrypted under the master key already, and a watchlist shredded before the
  backup has no key anywhere in it, so its crops stay unreadable after any restore.
- ``NAME.keys``: the master key, encrypted under the operator's passphrase. Keep it apart from the data file.

The audit checkpoint file is copied *before* the database snapshot, so every signed checkpoint in the backup is of a
chain head the snapshot holds: the restored chain verifies. Both operations are audited: ``backup.create`` (by the
admin who ran it, before the snapshot, so it is in the backup) and ``backup.restore`` (in the restored log, by the
operating-system user who ran it: no metrosight account exists until the data is back).

Restore goes into a fresh home only (absent or empty; for PostgreSQL an empty database): it unpacks into a staging
folder beside the target, checks everything, then moves it into place. A wrong passphrase, a keys file of another
installation, an altered or truncated data file, a full disk or a failed ``pg_restore`` stop with one line and leave
the target as it was.
"""

from __future__ import annotations

import errno
import getpass
import io
import json
import os
import shutil
import socket
import sqlite3
import tarfile
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from metrosight.audit.log import VerifyResult
from metrosight.ops import pgtools
from metrosight.ops.sealed import SealedReader, SealedWriter, SealError, fingerprint, open_keys, read_header, seal_keys
from metrosight.policy.crypto import MASTER_KEY_ENV
from metrosight.store.db import normalize_url

FORMAT_VERSION = 1
SQLITE_MEMBER = "db/metrosight.db"
PG_MEMBER = "db/postgresql.dump"
COPIED_DIRS = ("media", "calibration")  # cache/ (models) is rebuilt; keys never go into the data file
# columns holding absolute paths of files under the home's media folder: rewritten to the restored home's media
# folder, or a restored home would read (and its retention purge delete) the files of the home it came from
MEDIA_PATH_COLUMNS = (("alerts", "crop_path"), ("sightings", "crop_path"), ("events", "snapshot_path"))


class BackupError(Exception):
    """A backup or restore cannot be done; one line saying what was wrong and what to do."""


class AuditTrail(Protocol):
    """What backup and restore need of the store's audit log (``store.audit``)."""

    def record(self, actor: str, action: str, target: str | None, details: dict[str, Any]) -> None: ...

    def verify(self) -> VerifyResult: ...

    def checkpoint(self) -> None: ...


class AuditedStore(Protocol):
    """What backup and restore need of the store: its audit log."""

    @property
    def audit(self) -> AuditTrail: ...


@dataclass(frozen=True, slots=True)
class BackupResult:
    """Where the two files went and what the data file holds (``kind``: sqlite or postgresql)."""

    backup_id: str
    data: Path
    keys: Path
    kind: str
    files: int
    size: int


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """What a restore brought back and whether the restored audit chain verifies (``audit``)."""

    backup_id: str
    home: Path
    kind: str
    created: str
    files: int
    audit: VerifyResult
    key_file: bool


def _disk_error(exc: OSError, where: Path) -> BackupError:
    if exc.errno == errno.ENOSPC:
        return BackupError(f"the disk is full at {where}: free space and run it again (nothing was changed)")
    return BackupError(f"cannot write {where}: {exc.strerror or exc}")


def _sqlite_snapshot(db: Path, out: Path) -> None:
    """A consistent copy of a live SQLite database through its online backup API (it only reads ``db``; a read-only
    open would fail on a WAL database whose ``-shm`` file is not there yet)."""
    if not db.is_file():
        raise sqlite3.OperationalError(f"no database at {db}")
    src = sqlite3.connect(db)
    try:
        dst = sqlite3.connect(out)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def _add_tree(tar: tarfile.TarFile, root: Path, name: str) -> int:
    base = root / name
    if not base.is_dir():
        return 0
    n = 0
    for path in sorted(base.rglob("*")):
        if path.is_file() and not path.is_symlink():
            tar.add(path, arcname=str(path.relative_to(root)), recursive=False)
            n += 1
    return n


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, int(datetime.now(UTC).timestamp())
    tar.addfile(info, io.BytesIO(data))


def create_backup(
    store: AuditedStore,
    home: Path,
    master_key: bytes,
    checkpoints: Path,
    out: Path,
    passphrase: str,
    actor: str,
    database_url: str | None = None,
    keys_out: Path | None = None,
) -> BackupResult:
    """Write ``metrosight-<time>.backup`` (data) into ``out`` and ``metrosight-<time>.keys`` into ``keys_out``
    (default ``out``), audited as ``actor``.

    Args:
        store: the installation's store (the audit entry goes there).
        home: the home folder (SQLite database, media, calibration).
        master_key: the installation's master key (from ``METROSIGHT_MASTER_KEY`` or ``<home>/master.key``).
        checkpoints: the audit checkpoint file.
        database_url: a PostgreSQL URL (``pg_dump``), or None for the home's SQLite database.

    Raises:
        BackupError: a short passphrase, an output folder inside the home, an existing output file, a full disk, a
            failed ``pg_dump``.
    """
    keys_out = keys_out or out
    _check_outputs(home, out, keys_out)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    backup_id = f"{stamp}-{uuid.uuid4().hex[:8]}"
    data_path, keys_path = out / f"metrosight-{stamp}.backup", keys_out / f"metrosight-{stamp}.keys"
    for p in (data_path, keys_path):
        if p.exists():
            raise BackupError(f"{p} exists already: choose another folder")
    kind = "postgresql" if database_url and normalize_url(database_url).startswith("postgresql") else "sqlite"
    try:
        keys_blob = seal_keys({"master_key": master_key.decode()}, passphrase, backup_id, master_key)
    except SealError as exc:
        raise BackupError(str(exc)) from None
    # where every copy of the data went (folders resolved: a link to removable media shows as the media)
    details = {
        "backup_id": backup_id,
        "kind": kind,
        "data_file": data_path.name,
        "keys_file": keys_path.name,
        "data_dir": str(out.resolve()),
        "keys_dir": str(keys_out.resolve()),
    }
    store.audit.record(actor, "backup.create", backup_id, details)
    store.audit.checkpoint()
    header = {"backup_id": backup_id, "fingerprint": fingerprint(master_key), "created": stamp, "kind": kind}
    made: list[Path] = []  # removed on failure: only this backup's files, never those of one running beside it
    try:
        for d in {out, keys_out}:
            d.mkdir(parents=True, exist_ok=True)
        # the clear snapshot stays in the (private) home until sealed: never in the backup folder, which may be a
        # share, where a backup killed half-way would leave it
        with tempfile.TemporaryDirectory(prefix=".backup-snapshot-", dir=home) as tmp:
            files = _write_data(home, checkpoints, Path(tmp), data_path, master_key, header, database_url, kind)
        made.append(data_path)
        _write_private(keys_path, keys_blob)
        made.append(keys_path)
    except OSError as exc:
        for p in made:
            p.unlink(missing_ok=True)
        store.audit.record(actor, "backup.failed", backup_id, {**details, "error": exc.strerror or str(exc)})
        if exc.errno == errno.EEXIST:
            raise BackupError(
                f"{exc.filename or out} exists already (another backup this second?): run it again"
            ) from None
        raise _disk_error(exc, out) from None
    except (pgtools.PgToolError, sqlite3.Error) as exc:  # the snapshot comes before any file is published
        store.audit.record(actor, "backup.failed", backup_id, {**details, "error": str(exc)})
        raise BackupError(f"cannot snapshot the database: {exc}") from None
    return BackupResult(backup_id, data_path, keys_path, kind, files, data_path.stat().st_size)


def _check_outputs(home: Path, out: Path, keys_out: Path) -> None:
    """The backup's folders: folders (or absent), and outside the home.

    Raises:
        BackupError: one is a file, a FIFO or a device, or lies inside the home.
    """
    for d in {out, keys_out}:
        if d.exists() and not d.is_dir():
            raise BackupError(f"{d} is not a folder: give --out and --keys-out folders")
        if d.resolve().is_relative_to(home.resolve()):
            raise BackupError(
                f"{d} is inside the home {home}: write backups to a folder outside it (a later backup would copy "
                "them, the keys file too, into its data file)"
            )


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` (0600; never over an existing file) with ``data``; a partly written file is removed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _publish(part: Path, final: Path) -> None:
    """Give ``part`` the name ``final``, never replacing a file there (a hard link where the file system has them)."""
    try:
        os.link(part, final)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (some network file systems): check, then rename
        if final.exists():
            raise FileExistsError(errno.EEXIST, "File exists", str(final)) from None
        part.replace(final)


def _write_data(
    home: Path,
    checkpoints: Path,
    tmp: Path,
    data_path: Path,
    master_key: bytes,
    header: dict[str, Any],
    database_url: str | None,
    kind: str,
) -> int:
    """The sealed tar: manifest, checkpoints (first: see the module docstring), database snapshot, media."""
    cps = checkpoints.read_bytes() if checkpoints.is_file() else None
    snap = tmp / ("snapshot.dump" if kind == "postgresql" else "snapshot.db")
    if kind == "postgresql":
        pgtools.dump(str(database_url), snap)
    else:
        _sqlite_snapshot(home / "metrosight.db", snap)
    manifest = {
        "format": "metrosight-backup",
        "version": FORMAT_VERSION,
        **header,
        "host": socket.gethostname(),
        "media_root": str((home / "media").resolve()),
        "checkpoints": cps is not None,
    }
    part = data_path.with_name(f"{data_path.name}.{header['backup_id'][-8:]}.part")  # its own, beside another's
    files = 0
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw:
            sealed = SealedWriter(raw, master_key, header)
            with tarfile.open(fileobj=sealed, mode="w|gz") as tar:  # type: ignore[call-overload]
                _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=1).encode())
                if cps is not None:
                    _add_bytes(tar, "audit.checkpoints", cps)
                tar.add(snap, arcname=PG_MEMBER if kind == "postgresql" else SQLITE_MEMBER, recursive=False)
                files = sum(_add_tree(tar, home, d) for d in COPIED_DIRS)
            sealed.close()
            raw.flush()
            os.fsync(raw.fileno())
        _publish(part, data_path)
    finally:
        part.unlink(missing_ok=True)
    return files


@contextmanager
def _staging(home: Path) -> Iterator[Path]:
    home.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{home.name}.restoring-", dir=home.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_target(home: Path, database_url: str | None, checkpoints_env: Path | None) -> None:
    if home.exists() and (not home.is_dir() or any(home.iterdir())):
        raise BackupError(f"{home} is not empty: restore only into a new or empty home folder (nothing was changed)")
    if checkpoints_env is not None and checkpoints_env.exists() and checkpoints_env.stat().st_size:
        raise BackupError(f"the audit checkpoint file {checkpoints_env} exists already: point it at a new file")
    if database_url:
        try:
            engine = create_engine(normalize_url(database_url))
            try:
                tables = inspect(engine).get_table_names()
            finally:
                engine.dispose()
        except SQLAlchemyError as exc:
            raise BackupError(f"cannot reach the target database: {exc.__class__.__name__}") from None
        except ValueError:  # a URL that cannot be read (a bad port): never quoted, it may hold a password
            raise BackupError("the target database URL cannot be read: check its host and port") from None
        if tables:
            raise BackupError("the target database is not empty: restore into a new, empty database")


def _extract(data: Path, master_key: bytes, staging: Path) -> dict[str, Any]:
    """Unpack the data file into ``staging``; returns its manifest."""
    with data.open("rb") as f:
        read_header(f)
        reader = SealedReader(f, master_key)
        try:
            with tarfile.open(fileobj=reader, mode="r|gz") as tar:  # type: ignore[call-overload]
                tar.extractall(staging, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                raise
            raise BackupError(f"{data} is damaged: {exc}") from None
    try:
        manifest = json.loads((staging / "manifest.json").read_text())
    except (OSError, ValueError):
        raise BackupError(f"{data} has no readable manifest") from None
    if manifest.get("version") != FORMAT_VERSION:
        raise BackupError(f"{data} is of backup format {manifest.get('version')}, this version reads {FORMAT_VERSION}")
    return manifest


def restore_backup(
    data: Path,
    keys: Path,
    passphrase: str,
    home: Path,
    open_store: Callable[[Path, str | None], AuditedStore],
    database_url: str | None = None,
    checkpoints_env: Path | None = None,
) -> RestoreResult:
    """Bring the installation of ``data`` back into the fresh ``home`` (and, for a PostgreSQL backup, the empty
    database of ``database_url``); audited there as ``backup.restore``.

    Args:
        open_store: ``open_store(home, database_url)`` returns the restored installation's store (migrations run).
        checkpoints_env: ``METROSIGHT_AUDIT_CHECKPOINTS`` when set (the checkpoints go there, not into the home).

    Raises:
        BackupError: a missing file, a wrong passphrase, keys of another installation, a damaged data file, a home or
            database that is not empty, a kind mismatch, a full disk, a failed ``pg_restore``. The target is left as
            it was.
    """
    for p, what in ((data, "backup data file"), (keys, "keys file")):
        if not p.is_file():
            raise BackupError(
                f"{what} {p} " + ("is not a file (a folder, a FIFO or a device)" if p.exists() else "not found")
            )
    home = home.resolve()  # a home given as a link to an empty folder is restored into that folder
    try:
        secrets, fp = open_keys(keys.read_bytes(), passphrase)
        with data.open("rb") as f:
            header = read_header(f)
    except SealError as exc:
        raise BackupError(str(exc)) from None
    if header["fingerprint"] != fp:
        raise BackupError(f"{keys.name} holds the keys of another installation, not those of {data.name}")
    master_key = secrets["master_key"].encode()
    env_key = os.environ.get(MASTER_KEY_ENV)
    if env_key is not None and env_key.strip().encode() != master_key:
        raise BackupError(f"{MASTER_KEY_ENV} is set to another key than the backup's: unset it or set it to that key")
    kind = header.get("kind")
    if kind == "postgresql" and not database_url:
        raise BackupError("this is a backup of a PostgreSQL database: give --db with the URL of an empty database")
    if kind == "sqlite" and database_url:
        raise BackupError("this is a backup of a SQLite home: restore it without --db")
    _check_target(home, database_url, checkpoints_env)
    try:
        with _staging(home) as staging:
            manifest = _extract(data, master_key, staging)
            # the clear header chose the keys check, the database kind and what the audit records: it must say what
            # the sealed manifest says (an altered header would otherwise restore under another backup's id)
            if any(manifest.get(k) != header.get(k) for k in ("backup_id", "fingerprint", "created", "kind")):
                raise BackupError(f"{data} is damaged or was altered (its header does not match its sealed content)")
            files = sum(1 for d in COPIED_DIRS for p in (staging / d).rglob("*") if p.is_file())
            _place(staging, home, master_key, env_key is None, database_url, checkpoints_env)
    except SealError as exc:
        raise BackupError(str(exc)) from None
    except pgtools.PgToolError as exc:
        raise BackupError(f"{exc} (the database was left empty)") from None
    except OSError as exc:
        raise _disk_error(exc, home.parent) from None
    try:
        _relocate_media(database_url or f"sqlite:///{home / 'metrosight.db'}", manifest.get("media_root"), home)
    except SQLAlchemyError as exc:
        raise BackupError(f"restored, but the media paths could not be updated: {exc.__class__.__name__}") from None
    store = open_store(home, database_url)
    result = store.audit.verify()
    store.audit.record(
        f"os:{_os_user()}",
        "backup.restore",
        header["backup_id"],
        {
            "backup_id": header["backup_id"],
            "created": manifest.get("created"),
            "kind": kind,
            "host": socket.gethostname(),
            "audit_verified": result.ok,
        },
    )
    store.audit.checkpoint()
    return RestoreResult(
        header["backup_id"], home, str(kind), str(manifest.get("created")), files, result, env_key is None
    )


def _os_user() -> str:
    """The operating-system user running the restore; ``uid N`` where the account database has no name for it (a
    container's numeric user, a systemd ``DynamicUser``: ``getpass.getuser`` raises there)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _place(
    staging: Path, home: Path, master_key: bytes, key_file: bool, database_url: str | None, cps_env: Path | None
) -> None:
    """Move what was unpacked into ``home`` (PostgreSQL: pg_restore first, all or nothing)."""
    (staging / "manifest.json").unlink()
    if database_url:
        pgtools.restore(database_url, staging / PG_MEMBER)
        (staging / PG_MEMBER).unlink()
    else:
        (staging / SQLITE_MEMBER).replace(staging / "metrosight.db")
    (staging / "db").rmdir()
    cps = staging / "audit.checkpoints"
    if cps.exists() and cps_env is not None:
        shutil.move(str(cps), cps_env)
    if key_file:
        _write_private(staging / "master.key", master_key)
    os.chmod(staging, 0o700)
    if home.exists():
        home.rmdir()  # empty (checked)
    staging.rename(home)
    staging.mkdir()  # for the context manager's clean-up


def _relocate_media(url: str, old_root: str | None, home: Path) -> None:
    """Point the stored media paths of the backed-up home (``old_root``) at ``home``'s media folder."""
    new_root = str((home / "media").resolve())
    if not old_root or old_root == new_root:
        return
    engine = create_engine(normalize_url(url))
    try:
        with engine.begin() as c:
            for table, col in MEDIA_PATH_COLUMNS:
                c.execute(
                    text(
                        f"UPDATE {table} SET {col} = :new || substr({col}, :cut) "  # noqa: S608 - fixed names
                        f"WHERE substr({col}, 1, :n) = :old"
                    ),
                    {"new": new_root + "/", "cut": len(old_root) + 2, "n": len(old_root) + 1, "old": old_root + "/"},
                )
    finally:
        engine.dispose()
