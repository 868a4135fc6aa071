"""Red team of the name rules on both stores: a NUL or a control character typed where a name or a label is
looked up or stored must be one clear refusal (PostgreSQL cannot hold NUL in text: it was a server error)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cryptography.fernet import Fernet

from metrosight.core.names import InvalidInput
from metrosight.core.types import Category
from metrosight.policy.crypto import KeyRing
from metrosight.policy.rules import Actor, PolicyError
from metrosight.policy.scope import EVERYTHING
from metrosight.store.db import open_engine
from metrosight.store.errors import NotFound
from metrosight.store.repo import Store

pytestmark = pytest.mark.integration

ADA = Actor("ada", frozenset({"admin", "approver"}))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path: Path) -> Store:
    url = f"sqlite:///{tmp_path / 'm.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = Store(open_engine(url), KeyRing(Fernet.generate_key()), None, 365, ZoneInfo("Europe/Moscow"))
    s.users.add("ada", ["admin", "approver"], None)
    s.watchlists.create("wanted", Category.WANTED, ADA)
    return s


@pytest.mark.parametrize("typed", ["ada\x00", "\x00", "wan\x00ted"])
def test_a_nul_in_a_looked_up_name_is_not_found_on_both_stores(store, typed):
    with pytest.raises(NotFound):
        store.users.actor(typed)
    assert store.entries.all(typed) == []
    with pytest.raises(NotFound):
        store.entries.approve(typed, "x", ADA)
    with pytest.raises(NotFound):
        store.entries.approve("wanted", typed, ADA)


@pytest.mark.parametrize("label", ["ci\x00", "ci\u202eti", "ci\x1b[8m"])
def test_a_token_name_is_one_line_of_plain_text_on_both_stores(store, label):
    acc = store.accounts
    with pytest.raises(InvalidInput, match="NUL|control or invisible"):
        acc.create_token("ada", label, store.users.actor("ada"), datetime.now(UTC) + timedelta(days=1))
    with pytest.raises(PolicyError, match="needs a name"):
        acc.create_token("ada", "  ", store.users.actor("ada"), datetime.now(UTC) + timedelta(days=1))
    _, token = acc.create_token(
        "ada", "  nightly   export ", store.users.actor("ada"), datetime.now(UTC) + timedelta(days=1)
    )
    assert [t.name for t in acc.tokens(store.users.actor("ada"))] == ["nightly export"]


def test_any_text_with_a_nul_reaching_either_database_is_one_clear_refusal(store):
    """The backstop for filters that are not names (e.g. `/api/events?kind=%00`): InvalidInput (422), not a
    PostgreSQL DataError (500) here and a silent miss on SQLite."""

    with pytest.raises(InvalidInput, match="NUL"):
        store.feed.recent_events(None, "loiter\x00", 10, view=EVERYTHING)
    assert store.feed.recent_events(None, "loitering", 10, view=EVERYTHING) == []


def test_a_cluster_worker_name_follows_the_id_rule_and_is_not_taken_twice(tmp_path, redis_server):
    """`--name` owns a worker's leases: a second live worker of the same name renewed them too and ran the same
    cameras twice; an escape sequence in it reached the node's log and the operators' terminals."""
    from metrosight.bus.leases import Leases
    from tests.integration.helpers import cli

    cfg = tmp_path / "c.yaml"
    cfg.write_text("cameras: [{id: cam-1, source: /no/such.mp4}]\n")
    home = tmp_path / "home"
    code, out, err = cli(home, "worker", "--config", cfg, "--bus", redis_server.url, "--name", "w\x1b[2J")
    assert code == 2 and "--name" in err and "U+001B" in err and "\x1b[2J" not in err
    import redis

    Leases(redis.Redis.from_url(redis_server.url), "w1", 30.0).announce()  # a live worker named w1
    code, out, err = cli(home, "worker", "--config", cfg, "--bus", redis_server.url, "--name", "w1")
    assert code == 2 and "a worker named 'w1' is already running" in err
