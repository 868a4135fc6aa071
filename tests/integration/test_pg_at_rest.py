"""Issue 15, finding 7 (at rest) on PostgreSQL: after a revocation or a shredding, the revoked template's ciphertext
and the shredded watchlist key are no longer in the table's files (main fork and TOAST) nor anywhere in the
database's folder under the server's data directory (MVCC alone leaves them there as dead tuples, and ANALYZE would
copy them into pg_statistic but for migration 0012)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from metrosight.core.types import Category
from metrosight.policy.crypto import KeyRing
from metrosight.policy.rules import Actor, Authorisation
from metrosight.store.db import open_engine
from metrosight.store.models import Subject, Template
from metrosight.store.repo import Store

pytestmark = pytest.mark.integration

KEY = Fernet.generate_key()
ADA = Actor("ada", frozenset({"admin", "approver"}))
BOB = Actor("bob", frozenset({"approver"}))


def enrolled(url: str) -> tuple[Store, dict[str, bytes]]:
    """Two entries on one watchlist, approved; returns the store and each entry's stored template ciphertext."""
    store = Store(open_engine(url), KeyRing(KEY))
    store.users.add("ada", ["admin", "approver"], None)
    store.users.add("bob", ["approver"], ADA)
    store.watchlists.create("wl", Category.WANTED, ADA)
    auth = Authorisation("law", "court", "R-1", datetime.now(UTC) + timedelta(days=3))
    rng = np.random.default_rng(7)
    for name in ("Eve", "Mallory"):
        vec = rng.normal(size=128).astype(np.float32)
        store.entries.enroll("wl", name, vec / np.linalg.norm(vec), "m", f"{name}.jpg", name[0] * 64, 0.9, ADA, auth)
        store.entries.approve("wl", name, BOB)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("ANALYZE")  # as autovacuum does once a gallery has grown: samples go to pg_statistic
    with store.uow.read() as s:
        blobs = dict(s.execute(select(Subject.name, Template.descriptor).join(Template)).all())
    return store, blobs


def relation_files(url: str, data: Path, table: str) -> tuple[list[Path], Path]:
    """The files of ``table`` (main fork segments, its TOAST table and TOAST index) and of its database, read after
    a CHECKPOINT has written every dirty page (what a copy of the data directory would hold)."""
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CHECKPOINT")
        rels = c.execute(
            "SELECT pg_relation_filepath(c.oid), pg_relation_filepath(c.reltoastrelid),"
            " pg_relation_filepath(t.indexrelid) FROM pg_class c"
            " LEFT JOIN pg_index t ON t.indrelid = c.reltoastrelid WHERE c.oid = to_regclass(%s)",
            (table,),
        ).fetchone()
        dboid = c.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]
    files: list[Path] = []
    for rel in rels:
        if rel:
            files += sorted(data.glob(rel + "*"))  # segments (.1, .2 …) and forks (_fsm, _vm)
    assert files and (data / rels[0]).exists()
    return files, data / "base" / str(dboid)


def carve(files: list[Path]) -> bytes:
    return b"".join(p.read_bytes() for p in files if p.is_file())


def test_a_revoked_template_cannot_be_carved_from_the_postgresql_table_files(pg_url, postgres_server):
    store, blobs = enrolled(pg_url)
    files, dbdir = relation_files(pg_url, postgres_server.data, "templates")
    eve, mallory = blobs["Eve"], blobs["Mallory"]
    assert eve[20:80] in carve(files)  # the carving finds the template while it is enrolled
    assert store.entries.revoke("wl", "Eve", BOB, "order withdrawn") == 1

    files, dbdir = relation_files(pg_url, postgres_server.data, "templates")  # the rewrite gave new files
    disk = carve(files)
    for chunk in (eve[:40], eve[len(eve) // 2 : len(eve) // 2 + 40], eve[-40:]):
        assert chunk not in disk
    assert mallory[20:80] in disk  # the other entry's template is intact …
    assert (
        store.watchlists.wrapped_key("wl") is not None
    )  # … and the watchlist key lives on: the ciphertext itself had to go
    everything = carve(sorted(dbdir.iterdir()))  # nor in any other file of the database (old files, pg_statistic)
    assert eve[20:80] not in everything and mallory[20:80] in everything
    assert len(store.gallery.active("m")) == 1  # matching goes on with the remaining entry


def test_a_shredded_watchlist_key_cannot_be_carved_from_the_postgresql_files(pg_url, postgres_server):
    store, blobs = enrolled(pg_url)
    key = store.watchlists.wrapped_key("wl")
    files, _ = relation_files(pg_url, postgres_server.data, "watchlist_keys")
    assert key[10:60] in carve(files)
    store.watchlists.shred("wl", ADA)
    files, dbdir = relation_files(pg_url, postgres_server.data, "watchlist_keys")
    assert key[10:60] not in carve(files)
    everything = carve(sorted(dbdir.iterdir()))
    assert key[10:60] not in everything
    assert all(b[20:80] not in everything for b in blobs.values())


def test_postgresql_keeps_no_statistics_of_template_ciphertexts_or_keys(pg_url):
    enrolled(pg_url)  # and analysed
    with psycopg.connect(pg_url) as c:
        rows = c.execute(
            "SELECT tablename, attname FROM pg_stats WHERE (tablename, attname) IN"
            " (('templates', 'descriptor'), ('watchlist_keys', 'wrapped_key'), ('templates', 'model'))"
        ).fetchall()
    assert rows == [("templates", "model")]  # other columns still have statistics for the planner
