"""Accounts: password sign-in, user administration and API tokens (hashed, revocable, expiring), all audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from metrosight.policy.passwords import hash_password
from metrosight.policy.rules import Actor, Forbidden, PolicyError
from metrosight.store.accounts import token_digest
from metrosight.store.auditing import AuditRepository
from metrosight.store.models import ApiToken
from metrosight.store.repo import Store

ADA = Actor("ada", frozenset({"admin", "operator"}))
VIC_PW = "vault orbit lantern"


@pytest.fixture()
def accounts(tmp_path):
    store = Store.for_home(tmp_path)
    store.users.add("ada", ["admin", "operator"], None, hash_password("ada-secret"))
    acc = store.accounts
    acc.add_user("vic", ["viewer"], VIC_PW, ADA)
    return acc


def actions(acc):
    return [e.action for e in AuditRepository(acc.uow).entries()]


def test_password_sign_in(accounts):
    assert accounts.authenticate("ada", "ada-secret") == ADA
    assert accounts.authenticate("ada", "wrong") is None
    assert accounts.authenticate("nobody", "ada-secret") is None
    accounts.update_user("vic", ADA, disabled=True)
    assert accounts.authenticate("vic", VIC_PW) is None


def test_tokens_are_stored_hashed_and_can_be_revoked(accounts):
    info, token = accounts.create_token("vic", "prometheus", Actor("vic", frozenset({"viewer"})))
    assert token.startswith("mst_") and len(token) > 40
    assert accounts.token_actor(token) == Actor("vic", frozenset({"viewer"}))
    with accounts.uow.read() as s:
        row = s.scalar(select(ApiToken))
    assert row.token_sha256 == token_digest(token) and token not in (row.prefix, row.token_sha256)
    db = Path(accounts.uow.engine.url.database)
    blob = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))  # the database and its WAL
    assert len(blob) > 0 and token.encode() not in blob
    assert accounts.token_actor(token + "x") is None
    accounts.revoke_token(info.id, ADA)
    assert accounts.token_actor(token) is None
    assert {"token.create", "token.revoke"} <= set(actions(accounts))


def test_token_rules(accounts):
    vic = Actor("vic", frozenset({"viewer"}))
    with pytest.raises(Forbidden):
        accounts.create_token("ada", "steal", vic)
    info, token = accounts.create_token("vic", "mine", vic, datetime.now(UTC) + timedelta(days=1))
    assert [t.id for t in accounts.tokens(vic)] == [info.id]
    with pytest.raises(PolicyError, match="past"):
        accounts.create_token("vic", "old", vic, datetime.now(UTC) - timedelta(days=1))
    accounts.update_user("vic", ADA, disabled=True)
    assert accounts.token_actor(token) is None  # a disabled user's tokens stop working


def test_last_admin_and_self_disable_are_refused(accounts):
    with pytest.raises(PolicyError, match="last enabled admin"):
        accounts.update_user("ada", ADA, roles=["operator"])
    with pytest.raises(Forbidden, match="own account"):
        accounts.update_user("ada", ADA, disabled=True)
    accounts.update_user("vic", ADA, roles=["viewer", "auditor"])
    assert "user.update" in actions(accounts)


def test_password_change_by_self_or_admin(accounts):
    vic = Actor("vic", frozenset({"viewer"}))
    accounts.set_password("vic", "copper meadow thistle", vic, current=VIC_PW)
    assert accounts.authenticate("vic", "copper meadow thistle") is not None
    with pytest.raises(Forbidden):
        accounts.set_password("ada", "hijacked the account", vic)
    with pytest.raises(PolicyError, match="12 characters"):
        accounts.set_password("vic", "short", vic, current="copper meadow thistle")
