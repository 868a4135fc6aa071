"""Red team (issue 15 follow-up), as an insider and as an operator of a real deployment, on SQLite and PostgreSQL.

- Several replicas (``serve`` on two hosts, or two homes) share one database, each with its own checkpoint file,
  as the README's threat model describes: ``audit verify`` holds on every one of them after ordinary work, and a
  replica's file removed afterwards is still reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from metrosight.core.types import Category
from metrosight.policy.crypto import KeyRing
from metrosight.policy.rules import Actor
from metrosight.store.db import open_engine
from metrosight.store.repo import Store

pytestmark = pytest.mark.integration

KEY = Fernet.generate_key()
ADA = Actor("ada", frozenset({"admin", "approver", "operator", "auditor"}))


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'm.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")


def replica(url: str, home: Path) -> Store:
    """One process of the installation (same master key) with its own home's checkpoint file."""
    return Store(open_engine(url), KeyRing(KEY), home / "audit.checkpoints")


def test_a_second_replica_with_its_own_checkpoint_file_verifies(url: str, tmp_path: Path) -> None:
    a = replica(url, tmp_path / "host-a")
    a.add_user("ada", sorted(ADA.roles), None)
    a.create_watchlist("wl", Category.WANTED, ADA)
    a.audit.checkpoint()
    b = replica(url, tmp_path / "host-b")  # a replica joins an installation that has a log already
    for i in range(20):
        (a if i % 2 else b).record("ada", "test.touch", None, {"i": i})
    a.audit.checkpoint()
    b.audit.checkpoint()
    assert a.verify_audit().ok, a.verify_audit()
    assert b.verify_audit().ok, b.verify_audit()  # failed for good: "removed and started again"
    # a restart of either replica changes nothing
    b2, a2 = replica(url, tmp_path / "host-b"), replica(url, tmp_path / "host-a")
    b2.record("ada", "test.touch", None, {})
    a2.record("ada", "test.touch", None, {})
    b2.audit.checkpoint()
    a2.audit.checkpoint()
    assert b2.verify_audit().ok and a2.verify_audit().ok
    # removing a replica's file is still detected there, and so is removing the first host's file
    for host in ("host-b", "host-a"):
        (tmp_path / host / "audit.checkpoints").unlink()
        again = replica(url, tmp_path / host)
        again.record("ada", "test.touch", None, {})
        again.audit.checkpoint()
        res = again.verify_audit()
        assert not res.ok and "started again" in (res.reason or ""), res
    for s in (a, b, a2, b2):
        s.engine.dispose()
