"""Issue 15, must-show 2: a hypothesis state machine drives the entry and alert workflows of the store with two or
three people, in random orders and with requests sent at the same moment from several threads, on SQLite and on a
real PostgreSQL. After every step:

- an actionable alert has confirmations by two different people and no rejection; a rejected one stays rejected,
  and every alert's status is the one its reviews give;
- an active, approved entry was approved by someone who neither recorded it nor added any of its templates; an
  active entry nobody approved is an urgent one within its 24 hours, whose templates by others are held;
- revoked and expired entries hold no template and never come back;
- the audit chain verifies, its sequence unique and gap-free.

A modest run by default; ``-m slow`` runs a bigger one.
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import select

from metrosight.bus.payloads import AlertV1
from metrosight.core.types import Category, Match
from metrosight.policy.crypto import KeyRing
from metrosight.policy.rules import Actor, Authorisation, PolicyError, alert_status, aware
from metrosight.store.db import open_engine
from metrosight.store.errors import NotFound
from metrosight.store.models import AlertRecord, AlertReview, Subject, Template
from metrosight.store.repo import Store

pytestmark = pytest.mark.integration

KEY = Fernet.generate_key()
PEOPLE = {
    "ada": Actor("ada", frozenset({"admin", "approver", "operator"})),
    "bob": Actor("bob", frozenset({"approver", "operator"})),
    "cy": Actor("cy", frozenset({"approver", "operator"})),
}
people = st.sampled_from(sorted(PEOPLE))
REFUSED = (PolicyError, NotFound)  # a rule said no (Forbidden and Changed are PolicyErrors): a normal outcome
_names = itertools.count()


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


def make_machine(store: Store) -> type[RuleBasedStateMachine]:
    """A state machine class on ``store`` (shared by the examples: each example works on new entries)."""

    class Workflows(RuleBasedStateMachine):
        entries = Bundle("entries")
        alerts = Bundle("alerts")

        def __init__(self) -> None:
            super().__init__()
            self.s = store
            self.terminal: set[int] = set()
            self.names: list[str] = []  # this example's entries and alerts (the store is shared by the examples)
            self.alert_ids: list[int] = []

        # -- single requests ----------------------------------------------------------------------------------
        def op(self, kind: str, target: int | str, who: str) -> object:
            """One request; a refusal by a rule is returned, anything else raised."""
            actor = PEOPLE[who]
            try:
                if kind == "approve":
                    return self.s.entries.approve("wl", str(target), actor)
                if kind == "revoke":
                    return self.s.entries.revoke("wl", str(target), actor, "withdrawn")
                if kind == "photo":
                    seed = next(_names)
                    return self.s.entries.enroll(
                        "wl", str(target), vec(seed), "m", f"{seed}.jpg", f"{seed:064x}", 0.9, actor
                    )
                if kind == "expire":  # the 24-hour clock of urgent entries runs out
                    return self.s.policy.expire_due(datetime.now(UTC) + timedelta(hours=24, minutes=1))
                if kind in ("confirm", "reject"):
                    return self.s.reviews.review(int(target), actor, kind, "not them" if kind == "reject" else None)
            except REFUSED as exc:
                return exc
            raise AssertionError(kind)

        def at_once(self, ops: list[tuple[str, int | str, str]]) -> None:
            gate = threading.Barrier(len(ops))

            def run(o: tuple[str, int | str, str]) -> object:
                gate.wait()
                return self.op(*o)

            with ThreadPoolExecutor(len(ops)) as pool:
                list(pool.map(run, ops))  # an unexpected exception (a 500 in the service) fails the test

        @rule(target=entries, creator=people, urgent=st.booleans())
        def record_entry(self, creator: str, urgent: bool) -> str:
            name = f"E{next(_names)}"
            seed = next(_names)
            auth = Authorisation("law", "court", "R", datetime.now(UTC) + timedelta(days=30), urgent=urgent)
            self.s.entries.enroll("wl", name, vec(seed), "m", f"{seed}.jpg", f"{seed:064x}", 0.9, PEOPLE[creator], auth)
            self.names.append(name)
            return name

        @rule(entry=entries, who=people, kind=st.sampled_from(["approve", "revoke", "photo"]))
        def entry_request(self, entry: str, who: str, kind: str) -> None:
            self.op(kind, entry, who)

        @rule(
            entry=entries,
            who=st.lists(people, min_size=2, max_size=3),
            kinds=st.lists(st.sampled_from(["approve", "revoke", "photo", "expire"]), min_size=3, max_size=3),
        )
        def entry_requests_at_once(self, entry: str, who: list[str], kinds: list[str]) -> None:
            self.at_once([(k, entry, w) for k, w in zip(kinds, who, strict=False)])

        @rule(target=alerts, entry=entries)
        def raise_alert(self, entry: str) -> int:
            e = next(x for x in self.s.entries.all("wl") if x.name == entry)
            n = next(_names)
            m = Match(e.id, entry, "wl", Category.WANTED, 0.95, 0.3)
            # an hour apart: each its own alert (not a sighting of another's episode)
            self.s.alerts.save(
                AlertV1.of_match(
                    m,
                    camera_id="cam-1",
                    track_id=n,
                    first_seen=1.0,
                    last_seen=2.0,
                    event_id=f"cam-1:sm:{n}",
                    samples=3,
                    group=None,
                    media_origin=1.8e9 + 3600 * n,
                ),
                None,
            )
            with self.s.uow.read() as ses:
                aid = int(ses.scalar(select(AlertRecord.id).where(AlertRecord.event_id == f"cam-1:sm:{n}")))
            self.alert_ids.append(aid)
            return aid

        @rule(alert=alerts, who=people, kind=st.sampled_from(["confirm", "confirm", "reject"]))
        def review(self, alert: int, who: str, kind: str) -> None:
            self.op(kind, alert, who)

        @rule(
            alert=alerts,
            who=st.lists(people, min_size=2, max_size=3, unique=True),
            kinds=st.lists(st.sampled_from(["confirm", "reject"]), min_size=3, max_size=3),
        )
        def reviews_at_once(self, alert: int, who: list[str], kinds: list[str]) -> None:
            self.at_once([(k, alert, w) for k, w in zip(kinds, who, strict=False)])

        # -- invariants -----------------------------------------------------------------------------------------
        @invariant()
        def alerts_follow_their_reviews(self) -> None:
            with self.s.uow.read() as ses:
                for a in ses.scalars(select(AlertRecord).where(AlertRecord.id.in_(self.alert_ids))):
                    rs = [
                        (r.user, r.action) for r in ses.scalars(select(AlertReview).where(AlertReview.alert_id == a.id))
                    ]
                    assert a.status == alert_status(rs), (a.id, a.status, rs)
                    if a.status == "actionable":
                        assert len({u for u, act in rs if act == "confirm"}) >= 2 and all(
                            act != "reject" for _, act in rs
                        )

        @invariant()
        def entries_are_approved_by_non_contributors(self) -> None:
            now = datetime.now(UTC)
            with self.s.uow.read() as ses:
                for e in ses.scalars(select(Subject).where(Subject.name.in_(self.names))):
                    tpl = list(ses.scalars(select(Template).where(Template.subject_id == e.id)))
                    if e.status in ("revoked", "expired"):
                        assert not tpl, (e.name, e.status)
                        self.terminal.add(e.id)
                        continue
                    assert e.id not in self.terminal, f"{e.name} came back as {e.status}"
                    if e.status == "active" and e.approved_by is not None:
                        assert e.approved_by not in {t.added_by for t in tpl} | {e.created_by}, e.name
                        assert not any(t.held for t in tpl)
                    elif e.status == "active":  # unapproved: only an urgent entry, within 24 h, others' photos held
                        assert e.urgent and aware(e.expires_at) <= aware(e.created_at) + timedelta(hours=24, seconds=1)
                        assert all(t.held == (t.added_by != e.created_by) for t in tpl), e.name
                    assert aware(e.expires_at) > now  # type: ignore[operator]

        @invariant()
        def audit_chain_verifies(self) -> None:
            entries = self.s.audit.entries()
            assert [x.seq for x in entries] == list(range(1, len(entries) + 1))
            assert self.s.audit.verify().ok

    return Workflows


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    url = f"sqlite:///{tmp_path / 'm.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = Store(open_engine(url), KeyRing(KEY), tmp_path / "audit.head")
    s.users.add("ada", sorted(PEOPLE["ada"].roles), None)
    for name in ("bob", "cy"):
        s.users.add(name, sorted(PEOPLE[name].roles), PEOPLE["ada"])
    s.watchlists.create("wl", Category.WANTED, PEOPLE["ada"])
    yield s
    s.engine.dispose()


def run(store: Store, examples: int, steps: int) -> None:
    run_state_machine_as_test(
        make_machine(store),
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        ),
    )


def test_workflows_under_random_interleavings(store: Store) -> None:
    run(store, examples=12, steps=12)


@pytest.mark.slow
def test_workflows_under_random_interleavings_long(store: Store) -> None:
    run(store, examples=60, steps=25)
