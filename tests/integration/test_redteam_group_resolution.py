"""Red team, camera groups: an alert policy's groups resolve a camera as scopes do — its line, its group and every
named group containing it — not "its group, else its line" (a policy for line ``line-a`` raised no alarm for a
camera of ``line-a`` that also had a station group). SQLite and a real PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from metrosight.bus.payloads import AlertV1, EntryRefV1
from metrosight.core.names import InvalidInput
from metrosight.policy.alarms import AlarmPolicy
from metrosight.policy.crypto import KeyRing
from metrosight.policy.scope import CameraGroups, RoleGrant, Scope, view_of
from metrosight.services.sinks import AlertSink
from metrosight.store.db import open_engine
from metrosight.store.repo import Store
from tests.integration.test_store_races import KEY
from tests.scope_world import ADA, MISSING, World, populate

pytestmark = pytest.mark.integration

# cam-a1: line line-a, group hub, named group platform-a; cam-b1: line line-b, group hub
GROUPS = CameraGroups.of(
    {"platform-a": ["cam-a1"], "line-a": ["cam-a1"], "line-b": ["cam-b1"], "hub": ["cam-a1", "cam-b1"]}
)


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, World, Path]]:
    url = f"sqlite:///{tmp_path / 'm.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = Store(open_engine(url), KeyRing(KEY), tmp_path / "audit.checkpoints", camera_groups=GROUPS)
    w = populate(s, tmp_path / "media")
    yield s, w, tmp_path / "media"
    s.engine.dispose()


def mira_on_cam_a1(store: Store, w: World, media: Path) -> int:
    AlertSink(store, media, None).on_alert(
        AlertV1(
            event_id=f"cam-a1:run:M:{time.time_ns()}",
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
            group="hub",  # the episode group: its group (else its line)
            media_origin=time.time(),
            entries=(
                EntryRefV1(
                    entry_id=w.entries["Mira Missing"], name="Mira Missing", watchlist=MISSING, category="missing"
                ),
            ),
        )
    )
    return max(a.id for a in store.alerts.all())


@pytest.mark.parametrize(
    ("policy_groups", "raised"),
    [
        (("line-a",), True),  # its line (it also has a group): the defect raised nothing
        (("Platform-A",), True),  # a named group containing it
        (("hub",), True),  # its group
        (("line-b",), False),
    ],
)
def test_an_alert_policy_applies_to_every_group_a_scope_puts_the_camera_in(
    world: tuple[Store, World, Path], policy_groups: tuple[str, ...], raised: bool
) -> None:
    store, w, media = world
    store.alarms.set_policy(MISSING, AlarmPolicy(priority="critical", groups=policy_groups), ADA)
    alert_id = mira_on_cam_a1(store, w, media)
    row = next(a for a in store.alerts.all() if a.id == alert_id)
    assert (row.alarm_state is not None) is raised, (policy_groups, row.alarm_state)
    if raised:
        assert row.priority == "critical"
    # the same answer a scope on those groups gives for the camera
    view = view_of([RoleGrant("operator", Scope(frozenset(policy_groups)))], ["operator"], GROUPS)
    assert view.camera("cam-a1") is raised


def test_an_alert_policy_naming_a_group_no_camera_is_in_is_refused(world: tuple[Store, World, Path]) -> None:
    """A mistyped group would silently raise no alarm for the list: refused, naming the known groups."""
    store, _w, _media = world
    before = store.alarms.policy(MISSING)
    with pytest.raises(InvalidInput, match=r"no camera group 'platform-b' \(known: hub, line-a, line-b, platform-a\)"):
        store.alarms.set_policy(MISSING, AlarmPolicy(priority="critical", groups=("platform-b",)), ADA)
    assert store.alarms.policy(MISSING) == before
