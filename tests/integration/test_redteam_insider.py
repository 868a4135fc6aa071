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
    a.users.add("ada", sorted(ADA.roles), None)
    a.watchlists.create("wl", Category.WANTED, ADA)
    a.audit.checkpoint()
    b = replica(url, tmp_path / "host-b")  # a replica joins an installation that has a log already
    for i in range(20):
        (a if i % 2 else b).audit.record("ada", "test.touch", None, {"i": i})
    a.audit.checkpoint()
    b.audit.checkpoint()
    assert a.audit.verify().ok, a.audit.verify()
    assert b.audit.verify().ok, b.audit.verify()  # failed for good: "removed and started again"
    # a restart of either replica changes nothing
    b2, a2 = replica(url, tmp_path / "host-b"), replica(url, tmp_path / "host-a")
    b2.audit.record("ada", "test.touch", None, {})
    a2.audit.record("ada", "test.touch", None, {})
    b2.audit.checkpoint()
    a2.audit.checkpoint()
    assert b2.audit.verify().ok and a2.audit.verify().ok
    # removing a replica's file is still detected there, and so is removing the first host's file
    for host in ("host-b", "host-a"):
        (tmp_path / host / "audit.checkpoints").unlink()
        again = replica(url, tmp_path / host)
        again.audit.record("ada", "test.touch", None, {})
        again.audit.checkpoint()
        res = again.audit.verify()
        assert not res.ok and "started again" in (res.reason or ""), res
    for s in (a, b, a2, b2):
        s.engine.dispose()


# -- episodes and the two-person review -------------------------------------------------------------------------------
def test_a_second_confirmation_never_covers_a_sighting_the_first_confirmer_did_not_see(
    url: str, tmp_path: Path
) -> None:
    """Operator 1 confirms an alert of two sightings; the person is seen again on the same platform; operator 2
    confirms. Before: the third sighting joined the half-confirmed alert, and the second confirmation made it
    actionable although only operator 2 had ever seen it."""
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from metrosight.bus.payloads import AlertV1
    from metrosight.core.types import Match
    from metrosight.policy.rules import Authorisation

    s = replica(url, tmp_path / "home")
    s.users.add("ada", sorted(ADA.roles), None)
    for name in ("bob", "carol", "op1", "op2"):
        s.users.add(name, ["approver"] if name in ("bob", "carol") else ["operator"], ADA)
    s.watchlists.create("wl", Category.WANTED, ADA)
    v = np.random.default_rng(1).normal(size=128).astype(np.float32)
    auth = Authorisation("law", "court", "R-1", datetime.now(UTC) + timedelta(days=30))
    s.entries.enroll("wl", "Eve", v / np.linalg.norm(v), "m", "eve.jpg", "ab" * 32, 0.9, s.users.actor("bob"), auth)
    s.entries.approve("wl", "Eve", s.users.actor("carol"))
    e = s.entries.all("wl")[0]
    m = Match(e.id, e.name, "wl", Category.WANTED, 0.95, 0.3)
    t0 = datetime.now(UTC).timestamp()

    def seen(n: int, cam: str) -> int:
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
                media_origin=t0 + n,
            ),
            None,
        ).alert_id

    aid = seen(1, "cam-a")
    assert seen(2, "cam-b") == aid
    assert s.reviews.review(aid, s.users.actor("op1"), "confirm") == "confirmed_once"
    third = seen(3, "cam-c")
    assert s.reviews.review(aid, s.users.actor("op2"), "confirm") == "actionable"
    assert third != aid  # the new evidence waits for its own two confirmations
    assert [sg.event_id for sg in s.alerts.sightings(aid)] == ["cam-a:t:1", "cam-b:t:2"]
    assert next(a.status for a in s.alerts.all() if a.id == third) == "new"
    s.audit.checkpoint()
    assert s.audit.verify().ok
    s.engine.dispose()
