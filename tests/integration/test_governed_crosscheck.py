"""Issue 15 follow-up (red team): a database writer forging a confirmation or an approval.

The attacker can write the database with plain SQL but cannot read the key store: they insert ``alert_reviews``
rows for made-up operators and set the alert ``actionable``, or set a pending entry ``active`` with
``approved_by='bob'``. ``verify_audit`` (what ``metrosight audit verify`` and ``POST /api/audit/verify`` call)
must report each such row, while every legitimate workflow — confirm, reject, approve, revoke, a photo added after
approval, urgent entries, expiry, episodes with several sightings, retention purges of the audit log — verifies
clean. On SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from metrosight.bus.payloads import AlertV1
from metrosight.core.types import Category, Match
from metrosight.policy.crypto import KeyRing
from metrosight.policy.rules import Actor, Authorisation
from metrosight.store.db import open_engine
from metrosight.store.repo import Store
from metrosight.store.retention import Retention

pytestmark = pytest.mark.integration

KEY = Fernet.generate_key()
ADA = Actor("ada", frozenset({"admin", "approver", "operator", "auditor"}))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'm.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = Store(open_engine(url), KeyRing(KEY), tmp_path / "audit.checkpoints")
    yield s
    s.engine.dispose()


def _vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


def workflows(s: Store) -> dict[str, int]:
    """Every legitimate governed workflow once. Returns ids the tests tamper with."""
    s.users.add("ada", sorted(ADA.roles), None)
    for name in ("bob", "carol", "dan", "op1", "op2", "op3"):
        s.users.add(name, ["approver"] if name in ("bob", "carol", "dan") else ["operator"], ADA)
    s.watchlists.create("wl", Category.WANTED, ADA)
    s.watchlists.create("gone", Category.WANTED, ADA)
    soon = datetime.now(UTC) + timedelta(days=30)
    auth = Authorisation("law", "court", "R-1", soon)
    bob, carol, dan = s.users.actor("bob"), s.users.actor("carol"), s.users.actor("dan")
    s.entries.enroll("wl", "Eve", _vec(1), "m", "eve.jpg", "a1" * 32, 0.9, bob, auth)
    s.entries.approve("wl", "Eve", carol)
    # a photo added after approval sends it back to pending; approved again by someone who added none
    s.entries.enroll("wl", "Eve", _vec(2), "m", "eve2.jpg", "a2" * 32, 0.9, carol, auth)
    s.entries.approve("wl", "Eve", dan)
    s.entries.enroll("wl", "Pending", _vec(3), "m", "p.jpg", "a3" * 32, 0.9, bob, auth)
    s.entries.enroll("wl", "Revoked", _vec(4), "m", "r.jpg", "a4" * 32, 0.9, bob, auth)
    s.entries.approve("wl", "Revoked", carol)
    s.entries.revoke("wl", "Revoked", carol, "order lifted")
    s.entries.enroll(
        "wl",
        "Urgent",
        _vec(5),
        "m",
        "u.jpg",
        "a5" * 32,
        0.9,
        bob,
        Authorisation("law", "court", "R-2", soon, urgent=True),
    )
    s.entries.enroll("wl", "Urgent", _vec(8), "m", "u2.jpg", "a8" * 32, 0.9, carol, auth)  # held until approved
    s.entries.enroll(
        "wl",
        "Short",
        _vec(6),
        "m",
        "s.jpg",
        "a6" * 32,
        0.9,
        bob,
        Authorisation("law", "court", "R-3", datetime.now(UTC) + timedelta(days=2)),
    )
    s.entries.approve("wl", "Short", carol)
    s.entries.enroll("gone", "Shredded", _vec(7), "m", "x.jpg", "a7" * 32, 0.9, bob, auth)
    s.watchlists.shred("gone", ADA)
    ids = {e.name: e.id for e in s.entries.all("wl")}
    eve = next(e for e in s.entries.all("wl") if e.name == "Eve")
    m = Match(eve.id, eve.name, "wl", Category.WANTED, 0.95, 0.3)
    t0 = datetime.now(UTC).timestamp()

    def seen(n: int, cam: str, at: float) -> int:
        return s.alerts.store_sighting(
            AlertV1.of_match(
                m,
                camera_id=cam,
                track_id=n,
                first_seen=1.0,
                last_seen=2.0,
                event_id=f"{cam}:t:{n}",
                samples=3,
                group="red",
                media_origin=t0 + at,
            ),
            None,
        ).alert_id

    a1 = seen(1, "cam-a", 1)
    assert seen(2, "cam-b", 2) == a1  # an episode of two sightings
    s.reviews.review(a1, s.users.actor("op1"), "confirm")
    assert s.reviews.review(a1, s.users.actor("op2"), "confirm") == "actionable"
    a2 = seen(5, "cam-b", 5000)
    s.reviews.review(a2, s.users.actor("op1"), "reject", "not him")
    a3 = seen(9, "cam-c", 9000)
    s.reviews.review(a3, s.users.actor("op3"), "confirm")
    a4 = seen(13, "cam-d", 13000)  # left new
    s.audit.checkpoint()
    return {"new": a4, "once": a3, "pending": ids["Pending"], "active": ids["Eve"], "revoked": ids["Revoked"]}


def attacker(s: Store, *sql: str, **params: object) -> None:
    """Plain SQL as a database writer (no key)."""
    with s.engine.begin() as c:
        for q in sql:
            c.execute(text(q), params)


def forge_confirmations(s: Store, alert_id: int) -> None:
    attacker(
        s,
        "INSERT INTO alert_reviews (alert_id, user, action, at) VALUES (:a, 'mallory', 'confirm', :t)".replace(
            "user", '"user"'
        ),
        "INSERT INTO alert_reviews (alert_id, user, action, at) VALUES (:a, 'trent', 'confirm', :t)".replace(
            "user", '"user"'
        ),
        "UPDATE alerts SET status = 'actionable' WHERE id = :a",
        a=alert_id,
        t=datetime.now(UTC),
    )


def test_legitimate_workflows_verify_clean(store: Store) -> None:
    workflows(store)
    res = store.audit.verify()
    assert res.ok, res
    assert store.audit.governed_mismatches() == []
    assert store.audit.unbacked_active() == {}
    matched = {g.subject_name for g in store.gallery.active("m")}
    assert matched == {"Eve", "Urgent", "Short"}  # the urgent entry matches its creator's photo before approval


def test_forged_confirmations_are_detected(store: Store) -> None:
    ids = workflows(store)
    forge_confirmations(store, ids["new"])
    assert next(a.status for a in store.alerts.all() if a.id == ids["new"]) == "actionable"  # the store believes it
    res = store.audit.verify()
    assert not res.ok
    text_ = "\n".join(res.mismatches)
    assert "'mallory'" in text_ and "'trent'" in text_, res.mismatches
    assert f"alert {ids['new']} is actionable but its keyed reviews make it new" in text_
    assert "not backed by the keyed log" in (res.reason or "")


def test_a_forged_second_confirmation_is_detected(store: Store) -> None:
    ids = workflows(store)
    attacker(
        store,
        "INSERT INTO alert_reviews (alert_id, \"user\", action, at) VALUES (:a, 'op2', 'confirm', :t)",
        "UPDATE alerts SET status = 'actionable' WHERE id = :a",
        a=ids["once"],
        t=datetime.now(UTC),
    )
    res = store.audit.verify()
    assert not res.ok
    assert any("'op2'" in m and "no keyed alert.confirm" in m for m in res.mismatches), res.mismatches


def test_a_deleted_rejection_is_detected(store: Store) -> None:
    workflows(store)
    attacker(
        store,
        "DELETE FROM alert_reviews WHERE action = 'reject'",
        "UPDATE alerts SET status = 'new' WHERE status = 'rejected'",
    )
    res = store.audit.verify()
    assert not res.ok
    assert any("reject by 'op1' that has no review row" in m for m in res.mismatches), res.mismatches


def test_a_forged_approval_is_detected(store: Store) -> None:
    ids = workflows(store)
    attacker(store, "UPDATE subjects SET status = 'active', approved_by = 'bob' WHERE id = :e", e=ids["pending"])
    assert any(e.status == "active" for e in store.entries.all("wl") if e.id == ids["pending"])
    res = store.audit.verify()
    assert not res.ok
    assert any(
        f"entry {ids['pending']} (wl/Pending) is active but the keyed log says pending" in m for m in res.mismatches
    ), res.mismatches
    # the matcher does not trust it: every gallery load (run, serve, node workers) leaves it out
    assert set(store.audit.unbacked_active()) == {ids["pending"]}
    assert "Pending" not in {g.subject_name for g in store.gallery.active("m")}
    assert "Eve" in {g.subject_name for g in store.gallery.active("m")}


def test_an_approval_credited_to_someone_else_or_revived_is_detected(store: Store) -> None:
    ids = workflows(store)
    attacker(store, "UPDATE subjects SET approved_by = 'mallory' WHERE id = :e", e=ids["active"])
    attacker(store, "UPDATE subjects SET status = 'active' WHERE id = :e", e=ids["revoked"])
    res = store.audit.verify()
    assert not res.ok
    joined = "\n".join(res.mismatches)
    assert "approved by 'mallory', but the keyed log has its approval by 'dan'" in joined
    assert f"entry {ids['revoked']} (wl/Revoked) is active but the keyed log says revoked" in joined
    assert {"Eve", "Revoked"}.isdisjoint({g.subject_name for g in store.gallery.active("m")})


def test_forged_templates_are_detected(store: Store) -> None:
    ids = workflows(store)
    attacker(store, "UPDATE templates SET added_by = 'mallory' WHERE source_sha256 = :h", h="a1" * 32)
    attacker(store, "UPDATE templates SET held = false WHERE source_sha256 = :h", h="a8" * 32)
    res = store.audit.verify()
    assert not res.ok
    joined = "\n".join(res.mismatches)
    assert (
        f"of entry {ids['active']} (photo {'a1' * 6}…) says it was added by 'mallory'; the keyed log says 'bob'"
        in joined
    ), joined
    assert "is matchable, but the keyed log holds it until an approval that never came" in joined, joined


def test_after_audit_purges_state_is_carried_forward_no_false_positive_and_forgery_still_detected(
    store: Store,
) -> None:
    ids = workflows(store)
    later = datetime.now(UTC) + timedelta(days=5)  # Short and Urgent expire by then; every audit entry is > 1 day old
    counts = store.retention.purge(Retention(None, None, None, 1), ADA, now=later)
    assert counts["audit"] > 0 and counts["entries_expired"] == 2  # Short, and Urgent (24 h)
    store.audit.checkpoint()
    assert store.audit.verify().ok, store.audit.verify()
    store.reviews.review(
        ids["new"], store.users.actor("op3"), "confirm"
    )  # after the purge, on an alert whose log was purged
    store.retention.purge(Retention(None, None, None, 1), ADA, now=later + timedelta(days=5))  # carried over carried
    store.audit.checkpoint()
    assert store.audit.verify().ok, store.audit.verify()
    forge_confirmations(store, ids["once"])
    attacker(store, "UPDATE subjects SET status = 'active', approved_by = 'bob' WHERE id = :e", e=ids["pending"])
    res = store.audit.verify()
    assert not res.ok
    assert len([m for m in res.mismatches if "'mallory'" in m or "'trent'" in m]) == 2, res.mismatches
    attacker(store, "UPDATE templates SET held = false WHERE source_sha256 = :h", h="a2" * 32)
    attacker(store, "UPDATE templates SET added_by = 'mallory' WHERE source_sha256 = :h", h="a2" * 32)
    assert any("says it was added by 'mallory'" in m for m in store.audit.verify().mismatches)
    assert any(f"entry {ids['pending']}" in m for m in res.mismatches), res.mismatches
    assert set(store.audit.unbacked_active()) == {ids["pending"]}


# -- the command line -------------------------------------------------------------------------------------------------
from tests.integration.test_tamper import inst  # noqa: E402,F401  (an installation made by the CLI, both stores)


def test_audit_verify_on_the_command_line_lists_a_forged_entry(inst) -> None:  # noqa: F811
    now = datetime.now(UTC)
    inst.attacker(
        "INSERT INTO persons (id, name, created_at) VALUES (900, 'Mallory', :t)",
        "INSERT INTO subjects (id, watchlist_id, person_id, name, status, created_at, created_by, approved_by, "
        "urgent) SELECT 901, id, 900, 'Mallory', 'active', :t, 'ada', 'bob', false FROM watchlists WHERE name = 'wl'",
        params=[{"t": now}, {"t": now}],
    )
    code, out = inst.verify()
    assert code == 1, out
    assert "entry 901 (wl/Mallory) is active but the keyed log has no entry.create for it" in out, out
    assert "not backed by it" in out and "Traceback" not in out, out
