"""The keyed audit chain: upgrading a log written with the old unkeyed chain, the audited and checkpointed purge."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import create_engine, text

from metrosight.audit.log import GENESIS, link_hash
from metrosight.policy.rules import Actor
from metrosight.store.db import alembic_config
from metrosight.store.repo import Store
from metrosight.store.retention import Retention

ADA = Actor("ada", frozenset({"admin"}))


def old_log(home, n: int) -> None:
    """A database at migration 0006 holding ``n`` entries of the old, unkeyed chain (as the old code wrote)."""
    url = f"sqlite:///{home / 'metrosight.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
        prev = GENESIS
        for seq in range(1, n + 1):
            at = (datetime.now(UTC) - timedelta(days=1)).isoformat(timespec="microseconds")
            h = link_hash(prev, seq, at, "ada", "old.action", None, "{}")
            conn.execute(
                text(
                    "INSERT INTO audit_log (seq, at, actor, action, target, details, prev_hash, hash) "
                    "VALUES (:s, :at, 'ada', 'old.action', NULL, '{}', :p, :h)"
                ),
                {"s": seq, "at": at, "p": prev, "h": h},
            )
            prev = h
    engine.dispose()


def checkpoint_kinds(home) -> list[str]:
    return [json.loads(x)["kind"] for x in (home / "audit.checkpoints").read_text().splitlines()]


def test_an_old_unkeyed_log_is_keyed_from_the_first_new_entry_on(tmp_path):
    old_log(tmp_path, 3)
    store = Store.for_home(tmp_path)  # migrates to head: records where the unkeyed chain ends
    assert store.audit.verify().ok  # upgraded, nothing appended yet: no checkpoint file is expected
    store.audit.record("ada", "identify", None, {})
    store.checkpoint()
    entries = store.audit.entries()
    assert [e.action for e in entries] == ["old.action"] * 3 + ["audit.keyed", "identify"]
    assert checkpoint_kinds(tmp_path) == ["legacy", "head"]
    assert store.audit.verify().ok
    # re-chaining the old part (no key needed there) breaks the link to the first keyed entry
    engine = create_engine(f"sqlite:///{tmp_path / 'metrosight.db'}")
    with engine.begin() as c:
        c.execute(text("DROP TRIGGER audit_log_no_update"))
        rows = [dict(r._mapping) for r in c.execute(text("SELECT * FROM audit_log WHERE seq <= 3 ORDER BY seq"))]
        prev = GENESIS
        for r in rows:
            actor = "mallory" if r["seq"] == 2 else r["actor"]
            h = link_hash(prev, r["seq"], r["at"], actor, r["action"], r["target"], r["details"])
            c.execute(
                text("UPDATE audit_log SET actor=:a, prev_hash=:p, hash=:h WHERE seq=:s"),
                {"a": actor, "p": prev, "h": h, "s": r["seq"]},
            )
            prev = h
    res = store.audit.verify()
    assert not res.ok and res.broken_seq == 4 and "does not link" in res.reason


def test_an_unkeyed_log_is_not_accepted_as_old_without_the_migrations_record(tmp_path):
    """A log re-chained without the key after the upgrade is not taken for an old one by the next append."""
    store = Store.for_home(tmp_path)
    store.users.add("ada", ["admin"], None)
    store.audit.record("ada", "identify", None, {})
    store.checkpoint()
    engine = create_engine(f"sqlite:///{tmp_path / 'metrosight.db'}")
    with engine.begin() as c:
        c.execute(text("DROP TRIGGER audit_log_no_update"))
        prev = GENESIS
        for r in [dict(x._mapping) for x in c.execute(text("SELECT * FROM audit_log ORDER BY seq"))]:
            h = link_hash(prev, r["seq"], r["at"], r["actor"], r["action"], r["target"], r["details"])
            c.execute(
                text("UPDATE audit_log SET prev_hash=:p, hash=:h WHERE seq=:s"), {"p": prev, "h": h, "s": r["seq"]}
            )
            prev = h
    (tmp_path / "audit.checkpoints").unlink()
    again = Store.for_home(tmp_path)
    again.audit.record("ada", "identify", None, {})
    again.checkpoint()
    assert "audit.keyed" not in [e.action for e in again.audit.entries()]
    res = again.audit.verify()
    assert not res.ok and res.broken_seq == 1


def test_the_purge_is_audited_checkpointed_and_keeps_the_log_verifiable(tmp_path):
    store = Store.for_home(tmp_path)
    store.users.add("ada", ["admin"], None)
    for i in range(10):
        store.audit.record("ada", "identify", None, {"i": i})
    counts = store.retention.purge(Retention(None, None, None, 1.0), ADA, now=datetime.now(UTC) + timedelta(days=2))
    store.checkpoint()
    assert counts["audit"] == 11
    entries = store.audit.entries()
    assert [e.action for e in entries][-1] == "audit.purge" and entries[0].seq == 12
    lines = [json.loads(x) for x in (tmp_path / "audit.checkpoints").read_text().splitlines()]
    purge = [x for x in lines if x["kind"] == "purge"]
    assert purge and purge[-1]["through_seq"] == 11
    assert store.audit.verify().ok
    # deleting more of the start than the purge did is detected
    store.audit.record("ada", "identify", None, {})
    engine = create_engine(f"sqlite:///{tmp_path / 'metrosight.db'}")
    with engine.begin() as c:
        c.execute(text("DROP TRIGGER audit_log_no_delete"))
        c.execute(text("DELETE FROM audit_log WHERE seq = 12"))
    res = store.audit.verify()
    assert not res.ok and "no purge accounts" in res.reason


def test_a_quiet_process_still_signs_its_newest_entries(tmp_path):
    """Entries that are not due for a checkpoint by count are signed a little later by a timer."""
    import time

    store = Store.for_home(tmp_path)
    store.audit.log.every_seconds = 0.2
    store.users.add("ada", ["admin"], None)  # the first append is checkpointed at once
    store.audit.record("ada", "identify", None, {})  # not due by count: left to the timer
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seqs = [json.loads(x)["seq"] for x in (tmp_path / "audit.checkpoints").read_text().splitlines()]
        if 2 in seqs:
            break
        time.sleep(0.05)
    assert seqs == [1, 2]
