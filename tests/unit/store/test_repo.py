from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import update

from metrosight.bus.payloads import AlertV1
from metrosight.core.types import Category, Match
from metrosight.policy.rules import Actor, Authorisation
from metrosight.store.db import StoreError, open_engine
from metrosight.store.models import Subject, Template
from metrosight.store.repo import Conflict, NotFound, Store

ADMIN = Actor("ada", frozenset({"admin", "approver", "operator", "auditor"}))
BOB = Actor("bob", frozenset({"approver", "operator"}))


def auth(days=30, **kw):
    return Authorisation("order", "court", "R-1", datetime.now(UTC) + timedelta(days=days), **kw)


@pytest.fixture()
def store(tmp_path):
    return Store.for_home(tmp_path)


def enrol(store, wl, name, v, sha, model="m", approve=True):
    out = store.entries.enroll(wl, name, v, model, f"{sha}.jpg", sha * 64, 0.9, ADMIN, auth())
    if approve and not out[1]:
        store.entries.approve(wl, name, BOB)
    return out


def vec(seed):
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


def test_watchlist_create_conflict_and_missing(store):
    store.watchlists.create("wanted", Category.WANTED, ADMIN)
    with pytest.raises(Conflict, match="already exists"):
        store.watchlists.create("wanted", Category.MISSING, ADMIN)
    with pytest.raises(NotFound, match="no watchlist named 'nope'"):
        store.entries.enroll("nope", "A", vec(1), "m", "a.jpg", "x" * 64, 0.9, ADMIN, auth())


def test_enroll_dedupes_by_photo_and_builds_gallery(store):
    store.watchlists.create("wl", Category.WANTED, ADMIN)
    sid, dup = enrol(store, "wl", "Ann", vec(1), "a", approve=False)
    assert not dup
    assert store.gallery.active("m") == []  # pending until approved
    assert enrol(store, "wl", "Ann", vec(1), "a") == (sid, True)
    enrol(store, "wl", "Ann", vec(2), "b")
    enrol(store, "wl", "Bob", vec(3), "c")
    g = store.gallery.active("m")
    assert sorted(e.subject_name for e in g) == ["Ann", "Bob"]
    ann = next(e for e in g if e.subject_name == "Ann")
    assert abs(np.linalg.norm(ann.template) - 1) < 1e-5
    assert store.count(Template) == 3
    assert store.gallery.active("other-model") == []
    [info] = store.watchlists.all()
    assert (info.subjects, info.templates) == (2, 3)


def test_gallery_respects_status_expiry_and_scope(store):
    store.watchlists.create("wl", Category.MISSING, ADMIN)
    for i, name in enumerate(["active", "pending", "expired", "scoped"]):
        enrol(store, "wl", name, vec(i), str(i))
    now = datetime.now(UTC)
    with store.uow.write() as s:
        s.execute(update(Subject).where(Subject.name == "pending").values(status="pending"))
        s.execute(update(Subject).where(Subject.name == "expired").values(expires_at=now - timedelta(seconds=1)))
        s.execute(update(Subject).where(Subject.name == "scoped").values(scope={"cameras": ["cam-7"]}))
    assert sorted(e.subject_name for e in store.gallery.active("m", "cam-1", now)) == ["active"]
    assert sorted(e.subject_name for e in store.gallery.active("m", "cam-7", now)) == ["active", "scoped"]


def test_alert_is_idempotent_and_extends(store):
    store.watchlists.create("wl", Category.WANTED, ADMIN)
    sid, _ = enrol(store, "wl", "Ann", vec(1), "a")
    bad = AlertV1.of_match(
        Match(999, "Ghost", "wl", Category.WANTED, 0.95, 0.3),
        camera_id="cam",
        track_id=3,
        first_seen=1.0,
        last_seen=2.0,
        event_id="cam:run:9",
        samples=2,
    )
    with pytest.raises(StoreError, match="cannot store alert"):
        store.alerts.save(bad, None)
    m = Match(sid, "Ann", "wl", Category.WANTED, 0.95, 0.3)
    a = AlertV1.of_match(m, camera_id="cam", track_id=3, first_seen=1.0, last_seen=2.0, event_id="cam:run:3", samples=2)
    assert store.alerts.save(a, None) is True
    assert store.alerts.save(a, None) is False
    store.alerts.extend("cam:run:3", 5.5)
    store.alerts.extend("cam:run:3", 4.0)  # never moves backwards
    [row] = store.alerts.all()
    assert (row.subject_name, row.last_seen, row.first_seen) == ("Ann", 5.5, 1.0)


def test_unopenable_database_is_a_clear_error(tmp_path):
    bad = tmp_path / "notadb.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open database"):
        open_engine(f"sqlite:///{bad}")
