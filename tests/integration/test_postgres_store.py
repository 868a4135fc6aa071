"""The store on a real PostgreSQL server: the same models and migrations as SQLite, the audit trigger, concurrent
audit writers, idempotent alert and event inserts from several processes at once."""

from __future__ import annotations

import multiprocessing as mp
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from metrosight.bus.payloads import AlertV1
from metrosight.core.types import Category, Match
from metrosight.policy.crypto import KeyRing
from metrosight.policy.rules import Authorisation
from metrosight.store.db import open_engine
from metrosight.store.models import AlertRecord, AuditEntry, EventRecord, Sighting
from metrosight.store.repo import Store

pytestmark = pytest.mark.integration

KEY = Fernet.generate_key()


def store(url: str, home: Path | None = None) -> Store:
    return Store(open_engine(url), KeyRing(KEY), (home / "audit.checkpoints") if home else None)


def alert(event_id: str, subject_id: int = 1) -> AlertV1:
    m = Match(subject_id, "Person", "wl", Category.WANTED, 0.95, 0.3)
    return AlertV1.of_match(
        m, camera_id="cam-1", track_id=1, first_seen=1.0, last_seen=2.0, event_id=event_id, samples=3
    )


def enrolled_subject(s: Store) -> int:
    s.users.add("ada", ["admin", "approver"], None)
    ada = s.users.actor("ada")
    s.watchlists.create("wl", Category.WANTED, ada)
    auth = Authorisation("law", "court", "R-1", datetime.now(UTC) + timedelta(days=3))
    sid, _ = s.entries.enroll("wl", "Person", np.ones(128, np.float32), "m", "p.jpg", "cd" * 32, 0.9, ada, auth)
    return sid


def test_migrations_create_the_same_tables_as_on_sqlite(pg_url, tmp_path):
    pg = open_engine(pg_url)
    lite = open_engine(f"sqlite:///{tmp_path / 'x.db'}")
    pg_tables, lite_tables = set(inspect(pg).get_table_names()), set(inspect(lite).get_table_names())
    assert pg_tables == lite_tables and {"alerts", "events", "audit_log", "subjects", "templates"} <= pg_tables
    for table in lite_tables - {"alembic_version"}:
        assert {c["name"] for c in inspect(pg).get_columns(table)} == {
            c["name"] for c in inspect(lite).get_columns(table)
        }
    with pg.connect() as c:
        head = c.execute(text("SELECT version_num FROM alembic_version")).scalar()
    with lite.connect() as c:
        assert head == c.execute(text("SELECT version_num FROM alembic_version")).scalar()
    open_engine(pg_url)  # a second upgrade is a no-op


def test_postgresql_trigger_refuses_updates_of_the_audit_log(pg_url, tmp_path):
    s = store(pg_url, tmp_path)
    s.users.add("ada", ["admin", "approver"], None)
    with s.engine.begin() as c:
        assert c.execute(text("SELECT count(*) FROM audit_log")).scalar() == 1
    with pytest.raises(DBAPIError, match="append-only"), s.engine.begin() as c:
        c.execute(text("UPDATE audit_log SET actor = 'mallory'"))
    assert s.audit.verify().ok


def test_governance_end_to_end_on_postgresql(pg_url, tmp_path):
    s = store(pg_url, tmp_path)
    s.users.add("ada", ["admin", "approver"], None)
    ada = s.users.actor("ada")
    s.users.add("bob", ["approver", "operator"], ada)
    bob = s.users.actor("bob")
    s.watchlists.create("wl", Category.WANTED, ada)
    auth = Authorisation("law", "court", "R-1", datetime.now(UTC) + timedelta(days=3))
    vec = np.ones(128, np.float32) / np.sqrt(128)
    sid, dup = s.entries.enroll("wl", "Person", vec, "m", "p.jpg", "ab" * 32, 0.9, ada, auth)
    assert not dup and s.gallery.active("m") == []  # pending
    s.entries.approve("wl", "Person", bob)
    [g] = s.gallery.active("m")
    assert np.allclose(g.template, vec, atol=1e-6)
    assert s.alerts.save(alert("e-1", sid), None) and not s.alerts.save(alert("e-1", sid), None)
    [a] = s.reviews.all(bob)
    assert s.reviews.review(a.id, bob, "confirm") == "confirmed_once"
    assert s.entries.revoke("wl", "Person", ada, "withdrawn") == 1 and s.gallery.active("m") == []
    assert s.audit.verify().ok


def _append_many(url: str, key: bytes, worker: int, n: int, barrier) -> None:
    st = Store(open_engine(url, upgrade=False), KeyRing(key))
    barrier.wait()
    for i in range(n):
        st.audit.record(f"w{worker}", "test.append", f"{worker}:{i}", {"i": i})


def _save_alerts(url: str, key: bytes, ids: list[str], sid: int, barrier, results) -> None:
    st = Store(open_engine(url, upgrade=False), KeyRing(key))
    barrier.wait()
    stored = 0
    for eid in ids:
        stored += st.alerts.save(alert(eid, sid), None)
        st.events.save(eid, "cam-1", "loitering", 1.0)
    results.put(stored)


def test_concurrent_audit_writers_keep_one_unbroken_chain(pg_url):
    """Four processes append at once: every append lands, seq has no gap or repeat, the chain verifies."""
    s = store(pg_url)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_append_many, args=(pg_url, KEY, w, 40, barrier)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    entries = s.audit.entries()
    assert [e.seq for e in entries] == list(range(1, 161))
    assert s.audit.verify().ok


def test_duplicate_alerts_and_events_from_concurrent_consumers_are_stored_once(pg_url):
    s = store(pg_url)
    sid = enrolled_subject(s)
    before = s.count(AuditEntry)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(3)
    ids = [f"cam-1:scope:{i}.0" for i in range(30)]
    results = ctx.Queue()
    procs = [ctx.Process(target=_save_alerts, args=(pg_url, KEY, ids, sid, barrier, results)) for _ in range(3)]
    for p in procs:
        p.start()
    stored = sum(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert stored == 30
    # 30 sightings of one person on one camera within seconds, stored by three processes at once: one alert
    # episode (the merge is atomic), each sighting once
    assert s.count(Sighting) == 30 and s.count(AlertRecord) == 1 and s.count(EventRecord) == 30
    acts = [e.action for e in s.audit.entries()]
    assert acts.count("alert.create") == 1 and acts.count("alert.sighting") == 29
    assert acts.count("alarm.raise") == 1  # the episode's alarm, raised once (default policy)
    assert s.audit.verify().ok
    assert s.count(AuditEntry) == before + 31
