"""The store's unit of work: every repository writes through one, and an audit entry commits or rolls back with
the change it records."""

from __future__ import annotations

import pytest

from metrosight.core.types import Category
from metrosight.policy.rules import Actor
from metrosight.store.models import AuditEntry, Watchlist
from metrosight.store.repo import Store

ADA = Actor("ada", frozenset({"admin", "approver", "auditor"}))


@pytest.fixture()
def store(tmp_path):
    s = Store.for_home(tmp_path)
    s.users.add("ada", sorted(ADA.roles), None)
    return s


def test_every_repository_shares_the_stores_unit_of_work(store):
    repos = [store.users, store.accounts, store.watchlists, store.entries, store.gallery, store.persons]
    repos += [store.alerts, store.reviews, store.feed, store.runs, store.events, store.windows, store.audit]
    repos += [store.retention, store.policy]
    assert all(r.uow is store.uow for r in repos)


def test_a_change_that_fails_leaves_neither_its_row_nor_its_audit_entry(store):
    before = [e.seq for e in store.audit.entries()]
    with pytest.raises(RuntimeError), store.uow.write() as s:
        s.add(Watchlist(name="half", category=str(Category.WANTED), created_by="ada"))
        store.uow.audit(s, "ada", "watchlist.create", "half", {})
        raise RuntimeError("the change failed after its entry was written")
    assert [e.seq for e in store.audit.entries()] == before and store.count(Watchlist) == 0
    store.watchlists.create("wl", Category.WANTED, ADA)  # the chain goes on from where it was
    seqs = [e.seq for e in store.audit.entries()]
    assert seqs == list(range(1, len(seqs) + 1)) and store.audit.entries()[-1].action == "watchlist.create"
    assert store.audit.verify().ok


def test_a_standalone_entry_is_one_transaction(store):
    n = store.count(AuditEntry)
    store.audit.record("ada", "identify", None, {"faces": 1})
    assert store.count(AuditEntry) == n + 1 and store.audit.entries(limit=1)[0].action == "identify"
