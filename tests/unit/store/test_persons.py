"""Persons in the store: every entry belongs to a person; linking, unlinking and recording different people are
audited and change what the matcher groups; existing entries become their own persons in the migration."""

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from metrosight.core.types import Category
from metrosight.policy.rules import Actor, Authorisation, Forbidden, PolicyError
from metrosight.store.db import alembic_config, open_engine
from metrosight.store.repo import Store

ADMIN = Actor("ada", frozenset({"admin", "approver", "operator", "auditor"}))
BOB = Actor("bob", frozenset({"approver", "operator"}))
OP = Actor("olga", frozenset({"operator"}))


def auth(ref="R-1"):
    return Authorisation("order", "court", ref, datetime.now(UTC) + timedelta(days=30))


def vec(seed):
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture()
def store(tmp_path):
    s = Store.for_home(tmp_path)
    s.users.add("ada", sorted(ADMIN.roles), None)
    s.users.add("bob", sorted(BOB.roles), ADMIN)
    s.watchlists.create("wanted", Category.WANTED, ADMIN)
    s.watchlists.create("missing", Category.MISSING, ADMIN)
    return s


def enrol(store, wl, name, v, sha, person=None, ref="R-1"):
    sid, _ = store.entries.enroll(wl, name, v, "m", f"{sha}.jpg", sha * 64, 0.9, ADMIN, auth(ref), person_id=person)
    store.entries.approve(wl, name, BOB)
    return sid


def actions(store):
    return [(e.action, json.loads(e.details)) for e in store.audit.entries()]


def test_each_new_entry_is_a_person_unless_linked(store):
    enrol(store, "wanted", "Ann", vec(1), "a")
    ann = store.persons.person_of("wanted", "Ann")
    enrol(store, "missing", "Ann L.", vec(1), "b", person=ann, ref="R-2")
    enrol(store, "missing", "Bob", vec(2), "c")
    assert store.persons.person_of("missing", "Ann L.") == ann != store.persons.person_of("missing", "Bob")
    g = store.gallery.active("m")
    assert {e.subject_name: e.person_id for e in g} == {
        "Ann": ann,
        "Ann L.": ann,
        "Bob": store.persons.person_of("missing", "Bob"),
    }
    assert {e.reference for e in g if e.person_id == ann} == {"R-1", "R-2"}
    created = [d for a, d in actions(store) if a == "entry.create"]
    assert created[1]["person_id"] == ann and created[1]["linked"] is True
    [p] = store.persons.all(ann)
    assert sorted((e.watchlist, e.name) for e in p.entries) == [("missing", "Ann L."), ("wanted", "Ann")]


def test_link_unlink_and_distinct_are_audited_and_change_the_gallery(store):
    enrol(store, "wanted", "Ann", vec(1), "a")
    enrol(store, "missing", "A. Lee", vec(1), "b")
    a, b = store.persons.person_of("wanted", "Ann"), store.persons.person_of("missing", "A. Lee")
    v0 = store.policy.version()
    with pytest.raises(Forbidden):
        store.persons.link(a, b, OP, "same")
    with pytest.raises(PolicyError, match="reason"):
        store.persons.link(a, b, ADMIN, " ")
    assert store.persons.link(a, b, ADMIN, "same passport") == 1
    assert store.policy.version() > v0
    assert {e.person_id for e in store.gallery.active("m")} == {a}
    new = store.persons.unlink_entry("missing", "A. Lee", ADMIN, "wrong link")
    assert store.persons.person_of("missing", "A. Lee") == new != a
    store.persons.mark_distinct(new, a, ADMIN, "twins")
    store.persons.mark_distinct(a, new, ADMIN, "twins")  # idempotent
    assert store.persons.distinct_pairs() == {(min(a, new), max(a, new))}
    with pytest.raises(PolicyError, match="different people"):
        store.persons.link(a, new, ADMIN, "same")
    with pytest.raises(PolicyError, match="one person"):
        store.persons.mark_distinct(a, a, ADMIN, "x")
    acts = [x for x, _ in actions(store)]
    assert acts.count("person.link") == 1 and acts.count("person.unlink") == 1 and acts.count("person.distinct") == 1
    store.checkpoint()  # as every command does when it ends
    assert store.audit.verify().ok


def test_enrolling_into_an_entry_of_another_person_is_refused(store):
    enrol(store, "wanted", "Ann", vec(1), "a")
    enrol(store, "wanted", "Bob", vec(2), "b")
    bob = store.persons.person_of("wanted", "Bob")
    with pytest.raises(PolicyError, match="belongs to person"):
        store.entries.enroll("wanted", "Ann", vec(3), "m", "c.jpg", "c" * 64, 0.9, ADMIN, person_id=bob)


def test_migration_makes_each_existing_entry_its_own_person(tmp_path):
    from alembic import command

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0008")
        conn.execute(
            text("INSERT INTO watchlists (id, name, category, created_at) VALUES (1, 'w', 'wanted', '2026-01-01')")
        )
        for i, name in ((1, "Ann"), (2, "Ann"), (3, "Bob")):
            conn.execute(
                text(
                    "INSERT INTO subjects (id, watchlist_id, name, status, created_at, urgent) "
                    f"VALUES ({i}, 1, '{name}{i}', 'active', '2026-01-01', 0)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO templates"
                    " (subject_id, descriptor, model, source_name, source_sha256, quality, created_at)"
                    f" VALUES ({i}, x'00', 'm', 'p.jpg', '{i}', 0.9, '2026-01-01')"
                )
            )
    engine.dispose()
    engine = open_engine(url)  # upgrades to head
    with engine.connect() as c:
        rows = c.execute(
            text("SELECT s.id, s.person_id, p.name FROM subjects s JOIN persons p ON p.id = s.person_id")
        ).all()
        assert c.execute(text("SELECT count(*) FROM templates")).scalar() == 3  # nothing cascaded away
    assert len({pid for _, pid, _ in rows}) == 3 and sorted(n for *_, n in rows) == ["Ann1", "Ann2", "Bob3"]
