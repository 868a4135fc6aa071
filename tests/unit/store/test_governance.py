"""Issue 5's rules, enforced by the store: authorisations, two-person rules, audit, encryption, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select, text

from metrosight.bus.payloads import AlertV1
from metrosight.core.types import Category, Match
from metrosight.policy.crypto import CryptoError
from metrosight.policy.rules import Actor, Authorisation, Forbidden, PolicyError
from metrosight.store.models import AlertRecord, EventRecord, Template
from metrosight.store.repo import Store
from metrosight.store.retention import Retention

ADA = Actor("ada", frozenset({"admin", "approver", "auditor"}))
BOB = Actor("bob", frozenset({"approver", "operator"}))
CAROL = Actor("carol", frozenset({"operator"}))
DAN = Actor("dan", frozenset({"viewer"}))


def vec(seed):
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


def auth(days=30.0, **kw):
    return Authorisation("Code art. 1", "District court", "R-7", datetime.now(UTC) + timedelta(days=days), **kw)


@pytest.fixture()
def store(tmp_path):
    s = Store.for_home(tmp_path)
    s.users.add("ada", ["admin", "approver", "auditor"], None)
    for a in (BOB, CAROL, DAN):
        s.users.add(a.name, sorted(a.roles), ADA)
    s.watchlists.create("wl", Category.WANTED, ADA)
    return s


def names(store, **kw):
    return sorted(e.subject_name for e in store.gallery.active("m", **kw))


def test_entry_is_pending_until_a_different_approver_approves(store):
    store.entries.enroll("wl", "Eve", vec(1), "m", "e.jpg", "e" * 64, 0.9, ADA, auth())
    assert names(store) == []
    with pytest.raises(Forbidden, match="may not approve it"):
        store.entries.approve("wl", "Eve", ADA)  # self-approval
    with pytest.raises(Forbidden, match="approver role"):
        store.entries.approve("wl", "Eve", CAROL)
    assert names(store) == []
    assert store.entries.approve("wl", "Eve", BOB) == "active"
    assert names(store) == ["Eve"]
    with pytest.raises(PolicyError, match="nothing to approve"):
        store.entries.approve("wl", "Eve", BOB)


def test_new_entry_needs_authorisation_and_sane_expiry(store):
    with pytest.raises(PolicyError, match="new entry"):
        store.entries.enroll("wl", "Eve", vec(1), "m", "e.jpg", "e" * 64, 0.9, ADA, None)
    with pytest.raises(PolicyError, match="in the past"):
        store.entries.enroll("wl", "Eve", vec(1), "m", "e.jpg", "e" * 64, 0.9, ADA, auth(days=-1))
    with pytest.raises(PolicyError, match="more than 365 days"):
        store.entries.enroll("wl", "Eve", vec(1), "m", "e.jpg", "e" * 64, 0.9, ADA, auth(days=400))
    bad = Authorisation(" ", "court", "R", datetime.now(UTC) + timedelta(days=1))
    with pytest.raises(PolicyError, match="legal basis"):
        store.entries.enroll("wl", "Eve", vec(1), "m", "e.jpg", "e" * 64, 0.9, ADA, bad)
    with pytest.raises(Forbidden):
        store.entries.enroll("wl", "Eve", vec(1), "m", "e.jpg", "e" * 64, 0.9, CAROL, auth())
    assert store.count(Template) == 0


def test_urgent_entry_acts_at_once_and_lapses_after_24h_unless_approved(store):
    store.entries.enroll("wl", "Urgent", vec(2), "m", "u.jpg", "u" * 64, 0.9, ADA, auth(days=30, urgent=True))
    now = datetime.now(UTC)
    assert names(store) == ["Urgent"]
    assert store.gallery.active("m", now=now + timedelta(hours=25)) == []
    assert store.count(Template) == 0  # expired: templates destroyed
    [e] = store.entries.all("wl")
    assert e.status == "expired"


def test_approved_urgent_entry_keeps_its_full_term(store):
    store.entries.enroll("wl", "Urgent", vec(2), "m", "u.jpg", "u" * 64, 0.9, ADA, auth(days=30, urgent=True))
    store.entries.approve("wl", "Urgent", BOB)
    assert names(store, now=datetime.now(UTC) + timedelta(days=2)) == ["Urgent"]


def test_expiry_and_revocation_stop_matching_and_destroy_templates(store):
    store.entries.enroll("wl", "Short", vec(3), "m", "s.jpg", "s" * 64, 0.9, ADA, auth(days=1))
    store.entries.enroll("wl", "Long", vec(4), "m", "l.jpg", "l" * 64, 0.9, ADA, auth(days=30))
    store.entries.approve("wl", "Short", BOB)
    store.entries.approve("wl", "Long", BOB)
    assert names(store) == ["Long", "Short"]
    assert names(store, now=datetime.now(UTC) + timedelta(days=2)) == ["Long"]
    with pytest.raises(PolicyError, match="reason"):
        store.entries.revoke("wl", "Long", BOB, " ")
    assert store.entries.revoke("wl", "Long", BOB, "order withdrawn") == 1
    assert names(store) == [] and store.count(Template) == 0
    with pytest.raises(PolicyError, match="expired; record a new authorisation"):
        store.entries.enroll("wl", "Short", vec(3), "m", "s2.jpg", "t" * 64, 0.9, ADA, auth())


def test_new_photo_sends_an_approved_entry_back_to_pending(store):
    store.entries.enroll("wl", "Eve", vec(1), "m", "e.jpg", "e" * 64, 0.9, ADA, auth())
    store.entries.approve("wl", "Eve", BOB)
    store.entries.enroll("wl", "Eve", vec(5), "m", "e2.jpg", "f" * 64, 0.9, ADA)
    assert names(store) == []
    store.entries.approve("wl", "Eve", BOB)
    assert names(store) == ["Eve"]


def test_scope_by_camera_line_and_validity_window(store):
    start = datetime.now(UTC) + timedelta(days=1)
    store.entries.enroll("wl", "Line1", vec(1), "m", "a.jpg", "a" * 64, 0.9, ADA, auth(lines=("red",)))
    store.entries.enroll("wl", "Later", vec(2), "m", "b.jpg", "b" * 64, 0.9, ADA, auth(valid_from=start))
    store.entries.approve("wl", "Line1", BOB)
    store.entries.approve("wl", "Later", BOB)
    assert names(store, camera_id="c1", line="red") == ["Line1"]
    assert names(store, camera_id="c1", line="blue") == []
    assert names(store, camera_id="c1", line="blue", now=start + timedelta(hours=1)) == ["Later"]


def stored_alert(store, event="cam:r:1"):
    [entry] = [e for e in store.gallery.active("m")]
    m = Match(entry.subject_id, entry.subject_name, "wl", Category.WANTED, 0.95, 0.3)
    store.alerts.save(
        AlertV1.of_match(m, camera_id="cam", track_id=1, first_seen=1.0, last_seen=2.0, event_id=event, samples=2), None
    )
    with store.uow.read() as s:
        return s.scalar(select(AlertRecord.id).where(AlertRecord.event_id == event))


def test_two_different_operators_make_an_alert_actionable(store):
    store.entries.enroll("wl", "Eve", vec(1), "m", "e.jpg", "e" * 64, 0.9, ADA, auth())
    store.entries.approve("wl", "Eve", BOB)
    aid = stored_alert(store)
    with pytest.raises(Forbidden, match="operator role"):
        store.reviews.review(aid, DAN, "confirm")
    assert store.reviews.review(aid, CAROL, "confirm") == "confirmed_once"
    with pytest.raises(Forbidden, match="second, different operator"):
        store.reviews.review(aid, CAROL, "confirm")
    assert store.reviews.review(aid, BOB, "confirm") == "actionable"
    with pytest.raises(PolicyError, match="already actionable"):
        store.reviews.review(aid, BOB, "reject", "x")


def test_rejection_needs_a_reason_and_is_kept_as_feedback(store):
    store.entries.enroll("wl", "Eve", vec(1), "m", "e.jpg", "e" * 64, 0.9, ADA, auth())
    store.entries.approve("wl", "Eve", BOB)
    first = stored_alert(store, "cam:r:1")
    with pytest.raises(PolicyError, match="needs a reason"):
        store.reviews.review(first, CAROL, "reject")
    assert store.reviews.review(first, CAROL, "reject", "different person, older man") == "rejected"
    second = stored_alert(store, "cam:r:2")
    _, reviews, earlier = store.reviews.detail(second, CAROL)
    assert reviews == [] and [r.reason for r in earlier] == ["different person, older man"]


def test_every_action_is_audited_and_the_chain_verifies(store):
    store.entries.enroll("wl", "Eve", vec(1), "m", "e.jpg", "e" * 64, 0.9, ADA, auth())
    store.entries.approve("wl", "Eve", BOB)
    aid = stored_alert(store)
    store.reviews.review(aid, CAROL, "confirm")
    store.audit.record("carol", "identify", "p.jpg", {"faces": 1})
    actions = [e.action for e in store.audit.entries()]
    for a in (
        "user.add",
        "watchlist.create",
        "entry.create",
        "entry.enrol",
        "entry.approve",
        "alert.create",
        "alert.confirm",
        "identify",
    ):
        assert a in actions
    res = store.audit.verify()
    assert res.ok and res.checked == len(actions)
    with pytest.raises(Forbidden):
        store.audit.entries(CAROL)


def tamper(store, *sql):
    with store.engine.begin() as c:
        c.execute(text("DROP TRIGGER IF EXISTS audit_log_no_update"))
        c.execute(text("DROP TRIGGER IF EXISTS audit_log_no_delete"))
        for q in sql:
            c.execute(text(q))


def test_audit_log_refuses_updates(store):
    with pytest.raises(Exception, match="append-only"), store.engine.begin() as c:
        c.execute(text("UPDATE audit_log SET actor='mallory' WHERE seq=2"))


@pytest.mark.parametrize(
    ("sql", "seq", "why"),
    [
        (["UPDATE audit_log SET actor='mallory' WHERE seq=3"], 3, "altered"),
        (["UPDATE audit_log SET details='{}' WHERE seq=4"], 4, "altered"),
        (["DELETE FROM audit_log WHERE seq=3"], 4, "deleted"),
        (
            [
                "UPDATE audit_log SET seq=100 WHERE seq=3",
                "UPDATE audit_log SET seq=3 WHERE seq=4",
                "UPDATE audit_log SET seq=4 WHERE seq=100",
            ],
            3,
            None,
        ),
        (["DELETE FROM audit_log WHERE seq >= 5"], 5, "deleted"),
        (["DELETE FROM audit_log WHERE seq <= 2"], 3, "no purge accounts"),
    ],
)
def test_audit_verify_finds_the_first_broken_link(store, sql, seq, why):
    store.entries.enroll("wl", "Eve", vec(1), "m", "e.jpg", "e" * 64, 0.9, ADA, auth())
    store.entries.approve("wl", "Eve", BOB)
    store.checkpoint()  # as every command does when it ends
    assert store.audit.verify().ok
    tamper(store, *sql)
    res = store.audit.verify()
    assert not res.ok and res.broken_seq == seq
    if why:
        assert why in res.reason


def test_templates_and_crops_are_encrypted_and_shredding_makes_them_unreadable(store, tmp_path):
    v = vec(9)
    store.entries.enroll("wl", "Eve", v, "m", "e.jpg", "e" * 64, 0.9, ADA, auth())
    store.entries.approve("wl", "Eve", BOB)
    with store.uow.read() as s:
        blob = s.scalar(select(Template.descriptor))
    assert v.astype("<f4").tobytes() not in blob and len(blob) > 512
    sealed = store.watchlists.encrypt_for("wl", b"\xff\xd8jpeg")
    assert b"jpeg" not in sealed
    key = store.watchlists.wrapped_key("wl")
    assert store.keyring.decrypt(key, sealed) == b"\xff\xd8jpeg"
    with pytest.raises(Forbidden):
        store.watchlists.shred("wl", BOB)
    store.watchlists.shred("wl", ADA)
    assert store.watchlists.wrapped_key("wl") is None and names(store) == []
    with pytest.raises(CryptoError, match="destroyed"):
        store.keyring.decrypt(store.watchlists.wrapped_key("wl"), sealed)
    # even a copy of the template made before shredding cannot be read with what is left
    with pytest.raises(CryptoError):
        store.keyring.decrypt(store.keyring.new_wrapped_key(), blob)


def test_no_identification_window(store):
    now = datetime.now(UTC)
    with pytest.raises(Forbidden):
        store.windows.add("march", ["cam1"], [], now, now + timedelta(hours=2), "lawful assembly", BOB)
    wid = store.windows.add(
        "march", ["cam1"], [], now - timedelta(minutes=1), now + timedelta(hours=2), "assembly", ADA
    )
    assert store.policy.allows("cam1", None) is False
    assert store.policy.allows("cam2", None) is True
    assert store.policy.allows("cam1", None, now + timedelta(hours=3)) is True
    v0 = store.policy.version()
    store.windows.remove(wid, ADA)
    assert store.policy.allows("cam1", None) is True and store.policy.version() > v0
    assert [e.action for e in store.audit.entries()][-2:] == ["window.add", "window.remove"]


def test_retention_purge(store, tmp_path):
    store.entries.enroll("wl", "Eve", vec(1), "m", "e.jpg", "e" * 64, 0.9, ADA, auth())
    store.entries.approve("wl", "Eve", BOB)
    aid = stored_alert(store)
    crop = tmp_path / "crop.enc"
    crop.write_bytes(b"x")
    old = datetime.now(UTC) - timedelta(days=100)
    with store.uow.write() as s:
        a = s.get(AlertRecord, aid)
        a.crop_path, a.created_at = str(crop), old
        s.add(EventRecord(event_id="e1", camera_id="cam", kind="loitering", start_ts=0.0, created_at=old))
        s.add(EventRecord(event_id="e2", camera_id="cam", kind="loitering", start_ts=0.0))
    with pytest.raises(Forbidden):
        store.retention.purge(Retention(90, 30, 30, None), BOB)
    counts = store.retention.purge(Retention(90, 30, 30, None), ADA)
    assert counts["alerts"] == 1 and counts["crops"] == 1 and counts["events"] == 1
    assert not crop.exists() and store.count(AlertRecord) == 0 and store.count(EventRecord) == 1
    # purging the audit log keeps it verifiable
    counts = store.retention.purge(Retention(None, None, None, 0.0000001), ADA)
    assert counts["audit"] > 5
    res = store.audit.verify()
    assert res.ok, res


def test_unknown_user_and_first_user_rules(tmp_path):
    s = Store.for_home(tmp_path)
    with pytest.raises(PolicyError, match="must have the admin role"):
        s.users.add("x", ["operator"], None)
    s.users.add("root", ["admin"], None)
    with pytest.raises(PolicyError, match="an admin must add"):
        s.users.add("y", ["operator"], None)
    with pytest.raises(PolicyError, match="unknown role"):
        s.users.add("y", ["superuser"], s.users.actor("root"))
    with pytest.raises(Exception, match="unknown user 'nobody'"):
        s.users.actor("nobody")
