"""Issue 15, findings 1, 2 and 4 on the store itself, on SQLite and on a real PostgreSQL: many threads at once.

- Audit appends are serialised per database: concurrent audited actions each get their own, gap-free ``seq`` and
  the checkpoint file (appended to by every committing thread) ends at the newest link.
- Governed transitions are compare-and-set: a rejection is never lost, two confirmations by different operators
  always make an alert actionable, a revoked entry stays revoked whatever runs at the same time.
- Separation of duties: an approver who contributed a template of an entry cannot approve it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from cryptography.fernet import Fernet

from metrosight.bus.payloads import AlertV1
from metrosight.core.types import Category, Match
from metrosight.policy.crypto import KeyRing
from metrosight.policy.rules import Actor, Authorisation, PolicyError
from metrosight.store.db import open_engine
from metrosight.store.repo import Store

pytestmark = pytest.mark.integration

KEY = Fernet.generate_key()
ADA = Actor("ada", frozenset({"admin", "approver", "operator", "auditor"}))
BOB = Actor("bob", frozenset({"approver", "operator"}))
CAROL = Actor("carol", frozenset({"approver", "operator"}))
DAN = Actor("dan", frozenset({"approver", "operator"}))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'm.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = Store(open_engine(url), KeyRing(KEY), tmp_path / "audit.checkpoints")
    s.users.add("ada", sorted(ADA.roles), None)
    for a in (BOB, CAROL, DAN):
        s.users.add(a.name, sorted(a.roles), ADA)
    s.watchlists.create("wl", Category.WANTED, ADA)
    yield s
    s.engine.dispose()


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


def auth(urgent: bool = False) -> Authorisation:
    return Authorisation("law", "court", "R-1", datetime.now(UTC) + timedelta(days=30), urgent=urgent)


def enrol(s: Store, name: str, actor: Actor, seed: int, urgent: bool = False) -> None:
    s.entries.enroll("wl", name, vec(seed), "m", f"{name}-{seed}.jpg", f"{seed:064x}", 0.9, actor, auth(urgent))


def raise_alert(s: Store, n: int) -> int:
    sid = s.entries.all("wl")[0].id
    m = Match(sid, s.entries.all("wl")[0].name, "wl", Category.WANTED, 0.95, 0.3)
    # an hour apart: each a new alert, not a sighting appended to the previous one's episode
    assert s.alerts.save(
        AlertV1.of_match(
            m,
            camera_id="cam-1",
            track_id=n,
            first_seen=1.0,
            last_seen=2.0,
            event_id=f"cam-1:t:{n}",
            samples=3,
            group=None,
            media_origin=1.8e9 + 3600 * n,
        ),
        None,
    )
    return max(a.id for a in s.alerts.all())


def at_once(*calls: Callable[[], object]) -> list[object]:
    """Run the calls in threads released together; each result is the return value or the exception raised."""
    gate = threading.Barrier(len(calls))

    def run(fn: Callable[[], object]) -> object:
        gate.wait()
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - the outcome is what is checked
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def assert_chain_whole(s: Store) -> None:
    entries = s.audit.entries()
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    s.audit.checkpoint()  # what every command does at its end
    assert s.audit.verify().ok
    newest = max(s.audit.read_checkpoints().checkpoints, key=lambda c: c.seq)  # type: ignore[union-attr]
    assert (newest.seq, newest.head) == (entries[-1].seq, entries[-1].hash)


# -- finding 1: audit appends ---------------------------------------------------------------------------------------
def test_concurrent_audited_actions_get_unique_gap_free_sequence_numbers(store: Store) -> None:
    before = len(store.audit.entries())
    out = at_once(*[(lambda i=i: [store.reviews.all(ADA) for _ in range(5)]) for i in range(16)])
    assert not [o for o in out if isinstance(o, Exception)]
    assert len(store.audit.entries()) == before + 80
    assert_chain_whole(store)


def test_the_checkpoint_file_survives_concurrent_writers(store: Store) -> None:
    out = at_once(*[(lambda i=i: store.audit.record("ada", "test.touch", None, {"i": i})) for i in range(24)])
    assert out == [None] * 24  # no writer failed after its action was committed
    assert_chain_whole(store)
    assert not list(store.audit.log.checkpoints.path.parent.glob("*.tmp"))  # type: ignore[union-attr]


# -- finding 2: two-person review -------------------------------------------------------------------------------------
def approved_entry(s: Store) -> None:
    enrol(s, "Eve", ADA, 1)
    s.entries.approve("wl", "Eve", BOB)


@pytest.mark.parametrize("rounds", [6])
def test_confirm_and_reject_at_once_never_lose_the_rejection(store: Store, rounds: int) -> None:
    approved_entry(store)
    for n in range(rounds):
        aid = raise_alert(store, n)
        at_once(
            partial(store.reviews.review, aid, BOB, "confirm"),
            partial(store.reviews.review, aid, CAROL, "reject", "not him"),
        )
        status = next(a.status for a in store.alerts.all() if a.id == aid)
        assert status == "rejected"  # whichever came first, the rejection stands
        with pytest.raises(PolicyError, match="already rejected"):
            store.reviews.review(aid, DAN, "confirm")  # a third confirmation cannot make it actionable
        assert next(a.status for a in store.alerts.all() if a.id == aid) == "rejected"
    assert_chain_whole(store)


def test_two_confirmations_at_once_make_the_alert_actionable(store: Store) -> None:
    approved_entry(store)
    for n in range(6):
        aid = raise_alert(store, n)
        out = at_once(
            partial(store.reviews.review, aid, BOB, "confirm"), partial(store.reviews.review, aid, CAROL, "confirm")
        )
        assert sorted(out) == ["actionable", "confirmed_once"]  # type: ignore[type-var]
        assert next(a.status for a in store.alerts.all() if a.id == aid) == "actionable"
    assert_chain_whole(store)


def test_approve_and_revoke_at_once_leave_the_entry_revoked_for_good(store: Store) -> None:
    for n in range(5):
        name = f"P{n}"
        enrol(store, name, ADA, 10 + n)
        at_once(
            partial(store.entries.approve, "wl", name, BOB),
            partial(store.entries.revoke, "wl", name, CAROL, "order withdrawn"),
        )
        e = next(x for x in store.entries.all("wl") if x.name == name)
        assert (e.status, e.templates) == ("revoked", 0)
        with pytest.raises(PolicyError, match="revoked"):
            enrol(store, name, ADA, 100 + n)  # a photo added afterwards does not revive it
        with pytest.raises(PolicyError):
            store.entries.approve("wl", name, DAN)
        assert [g.subject_name for g in store.gallery.active("m")] == []
    assert_chain_whole(store)


# -- finding 4: separation of duties through templates ---------------------------------------------------------------
def gallery_template(s: Store, name: str) -> np.ndarray | None:
    return next((g.template for g in s.gallery.active("m") if g.subject_name == name), None)


def assert_active_entries_approved_by_non_contributors(s: Store) -> None:
    from sqlalchemy import select

    from metrosight.store.models import Subject, Template

    with s.uow.read() as ses:
        for e in ses.scalars(select(Subject).where(Subject.status == "active", Subject.approved_by.is_not(None))):
            added = set(ses.scalars(select(Template.added_by).where(Template.subject_id == e.id)))
            assert e.approved_by not in added | {e.created_by}, (e.name, e.approved_by, added)


def test_an_approver_who_added_a_photo_cannot_approve_the_entry(store: Store) -> None:
    enrol(store, "Eve", ADA, 1)
    store.entries.approve("wl", "Eve", BOB)
    enrol(store, "Eve", BOB, 2)  # bob adds a photo (of anyone) to ada's approved entry
    assert next(e.status for e in store.entries.all("wl") if e.name == "Eve") == "pending"
    assert gallery_template(store, "Eve") is None  # nothing matched until a fresh approval
    with pytest.raises(PolicyError, match="added a photo"):
        store.entries.approve("wl", "Eve", BOB)
    with pytest.raises(PolicyError, match="recorded this entry"):
        store.entries.approve("wl", "Eve", ADA)
    assert store.entries.approve("wl", "Eve", CAROL) == "active"  # a third approver who added nothing
    assert gallery_template(store, "Eve") is not None
    assert_active_entries_approved_by_non_contributors(store)


def test_a_photo_added_to_an_urgent_entry_waits_for_approval_and_the_24h_clock_stays(store: Store) -> None:
    enrol(store, "Urg", ADA, 1, urgent=True)  # active at once, for 24 h
    clock = next(e.expires_at for e in store.entries.all("wl") if e.name == "Urg")
    assert clock < datetime.now(UTC) + timedelta(hours=24, minutes=1)
    only_ada = gallery_template(store, "Urg")
    enrol(store, "Urg", BOB, 2)  # bob's photo: held, not matched
    np.testing.assert_allclose(gallery_template(store, "Urg"), only_ada)
    with pytest.raises(PolicyError, match="added a photo"):
        store.entries.approve("wl", "Urg", BOB)  # and bob cannot lift the 24-hour limit
    e = next(e for e in store.entries.all("wl") if e.name == "Urg")
    assert (e.status, e.expires_at, e.approved_by) == ("active", clock, None)
    assert store.entries.approve("wl", "Urg", CAROL) == "active"
    e = next(e for e in store.entries.all("wl") if e.name == "Urg")
    assert e.expires_at > datetime.now(UTC) + timedelta(days=29)  # properly approved: the requested expiry
    assert not np.allclose(gallery_template(store, "Urg"), only_ada)  # bob's photo released
    assert_active_entries_approved_by_non_contributors(store)


def test_adding_a_photo_while_another_approves_never_leaves_an_entry_approved_by_a_contributor(store: Store) -> None:
    for n in range(5):
        name = f"Q{n}"
        enrol(store, name, ADA, 20 + n)
        at_once(partial(store.entries.approve, "wl", name, BOB), partial(enrol, store, name, CAROL, 200 + n))
        e = next(x for x in store.entries.all("wl") if x.name == name)
        # either carol's photo came first (bob approved both) or bob's approval did (carol's photo undid it)
        assert (e.status, e.approved_by, e.templates) in (("active", "bob", 2), ("pending", None, 2))
        assert_active_entries_approved_by_non_contributors(store)
    assert_chain_whole(store)
