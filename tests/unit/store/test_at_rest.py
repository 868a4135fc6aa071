"""Issue 15, finding 7 (at rest): owner-only files, and nothing recoverable from free pages after revocation or
shredding (the bytes of the SQLite file and its WAL are carved for the template and the key)."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import select

from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.core.types import Category
from metrosight.policy.rules import Actor, Authorisation
from metrosight.services.installation import Installation
from metrosight.store.models import Template
from metrosight.store.repo import Store

ADA = Actor("ada", frozenset({"admin", "approver"}))
BOB = Actor("bob", frozenset({"approver"}))


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_home_folders_and_files_are_owner_only(tmp_path):
    old = os.umask(0o022)  # a usual login umask
    try:
        home = tmp_path / "home"
        rt = Installation.open(Home(home), Settings())
        rt.store.users.add("ada", ["admin"], None)
        rt.store.checkpoint()
        assert mode(home) == 0o700 and mode(home / "media") == 0o700 and mode(home / "cache") == 0o700
        for name in ("metrosight.db", "metrosight.db-wal", "metrosight.db-shm", "master.key", "audit.checkpoints"):
            assert mode(home / name) == 0o600, name
        # an installation made by an older version (world-readable) is tightened when opened
        (home / "metrosight.db").chmod(0o644)
        home.chmod(0o755)
        Installation.open(Home(home), Settings())
        assert mode(home) == 0o700 and mode(home / "metrosight.db") == 0o600
    finally:
        os.umask(old)


def enrolled(tmp_path):
    store = Store.for_home(tmp_path)
    store.users.add("ada", ["admin", "approver"], None)
    store.users.add("bob", ["approver"], ADA)
    store.watchlists.create("wl", Category.WANTED, ADA)
    vec = np.random.default_rng(7).normal(size=128).astype(np.float32)
    vec /= np.linalg.norm(vec)
    auth = Authorisation("law", "court", "R-1", datetime.now(UTC) + timedelta(days=3))
    store.entries.enroll("wl", "Eve", vec, "m", "e.jpg", "e" * 64, 0.9, ADA, auth)
    store.entries.approve("wl", "Eve", BOB)
    with store.uow.read() as s:
        blob = s.scalar(select(Template.descriptor))
    return store, vec, blob


def carve(tmp_path) -> bytes:
    """Every byte of the database and its WAL as they lie on disk (what a copy of the folder would hold)."""
    return b"".join(
        (tmp_path / n).read_bytes() for n in ("metrosight.db", "metrosight.db-wal") if (tmp_path / n).exists()
    )


def test_a_revoked_template_cannot_be_carved_from_the_database_or_its_wal(tmp_path):
    store, vec, blob = enrolled(tmp_path)
    disk = carve(tmp_path)
    assert blob[20:80] in disk  # the carving finds the template while it is enrolled
    store.entries.revoke("wl", "Eve", BOB, "order withdrawn")
    disk = carve(tmp_path)
    for chunk in (blob, blob[:40], blob[len(blob) // 2 : len(blob) // 2 + 40], blob[-40:]):
        assert chunk not in disk
    assert vec.astype("<f4").tobytes()[:64] not in disk
    assert store.watchlists.wrapped_key("wl") is not None  # the watchlist key lives on: the ciphertext itself had to go


def test_a_shredded_watchlist_key_cannot_be_carved(tmp_path):
    store, _vec, blob = enrolled(tmp_path)
    key = store.watchlists.wrapped_key("wl")
    assert key[10:60] in carve(tmp_path)
    store.watchlists.shred("wl", ADA)
    disk = carve(tmp_path)
    assert key[10:60] not in disk and blob[20:80] not in disk
