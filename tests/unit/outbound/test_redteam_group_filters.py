"""Red team, camera-group filters: a webhook or MQTT filter names camera groups as a scope does — a camera is in
its line, its group and every named group containing it — so ``-g red`` (a line) matches a camera of line red that
also has a station group (the defect: the filter looked only at "group, else line")."""

from __future__ import annotations

import pytest

from metrosight.bus.payloads import AlertV1, EventV1
from metrosight.config.model import Settings
from metrosight.outbound.channel import EventFilter
from metrosight.outbound.dispatch import Dispatcher
from metrosight.outbound.events import to_outbound
from metrosight.policy.scope import CameraGroups, RoleGrant, Scope, view_of

SETTINGS = Settings.model_validate(
    {
        "cameras": [
            {"id": "cam-1", "source": "a.mp4", "line": "red", "group": "okhotny-ryad"},
            {"id": "cam-2", "source": "b.mp4", "line": "blue"},
            {"id": "cam-3", "source": "c.mp4"},
        ],
        "camera_groups": {"centre": {"cameras": ["cam-2"]}, "reds": {"lines": ["red"]}},
    }
)
GROUPS = CameraGroups.of(SETTINGS.camera_group_members())
PLACES = Dispatcher.places_of(SETTINGS.cameras, GROUPS)


def alert(camera: str) -> AlertV1:
    return AlertV1(
        event_id=f"{camera}:s:1",
        camera_id=camera,
        track_id=1,
        subject_id=1,
        subject="Miranda",
        watchlist="wanted",
        category="wanted",
        score=0.9,
        distance=0.1,
        first_seen=0.0,
        last_seen=1.0,
        samples=2,
        group={"cam-1": "okhotny-ryad", "cam-2": "blue"}.get(camera),  # what hosts put there: group, else line
    )


def behaviour(camera: str) -> EventV1:
    return EventV1(event_id=f"{camera}:b:1", camera_id=camera, kind="loitering", start_ts=0.0, data={})


@pytest.mark.parametrize("group", ["red", "RED", "okhotny-ryad", "reds", "centre", "blue", "nowhere"])
@pytest.mark.parametrize("camera", ["cam-1", "cam-2", "cam-3"])
def test_a_group_filter_matches_exactly_the_cameras_a_scope_of_that_group_covers(group: str, camera: str) -> None:
    scope = view_of([RoleGrant("operator", Scope(frozenset({group})))], ["operator"], GROUPS)
    flt = EventFilter.of(camera_groups=[group])
    for topic, payload in (("alerts", alert(camera)), ("events", behaviour(camera))):
        event = to_outbound(topic, payload, PLACES, 0.0)
        assert flt.accepts(event) is scope.camera(camera), (group, camera, topic)


def test_line_station_and_named_group_all_reach_a_camera_with_a_group() -> None:
    event = to_outbound("alerts", alert("cam-1"), PLACES, 0.0)
    assert [
        g for g in ("red", "okhotny-ryad", "reds", "blue", "centre") if EventFilter.of(camera_groups=[g]).accepts(event)
    ] == [
        "red",
        "okhotny-ryad",
        "reds",
    ]
    # the wire envelope is unchanged: the camera's group and line, as before
    assert event.envelope()["camera"] == {"id": "cam-1", "group": "okhotny-ryad", "line": "red"}
