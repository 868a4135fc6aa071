"""Red team, alarm workflow and scoped roles, on SQLite and a real PostgreSQL: what an operator scoped to one
watchlist learns through the alarm steps about a person's other lists."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from metrosight.bus.payloads import AlertV1, EntryRefV1
from metrosight.policy.alarms import AlarmPolicy, NoAlarm
from metrosight.policy.crypto import KeyRing
from metrosight.policy.scope import CameraGroups
from metrosight.services.sinks import AlertSink
from metrosight.store.db import open_engine
from metrosight.store.repo import Store
from tests.integration.test_store_races import KEY
from tests.scope_world import ADA, MISSING, WANTED, World, populate

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, World, Path]]:
    url = f"sqlite:///{tmp_path / 'm.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    groups = CameraGroups.of(
        {"platform-a": ["cam-a1"], "line-a": ["cam-a1"], "line-b": ["cam-b1"], "hub": ["cam-a1", "cam-b1"]}
    )
    s = Store(open_engine(url), KeyRing(KEY), tmp_path / "audit.checkpoints", camera_groups=groups)
    w = populate(s, tmp_path / "media")
    yield s, w, tmp_path / "media"
    s.engine.dispose()


def test_a_list_scoped_operator_is_not_told_the_persons_other_lists(world: tuple[Store, World, Path]) -> None:
    store, w, media = world
    for wl in (MISSING, WANTED):  # no policy covers camera group hub: her alert raises no alarm
        store.alarms.set_policy(wl, AlarmPolicy(groups=("line-b",)), ADA)  # cam-a1 is not on line-b
    # Mira (missing-persons list) is also on the wanted list: her alert names both lists' entries
    sink = AlertSink(store, media, None)
    sink.on_alert(
        AlertV1(
            event_id="cam-a1:run:MW:1",
            camera_id="cam-a1",
            track_id=9,
            subject_id=w.entries["Mira Missing"],
            subject="Mira Missing",
            watchlist=MISSING,
            category="missing",
            score=0.9,
            distance=0.3,
            first_seen=0.0,
            last_seen=1.0,
            samples=2,
            group="hub",
            media_origin=time.time(),
            entries=(
                EntryRefV1(
                    entry_id=w.entries["Mira Missing"], name="Mira Missing", watchlist=MISSING, category="missing"
                ),
                EntryRefV1(entry_id=w.entries["Alfa Person"], name="Alfa Person", watchlist=WANTED, category="wanted"),
            ),
        )
    )
    alert_id = max(a.id for a in store.alerts.all())
    # opmi operates on the missing-persons list only: the refusal must not name the wanted list
    opmi = store.users.actor("opmi")
    with pytest.raises(NoAlarm) as err:
        store.alarms.act(alert_id, opmi, "claim")
    assert WANTED not in str(err.value) and MISSING in str(err.value)
