"""Issue 15, finding 5 / must-show 4: tamper evidence that survives write access to the database.

The attacker can write the database (any SQL, triggers dropped) and delete or edit files in the home, but cannot
read the key store (the master key, from which the chain's HMAC key and the checkpoint signing key derive). Every
tampering below must make ``metrosight audit verify`` fail with a clear reason, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import secrets

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from metrosight.audit.log import link_hash
from metrosight.store.db import normalize_url
from tests.integration.helpers import cli

pytestmark = pytest.mark.integration


class Installation:
    def __init__(self, home, url: str | None) -> None:
        self.home = home
        self.url = url or f"sqlite:///{home / 'metrosight.db'}"
        self.env = {"METROSIGHT__STORAGE__DATABASE_URL": url} if url else {}
        self.checkpoints = home / "audit.checkpoints"

    def cli(self, *args, **kw):
        env = {**self.env, **kw.pop("env", {})}
        return cli(self.home, *args, env=env, **kw)

    def verify(self) -> tuple[int, str]:
        code, out, err = self.cli("audit", "verify")
        return code, out + err

    def attacker(self, *sql: str, params: list[dict] | None = None) -> None:
        """Run SQL as someone with write access to the database (drops the append-only triggers first)."""
        engine = create_engine(normalize_url(self.url))
        with engine.begin() as c:
            if engine.dialect.name == "sqlite":
                c.execute(text("DROP TRIGGER IF EXISTS audit_log_no_update"))
                c.execute(text("DROP TRIGGER IF EXISTS audit_log_no_delete"))
            else:
                c.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
            for i, q in enumerate(sql):
                c.execute(text(q), (params or [{}] * len(sql))[i])
        engine.dispose()

    def rows(self) -> list[dict]:
        engine = create_engine(normalize_url(self.url))
        with engine.connect() as c:
            rows = [dict(r._mapping) for r in c.execute(text("SELECT * FROM audit_log ORDER BY seq"))]
        engine.dispose()
        return rows

    def rechain_from(self, seq: int, edit: dict, key: bytes | None) -> None:
        """Edit entry ``seq`` and recompute every link from there on, as the attacker can: with plain SHA-256
        (the old, unkeyed chain) or with a key of their own."""
        rows = self.rows()
        prev = next(r["hash"] for r in rows if r["seq"] == seq - 1) if seq > 1 else "0" * 64
        stmts, params = [], []
        for r in rows:
            if r["seq"] < seq:
                continue
            if r["seq"] == seq:
                r.update(edit)
            h = link_hash(prev, r["seq"], r["at"], r["actor"], r["action"], r["target"], r["details"], key)
            stmts.append(
                "UPDATE audit_log SET actor = :actor, details = :details, prev_hash = :prev, hash = :hash "
                "WHERE seq = :seq"
            )
            params.append({"actor": r["actor"], "details": r["details"], "prev": prev, "hash": h, "seq": r["seq"]})
            prev = h
        self.attacker(*stmts, params=params)


@pytest.fixture(params=["sqlite", "postgresql"])
def inst(request, tmp_path):
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    home = tmp_path / "home"
    home.mkdir()
    i = Installation(home, url)
    assert i.cli("user", "add", "ada", "-r", "admin", "-r", "approver", "-r", "operator", "-r", "auditor")[0] == 0
    assert i.cli("--as", "ada", "user", "add", "bob", "-r", "approver", "-r", "operator")[0] == 0
    assert i.cli("--as", "ada", "watchlist", "create", "wl", "--category", "wanted")[0] == 0
    assert i.cli("--as", "bob", "alert", "list")[0] == 0
    assert i.cli("--as", "ada", "privacy", "window-add", "m", "--from", "0m", "--until", "1h", "--reason", "r")[0] == 0
    code, out = i.verify()
    assert code == 0 and "chain intact" in out, out
    return i


def test_the_database_refuses_updates_and_deletes_of_the_audit_log(inst):
    engine = create_engine(normalize_url(inst.url))
    for q in (
        "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 5",
        "DELETE FROM audit_log",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as c:
            c.execute(text(q))
    if engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as c:
            c.execute(text("TRUNCATE audit_log"))
    engine.dispose()
    assert inst.verify()[0] == 0


def test_tail_deletion_is_detected(inst):
    n = len(inst.rows())
    inst.attacker(f"DELETE FROM audit_log WHERE seq > {n - 2}")
    code, out = inst.verify()
    assert code != 0 and f"entries after {n - 2} up to {n} were deleted" in out, out


def test_tail_deletion_with_the_checkpoint_file_removed_is_detected(inst):
    n = len(inst.rows())
    inst.attacker(f"DELETE FROM audit_log WHERE seq > {n - 2}")
    inst.checkpoints.unlink()
    (inst.home / "audit.head").unlink(missing_ok=True)
    code, out = inst.verify()
    assert code != 0 and "audit.checkpoints is missing" in out, out


def test_total_deletion_is_detected(inst):
    inst.attacker("DELETE FROM audit_log")
    code, out = inst.verify()
    assert code != 0 and "all were deleted" in out, out
    inst.checkpoints.unlink()  # …and with the checkpoint file gone too
    code, out = inst.verify()
    assert code != 0 and "whose creation is always audited" in out, out


@pytest.mark.parametrize("attacker_key", [None, b"k" * 32], ids=["sha256", "own-key"])
def test_rechaining_around_an_edited_entry_is_detected(inst, attacker_key):
    inst.rechain_from(3, {"actor": "mallory"}, attacker_key)
    code, out = inst.verify()
    assert code != 0 and "BROKEN at entry 3" in out and "altered" in out, out


def test_rechaining_with_the_checkpoints_removed_and_a_later_action_is_detected(inst):
    inst.rechain_from(3, {"actor": "mallory"}, None)
    inst.checkpoints.unlink()
    code, out = inst.verify()
    assert code != 0 and "missing" in out
    # a legitimate action afterwards does not paper over it: the file starts again, marked as such
    assert inst.cli("--as", "bob", "alert", "list")[0] == 0
    code, out = inst.verify()
    assert code != 0 and ("removed and started again" in out or "altered" in out), out


def test_a_truncated_edited_or_forged_checkpoint_file_is_detected(inst):
    data = inst.checkpoints.read_bytes()
    lines = data.splitlines(keepends=True)
    assert len(lines) >= 3
    inst.checkpoints.write_bytes(data[:-5])
    assert "truncated" in inst.verify()[1]
    inst.checkpoints.write_bytes(b"".join(lines[:1] + lines[2:]))
    assert "lines were removed" in inst.verify()[1]
    obj = json.loads(lines[-1])
    obj["seq"] = obj["seq"] + 100
    inst.checkpoints.write_bytes(b"".join(lines[:-1]) + json.dumps(obj).encode() + b"\n")
    assert "not signed by this installation's key" in inst.verify()[1]
    inst.checkpoints.write_bytes(data)
    assert inst.verify()[0] == 0


def test_the_attacker_cannot_read_what_the_keys_derive_from(inst):
    """What the attacker holds: the database and the checkpoint file. Neither contains the chain key."""
    from metrosight.policy.crypto import KeyRing, load_master_key

    chain_key, _ = KeyRing(load_master_key(inst.home)).audit_keys()
    assert chain_key.hex() not in json.dumps(inst.rows(), default=str)
    assert chain_key.hex().encode() not in inst.checkpoints.read_bytes()
    assert secrets.compare_digest(chain_key, KeyRing(load_master_key(inst.home)).audit_keys()[0])
