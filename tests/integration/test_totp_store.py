"""The second factor in the store, on SQLite and PostgreSQL: the secret is stored encrypted (not readable in the
database), and of several sign-ins racing with one code exactly one wins (the last accepted time step is updated
atomically); the same for a recovery code."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from metrosight.policy.crypto import KeyRing
from metrosight.policy.passwords import hash_password
from metrosight.policy.totp import code_at, current_step
from metrosight.store.db import open_engine
from metrosight.store.repo import Store
from metrosight.store.second_factor import Check

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    url = f"sqlite:///{tmp_path / 'm.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    st = Store(open_engine(url), KeyRing(Fernet.generate_key()), tmp_path / "audit.checkpoints")
    st.users.add("ada", ["admin"], None, hash_password("a long test password"))
    return st


def race(n: int, fn) -> list:  # type: ignore[no-untyped-def]
    barrier, out = threading.Barrier(n), []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        r = fn()
        with lock:
            out.append(r)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_one_code_signs_in_once_however_many_race(store: Store):
    ada = store.users.actor("ada")
    e = store.second_factor.begin(ada, "metrosight")
    with store.engine.connect() as c:
        raw = c.execute(text("SELECT secret FROM totp_factors")).scalar()
    assert e.secret.encode() not in bytes(raw)  # encrypted at rest
    recovery = store.second_factor.confirm(ada, code_at(e.secret, current_step()), 4)
    with store.engine.connect() as c:
        rows = c.execute(text("SELECT code_hash, lookup FROM totp_recovery_codes")).all()
    assert len(rows) == 4 and all(h.startswith("$argon2id$") and len(t) == 32 for h, t in rows)
    stored = " ".join(f"{h} {t}" for h, t in rows)
    assert not any(rc.replace("-", "") in stored or rc in stored for rc in recovery)  # hashes only
    code = code_at(e.secret, current_step() + 1)
    results = race(8, lambda: store.second_factor.verify("ada", code))
    assert sorted(r.value for r in results) == ["replayed"] * 7 + ["totp"]
    results = race(4, lambda: store.second_factor.verify("ada", recovery[1]))
    assert Check.RECOVERY in results and results.count(Check.RECOVERY) == 1
    assert store.second_factor.status("ada").recovery_left == 3
    # an older step than the last accepted one is refused too
    assert store.second_factor.verify("ada", code_at(e.secret, current_step())) is Check.REPLAYED
