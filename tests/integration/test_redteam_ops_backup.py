"""Red-team tests of backup and restore with a real store: an altered data-file header, a home given as a link."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metrosight.ops.backup import BackupError, create_backup, restore_backup
from metrosight.policy.crypto import load_master_key
from metrosight.store.repo import checkpoint_path
from tests.integration.test_backup import PASS, _db, _open, _populate

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _backup(tmp_path: Path, url: str | None):  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    st = _populate(src, url)
    return create_backup(st, src, load_master_key(src), checkpoint_path(src), tmp_path / "out", PASS, "ada", url)


@pytest.mark.parametrize("field", ["backup_id", "created"])
def test_a_data_file_whose_clear_header_was_altered_is_refused(
    tmp_path: Path, kind: str, field: str, request: pytest.FixtureRequest
) -> None:
    """The header is in clear: an insider rewrites its backup id, and the restore must not audit the forged one."""
    res = _backup(tmp_path, _db(kind, request))
    magic, header, body = res.data.read_bytes().split(b"\n", 2)
    doc = json.loads(header)
    doc[field] = "20991231T000000Z-forged00"
    forged = tmp_path / "forged.backup"
    forged.write_bytes(magic + b"\n" + json.dumps(doc).encode() + b"\n" + body)
    dst = tmp_path / "dst"
    target = _db(kind, request)
    with pytest.raises(BackupError, match="altered"):
        restore_backup(forged, res.keys, PASS, dst, _open, target)
    assert not dst.exists()
    assert [p.name for p in tmp_path.iterdir() if "restoring" in p.name] == []
    restored = restore_backup(res.data, res.keys, PASS, dst, _open, target)  # the genuine file still restores
    assert restored.backup_id == res.backup_id and restored.audit.ok


def test_restore_into_a_home_given_as_a_link_to_an_empty_folder(tmp_path: Path) -> None:
    res = _backup(tmp_path, None)
    (tmp_path / "disk").mkdir()
    (tmp_path / "home").symlink_to(tmp_path / "disk")
    restored = restore_backup(res.data, res.keys, PASS, tmp_path / "home", _open)
    assert restored.audit.ok
    assert (tmp_path / "home").is_symlink() and (tmp_path / "disk" / "metrosight.db").is_file()
    st = _open(tmp_path / "home", None)
    assert {e.name for e in st.entries.all("wanted")} == {"Ann", "Cid"}


def test_postgresql_backup_and_restore_over_a_unix_socket_url(tmp_path: Path, postgres_server) -> None:  # type: ignore[no-untyped-def]
    """``postgresql://user@/db?host=/socket/dir&port=N``: the application connects there; pg_dump and pg_restore
    must too (they read libpq's environment, which had no PGHOST: they went to the default socket)."""

    def socket_url(tcp_url: str) -> str:
        name = tcp_url.rsplit("/", 1)[1]
        return f"postgresql+psycopg://postgres@/{name}?host={postgres_server.root}&port={postgres_server.port}"

    src, dst = socket_url(postgres_server.create_database()), socket_url(postgres_server.create_database())
    res = _backup(tmp_path, src)
    restored = restore_backup(res.data, res.keys, PASS, tmp_path / "dst", _open, dst)
    assert restored.audit.ok and restored.kind == "postgresql"
    st = _open(tmp_path / "dst", dst)
    assert {e.name for e in st.entries.all("wanted")} == {"Ann", "Cid"}


def test_restore_into_a_database_url_with_a_bad_port_is_one_clear_error(tmp_path: Path, postgres_server) -> None:  # type: ignore[no-untyped-def]
    res = _backup(tmp_path, postgres_server.create_database())
    with pytest.raises(BackupError, match="target database") as exc:
        restore_backup(res.data, res.keys, PASS, tmp_path / "dst", _open, "postgresql://u:S3cretPw@127.0.0.1:bad/x")
    assert "S3cretPw" not in str(exc.value)
    assert not (tmp_path / "dst").exists()


def test_a_backup_in_the_same_second_as_another_never_deletes_or_replaces_the_other_ones_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two admins (or cron and an admin) back up in the same second into the same folder: the names collide. The
    second must fail with one line, leaving the first's data and keys files as they were (its clean-up removed
    them, and its data file replaced the first's)."""
    from metrosight.ops import backup as backup_mod

    src = tmp_path / "src"
    st = _populate(src, None)
    real = backup_mod._write_data

    def beside(home, checkpoints, tmp, data_path, *rest):  # type: ignore[no-untyped-def]
        # the other backup finishes first, under the same names
        data_path.write_bytes(b"the other backup's data")
        data_path.with_suffix(".keys").write_bytes(b"the other backup's keys")
        return real(home, checkpoints, tmp, data_path, *rest)

    monkeypatch.setattr(backup_mod, "_write_data", beside)
    out = tmp_path / "out"
    with pytest.raises(BackupError, match="exists already"):
        create_backup(st, src, load_master_key(src), checkpoint_path(src), out, PASS, "ada")
    assert sorted((p.name.rsplit(".", 1)[1], p.read_bytes()) for p in out.iterdir()) == [
        ("backup", b"the other backup's data"),
        ("keys", b"the other backup's keys"),
    ]
    assert [e.action for e in st.audit.entries()][-1] == "backup.failed"


def test_restore_by_a_user_the_account_database_does_not_name_is_audited_by_uid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container's numeric user or a systemd DynamicUser with no USER/LOGNAME: getpass.getuser raises (KeyError
    before Python 3.13, OSError since); the restore had placed the home and then crashed before auditing itself."""
    import getpass
    import os

    res = _backup(tmp_path, None)

    def no_name() -> str:
        raise KeyError(f"getpwuid(): uid not found: {os.getuid()}")

    monkeypatch.setattr(getpass, "getuser", no_name)
    restored = restore_backup(res.data, res.keys, PASS, tmp_path / "dst", _open)
    assert restored.audit.ok
    last = _open(tmp_path / "dst", None).audit.entries()[-1]
    assert last.action == "backup.restore" and last.actor == f"os:uid {os.getuid()}"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_clear_database_snapshot_is_never_written_to_the_backup_folder(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """The backup folder may be a share: a backup killed between the snapshot and the sealing left the whole
    database (names, alerts, the audit log) there in clear. It stays in the private home until sealed."""
    from metrosight.ops import backup as backup_mod
    from metrosight.ops import pgtools

    url = _db(kind, request)
    src = tmp_path / "src"
    st = _populate(src, url)
    seen: list[Path] = []
    real_sqlite, real_pg = backup_mod._sqlite_snapshot, pgtools.dump

    def sqlite_spy(db: Path, out: Path) -> None:
        seen.append(out)
        real_sqlite(db, out)

    def pg_spy(u: str, out: Path) -> None:
        seen.append(out)
        real_pg(u, out)

    monkeypatch.setattr(backup_mod, "_sqlite_snapshot", sqlite_spy)
    monkeypatch.setattr(pgtools, "dump", pg_spy)
    out = tmp_path / "share"
    res = create_backup(st, src, load_master_key(src), checkpoint_path(src), out, PASS, "ada", url)
    assert len(seen) == 1 and seen[0].resolve().is_relative_to(src.resolve()), seen
    assert sorted(p.name for p in out.iterdir()) == sorted([res.data.name, res.keys.name])
    assert not [p for p in src.iterdir() if p.name.startswith(".backup-snapshot-")]


def test_the_audit_says_where_a_backup_was_written(tmp_path: Path) -> None:
    """A backup is a copy of everything: the audit must say where it went (an admin writing it to a USB stick
    through a link in their own folder), not only the file names."""
    src = tmp_path / "src"
    st = _populate(src, None)
    (tmp_path / "usb").mkdir()
    (tmp_path / "mine").symlink_to(tmp_path / "usb")
    create_backup(
        st, src, load_master_key(src), checkpoint_path(src), tmp_path / "mine", PASS, "ada", None, tmp_path / "vault"
    )
    entry = next(e for e in reversed(st.audit.entries()) if e.action == "backup.create")
    details = json.loads(entry.details) if isinstance(entry.details, str) else entry.details
    assert details["data_dir"] == str((tmp_path / "usb").resolve())
    assert details["keys_dir"] == str((tmp_path / "vault").resolve())
