"""Episode merge under concurrency, on SQLite and PostgreSQL: five cameras of one line whose sightings of one
person are stored by five processes released at once make one alert with five sightings (never two episodes)."""

from __future__ import annotations

import multiprocessing as mp
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from cryptography.fernet import Fernet

from metrosight.bus.payloads import AlertV1
from metrosight.core.types import Category, Match
from metrosight.policy.crypto import KeyRing
from metrosight.policy.rules import Actor, Authorisation
from metrosight.store.db import open_engine
from metrosight.store.models import AlertRecord, Sighting
from metrosight.store.repo import Store

pytestmark = pytest.mark.integration

KEY = Fernet.generate_key()
ADA = Actor("ada", frozenset({"admin", "approver", "operator"}))
BOB = Actor("bob", frozenset({"approver", "operator"}))
T0 = 1_800_000_000.0


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'x.db'}"
    return request.getfixturevalue("pg_url")


def _sight(url: str, key: bytes, camera: str, rounds: int, entry: int, barrier, results) -> None:
    st = Store(open_engine(url, upgrade=False), KeyRing(key))  # the parent's key (a spawned child has its own KEY)
    barrier.wait()
    ids = []
    for r in range(rounds):
        m = Match(entry, "Ann", "wl", Category.WANTED, 0.95, 0.3)
        # the same walk seen by every camera of the line, a few seconds apart per round
        alert = AlertV1.of_match(
            m,
            camera_id=camera,
            track_id=r,
            first_seen=1.0 + 3 * r,
            last_seen=2.0 + 3 * r,
            event_id=f"{camera}:run:{r}",
            samples=3,
            group="red",
            media_origin=T0,
        )
        ids.append(st.alerts.store_sighting(alert, None).alert_id)
    results.put(ids)


def test_parallel_sightings_of_five_cameras_make_one_episode(url):
    s = Store(open_engine(url), KeyRing(KEY))
    s.watchlists.create("wl", Category.WANTED, ADA)
    s.entries.enroll(
        "wl",
        "Ann",
        np.ones(128, np.float32),
        "m",
        "a.jpg",
        "a" * 64,
        0.9,
        ADA,
        Authorisation("law", "court", "R-1", datetime.now(UTC) + timedelta(days=3)),
    )
    s.entries.approve("wl", "Ann", BOB)
    entry = s.entries.all("wl")[0].id
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(5)
    results = ctx.Queue()
    procs = [ctx.Process(target=_sight, args=(url, KEY, f"cam-{i}", 4, entry, barrier, results)) for i in range(5)]
    for p in procs:
        p.start()
    got = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert len({aid for ids in got for aid in ids}) == 1
    assert s.count(AlertRecord) == 1 and s.count(Sighting) == 20
    [a] = s.alerts.all()
    assert a.sightings == 20 and set(s.alerts.cameras(a.id)) == {f"cam-{i}" for i in range(5)}
    acts = [e.action for e in s.audit.entries()]
    assert acts.count("alert.create") == 1 and acts.count("alert.sighting") == 19
    assert s.audit.verify().ok


def test_lines_spelt_differently_are_one_group_on_both_stores(url):
    """`Red`, `red` and Cyrillic `Rеd` are one line by the identifier rule: one episode (red team); the camera's
    own key too (`CAM-1` is `cam-1`), on SQLite and PostgreSQL."""
    s = Store(open_engine(url), KeyRing(KEY))
    s.watchlists.create("wl", Category.WANTED, ADA)
    s.entries.enroll(
        "wl",
        "Ann",
        np.ones(128, np.float32),
        "m",
        "a.jpg",
        "a" * 64,
        0.9,
        ADA,
        Authorisation("law", "court", "R-1", datetime.now(UTC) + timedelta(days=3)),
    )
    s.entries.approve("wl", "Ann", BOB)
    entry = s.entries.all("wl")[0].id
    m = Match(entry, "Ann", "wl", Category.WANTED, 0.95, 0.3)
    got = [
        s.alerts.store_sighting(
            AlertV1.of_match(
                m,
                camera_id=cam,
                track_id=1,
                first_seen=1.0,
                last_seen=2.0,
                event_id=f"{cam}:e",
                samples=3,
                group=group,
                media_origin=T0 + dt,
            ),
            None,
        )
        for cam, group, dt in (("cam-1", "Red", 0), ("cam-2", "red", 10), ("cam-3", "R\u0435d", 20))
    ]
    assert [g.opened for g in got] == [True, False, False] and len({g.alert_id for g in got}) == 1
    own = [
        s.alerts.store_sighting(
            AlertV1.of_match(
                m,
                camera_id=cam,
                track_id=1,
                first_seen=1.0,
                last_seen=2.0,
                event_id=f"{cam}:own",
                samples=3,
                group=None,
                media_origin=T0 + dt,
            ),
            None,
        )
        for cam, dt in (("CAM-9", 0), ("cam-9", 10))
    ]
    assert [g.opened for g in own] == [True, False] and own[0].alert_id == own[1].alert_id
