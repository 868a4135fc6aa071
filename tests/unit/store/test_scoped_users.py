"""Scoped roles in the store: a user's roles carry scopes (checked, audited), the actor carries them, and users made
before scopes existed stay global."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from metrosight.core.names import InvalidInput
from metrosight.core.types import Category
from metrosight.policy.rules import Actor, PolicyError
from metrosight.policy.scope import GLOBAL, CameraGroups, RoleGrant, Scope
from metrosight.store.repo import Store

GROUPS = CameraGroups.of({"line1": ["cam-1"], "line2": ["cam-2"]})
ADA = Actor("ada", frozenset({"admin"}))


@pytest.fixture()
def store(tmp_path):
    st = Store.for_home(tmp_path, camera_groups=GROUPS)
    st.users.add("ada", ["admin"], None)
    st.watchlists.create("missing", Category.MISSING, ADA)
    st.watchlists.create("wanted", Category.WANTED, ADA)
    return st


def test_scoped_user_is_stored_checked_and_audited(store):
    line1 = Scope.parse(["cameras:line1", "watchlist:missing"])
    store.users.add("op", ["operator", "viewer"], ADA, scopes={"operator": line1})
    op = store.users.actor("op")
    assert op.scope_of("operator") == line1 and op.scope_of("viewer") == GLOBAL
    assert op.grants == (RoleGrant("operator", line1), RoleGrant("viewer"))
    info = next(u for u in store.accounts.users(ADA) if u.name == "op")
    assert info.scopes == {"operator": ["cameras:line1", "watchlist:missing"]}
    add = store.audit.entries()[-1]
    assert add.action == "user.add" and json.loads(add.details)["scopes"] == info.scopes

    store.accounts.set_grants("op", [RoleGrant("operator", Scope.parse(["cameras:line2"])), RoleGrant("viewer")], ADA)
    assert store.users.actor("op").scope_of("operator") == Scope.parse(["cameras:line2"])
    upd = store.audit.entries()[-1]
    assert upd.action == "user.update"
    assert json.loads(upd.details)["scopes"] == {
        "from": {"operator": ["cameras:line1", "watchlist:missing"]},
        "to": {"operator": ["cameras:line2"]},
    }
    store.accounts.update_user("op", ADA, disabled=False)  # nothing changes: nothing audited, scope kept
    assert store.audit.entries()[-1].id == upd.id and store.users.actor("op").scope_of("operator").camera_groups
    store.accounts.update_user("op", ADA, scopes={})  # global again
    assert store.users.actor("op").scoped == ()


def test_bad_scopes_are_refused_and_change_nothing(store):
    store.users.add("op", ["operator"], ADA)
    with pytest.raises(InvalidInput, match="no camera group 'line9'"):
        store.accounts.update_user("op", ADA, scopes={"operator": Scope.parse(["cameras:line9"])})
    with pytest.raises(PolicyError, match="no watchlist 'nope'"):
        store.accounts.update_user("op", ADA, scopes={"operator": Scope.parse(["watchlist:nope"])})
    with pytest.raises(PolicyError, match="does not hold"):
        store.accounts.update_user("op", ADA, scopes={"approver": Scope.parse(["cameras:line1"])})
    with pytest.raises(InvalidInput, match="cannot be scoped"):
        store.users.add("adm", ["admin"], ADA, scopes={"admin": Scope.parse(["cameras:line1"])})
    assert store.users.actor("op").scoped == () and "adm" not in {n for n, _r, _d in store.users.all()}


def test_watchlist_scope_is_stored_under_the_canonical_name(store):
    store.users.add("ap", ["approver"], ADA, scopes={"approver": Scope.parse(["watchlist:  missing "])})
    assert store.users.actor("ap").scope_of("approver").watchlists == frozenset({"missing"})


def test_existing_users_stay_global_after_the_migration(store):
    with store.engine.begin() as c:
        assert c.execute(text("SELECT scopes FROM users WHERE name = 'ada'")).scalar() is None
    assert store.users.actor("ada").view(("admin",), GROUPS).everything
