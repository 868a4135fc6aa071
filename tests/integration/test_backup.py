"""Backup and restore on SQLite and PostgreSQL: a fresh home gets the same alerts, entries and persons back, crops
decrypt, templates match, the audit chain verifies with both operations in it; a watchlist shredded before the
backup stays unreadable; retention applies to restored data; the keys and the data never share a file; bad input
(wrong passphrase, missing file, non-empty target, damaged data, full disk) is one clear error that changes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from metrosight.bus.payloads import AlertV1
from metrosight.config.home import Home, media_file
from metrosight.core.types import Category, Match
from metrosight.ops.backup import BackupError, create_backup, restore_backup
from metrosight.ops.sealed import open_keys
from metrosight.policy.crypto import CryptoError, load_master_key
from metrosight.policy.rules import Actor, Authorisation
from metrosight.store.models import AlertRecord, Person, Subject
from metrosight.store.repo import Store, checkpoint_path
from metrosight.store.retention import Retention
from tests.conftest import missing_system

pytestmark = pytest.mark.integration

ADMIN = Actor("ada", frozenset({"admin", "approver", "operator", "auditor"}))
BOB = Actor("bob", frozenset({"approver", "operator"}))
PASS = "velvet compass harbour"
T0 = 1_800_000_000.0
MODEL = "m"


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture(params=["sqlite", "postgresql"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _db(kind: str, request: pytest.FixtureRequest) -> str | None:
    if kind == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_server").create_database())


def _open(home: Path, url: str | None) -> Store:
    Home(home).ensure()
    return Store.for_home(home, url)


def _sight(store: Store, home: Path, wl: str, name: str, event: str, crop: bytes) -> None:
    entry = next(e for e in store.entries.all(wl) if e.name == name)
    path = media_file(home / "media", "alerts", "cam-1", event, ".jpg.enc")
    path.write_bytes(store.watchlists.encrypt_for(wl, crop))
    m = Match(entry.id, name, wl, Category(store.watchlists.category(wl)), 0.95, 0.3)
    store.alerts.store_sighting(
        AlertV1.of_match(
            m,
            camera_id="cam-1",
            track_id=1,
            first_seen=1.0,
            last_seen=2.0,
            event_id=event,
            samples=3,
            group=None,
            media_origin=T0,
        ),
        str(path),
    )


def _populate(home: Path, url: str | None) -> Store:
    st = _open(home, url)
    st.users.add("ada", ["admin", "approver", "operator", "auditor"], None)  # an installation starts with its admin
    st.users.add("bob", ["approver", "operator"], ADMIN)
    st.watchlists.create("wanted", Category.WANTED, ADMIN)
    st.watchlists.create("secret", Category.WANTED, ADMIN)
    for i, (wl, name) in enumerate((("wanted", "Ann"), ("wanted", "Cid"), ("secret", "Bob"))):
        auth = Authorisation("law", "court", f"R-{i}", datetime.now(UTC) + timedelta(days=30))
        st.entries.enroll(wl, name, vec(i), MODEL, f"{name}.jpg", str(i) * 64, 0.9, ADMIN, auth)
        st.entries.approve(wl, name, BOB)
    _sight(st, home, "wanted", "Ann", "cam-1:r:1", b"JPEG of Ann")
    _sight(st, home, "secret", "Bob", "cam-1:r:2", b"JPEG of Bob")
    st.watchlists.shred("secret", ADMIN)  # crypto-shredded before the backup
    assert st.audit.verify().ok
    return st


def _backup(st: Store, home: Path, out: Path, url: str | None, keys_out: Path | None = None):  # type: ignore[no-untyped-def]
    return create_backup(
        st, home, load_master_key(home), checkpoint_path(home), out, PASS, ADMIN.name, url, keys_out=keys_out
    )


def _summary(st: Store) -> dict:
    alerts = sorted((a.subject_name, a.watchlist, a.status, a.first_seen) for a in st.alerts.all())
    gallery = sorted((g.subject_name, tuple(np.round(g.template, 5))) for g in st.gallery.active(MODEL))
    return {
        "alerts": alerts,
        "entries": st.count(Subject),
        "persons": st.count(Person),
        "gallery": gallery,
        "users": st.users.all(),
    }


def test_backup_delete_restore_gives_everything_back(kind: str, request: pytest.FixtureRequest, tmp_path: Path):
    src, out, keys_dir = tmp_path / "src", tmp_path / "backups", tmp_path / "vault"
    url = _db(kind, request)
    st = _populate(src, url)
    before = _summary(st)
    assert len(before["alerts"]) == 2 and len(before["gallery"]) == 2  # Bob's templates went with the shredding
    res = _backup(st, src, out, url, keys_out=keys_dir)
    assert res.kind == kind and res.data.parent == out and res.keys.parent == keys_dir
    assert oct(res.keys.stat().st_mode & 0o777) == "0o600" and oct(res.data.stat().st_mode & 0o777) == "0o600"
    master = load_master_key(src)

    # the keys file holds the key and no data; the data file holds no key and no clear text
    doc = json.loads(res.keys.read_text())
    assert set(doc) == {"format", "version", "backup_id", "fingerprint", "kdf", "cipher", "nonce", "ciphertext"}
    secrets, _ = open_keys(res.keys.read_bytes(), PASS)
    assert set(secrets) == {"master_key"} and secrets["master_key"].encode() == master
    assert b"Ann" not in res.keys.read_bytes() and master not in res.keys.read_bytes()
    blob = res.data.read_bytes()
    assert master not in blob and b"Ann" not in blob and b"wanted" not in blob and b"SQLite format" not in blob

    st.engine.dispose()
    shutil.rmtree(src)  # the home is lost
    dst = tmp_path / "restored"
    url2 = _db(kind, request)
    r = restore_backup(res.data, res.keys, PASS, dst, _open, url2)
    assert r.audit.ok, r.audit
    assert r.key_file and (dst / "master.key").read_bytes() == master
    st2 = _open(dst, url2)
    assert _summary(st2) == before  # the same alerts, entries, persons, users; templates decrypt and match
    ann = next(a for a in st2.alerts.all() if a.subject_name == "Ann")
    bob = next(a for a in st2.alerts.all() if a.subject_name == "Bob")
    assert ann.crop_path and ann.crop_path.startswith(str(dst.resolve()))
    assert st2.reviews.read_crop(ann.id, ADMIN) == b"JPEG of Ann"
    with pytest.raises(CryptoError):  # shredded before the backup: unreadable after the restore too
        st2.reviews.read_crop(bob.id, ADMIN)
    assert st2.audit.verify().ok
    actions = [e.action for e in st2.audit.entries()]
    assert actions.index("backup.create") < actions.index("backup.restore")

    # a later backup of the restored home still has no key for the shredded list
    res2 = _backup(st2, dst, tmp_path / "again", url2)
    assert _open_keys_ok(res2.keys)

    # retention applies to restored data: crops past their period are deleted from the restored media
    crop = Path(ann.crop_path)
    assert crop.exists()
    st2.retention.purge(Retention(None, 1, None, None), ADMIN, now=datetime.now(UTC) + timedelta(days=2))
    assert not crop.exists()
    assert st2.count(AlertRecord) == 2


def _open_keys_ok(keys: Path) -> bool:
    return set(open_keys(keys.read_bytes(), PASS)[0]) == {"master_key"}


def test_bad_input_is_one_clear_error_and_changes_nothing(kind: str, request: pytest.FixtureRequest, tmp_path: Path):
    src, out = tmp_path / "src", tmp_path / "backups"
    url = _db(kind, request)
    st = _populate(src, url)
    with pytest.raises(BackupError, match="at least 12 characters"):
        create_backup(st, src, load_master_key(src), checkpoint_path(src), out, "short", "ada", url)
    res = _backup(st, src, out, url)
    dst = tmp_path / "restored"

    with pytest.raises(BackupError, match="wrong passphrase"):
        restore_backup(res.data, res.keys, "not the passphrase", dst, _open, _db(kind, request))
    assert not dst.exists()
    with pytest.raises(BackupError, match="not found"):
        restore_backup(out / "nope.backup", res.keys, PASS, dst, _open, _db(kind, request))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("keep me")
    with pytest.raises(BackupError, match="is not empty"):
        restore_backup(res.data, res.keys, PASS, busy, _open, _db(kind, request))
    assert (busy / "something").read_text() == "keep me" and len(list(busy.iterdir())) == 1
    # keys of another installation
    other = tmp_path / "other"
    st_other = _open(other, None)
    res_other = _backup(st_other, other, tmp_path / "other-backups", None)
    with pytest.raises(BackupError, match="another installation"):
        restore_backup(res.data, res_other.keys, PASS, dst, _open, _db(kind, request))
    # a truncated data file
    cut = tmp_path / "cut.backup"
    cut.write_bytes(res.data.read_bytes()[: res.data.stat().st_size // 2])
    target_url = _db(kind, request)
    with pytest.raises(BackupError, match="truncated|damaged"):
        restore_backup(cut, res.keys, PASS, dst, _open, target_url)
    assert not dst.exists()
    assert not [p for p in tmp_path.iterdir() if ".restoring-" in p.name]  # no staging left behind
    if kind == "postgresql":
        with pytest.raises(BackupError, match="give --db"):
            restore_backup(res.data, res.keys, PASS, dst, _open, None)
    else:
        with pytest.raises(BackupError, match="without --db"):
            restore_backup(res.data, res.keys, PASS, dst, _open, str(request.getfixturevalue("pg_url")))
    # the same restore then works
    assert restore_backup(res.data, res.keys, PASS, dst, _open, target_url).audit.ok


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path: Path):
    if os.geteuid() != 0 or not shutil.which("mount"):
        missing_system("needs root to mount a small tmpfs")
    src = tmp_path / "src"
    st = _populate(src, None)
    big = media_file(src / "media", "alerts", "cam-2", "filler", ".jpg.enc")
    big.write_bytes(os.urandom(3 << 20))  # incompressible: the backup needs > 3 MiB
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        with pytest.raises(BackupError, match="disk is full"):
            create_backup(st, src, load_master_key(src), checkpoint_path(src), small, PASS, "ada")
        assert list(small.iterdir()) == []
        assert [e.action for e in st.audit.entries()][-1] == "backup.failed"
        assert st.audit.verify().ok
        # restoring onto a full disk: one line, and no half-restored home or staging folder left
        res = create_backup(st, src, load_master_key(src), checkpoint_path(src), tmp_path / "ok", PASS, "ada")
        with pytest.raises(BackupError, match="disk is full"):
            restore_backup(res.data, res.keys, PASS, small / "home", _open)
        assert list(small.iterdir()) == []
    finally:
        if subprocess.run(["umount", str(small)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(small)], check=False)
