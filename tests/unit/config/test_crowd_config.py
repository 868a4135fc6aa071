"""Crowd-safety alarm configuration: what is refused (with which message) and how it reaches the engine's scene."""

from __future__ import annotations

import pydantic
import pytest

from metrosight.config.analytics import CameraAnalyticsConfig
from metrosight.pipeline.analytics import build_scene

ZONE = {"name": "Platform", "polygon": [[0, 0], [100, 0], [100, 100], [0, 100]]}
LINE = {"name": "gate", "a": [50, 0], "b": [50, 100]}


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"zones": [ZONE], "occupancy_alarms": [{"zone": "platfrom", "max_people": 3, "seconds": 5}]}, "no zone"),
        ({"occupancy_alarms": [{"zone": "frame", "max_people": 3, "seconds": 5, "clear_people": 4}]}, "at most"),
        ({"occupancy_alarms": [{"zone": "frame", "max_people": -1, "seconds": 5}]}, "greater than or equal"),
        ({"occupancy_alarms": [{"zone": "frame", "max_people": 3, "seconds": 0}]}, "greater than 0"),
        ({"lines": [LINE], "wrong_way": [{"line": "gate", "allowed": "sideways"}]}, "'in' or 'out'"),
        ({"wrong_way": [{"line": "gate", "allowed": "in"}]}, "no counting line"),
        (
            {"lines": [LINE], "wrong_way": [{"line": "gate", "allowed": "in"}, {"line": "Gate", "allowed": "out"}]},
            "wrong-way line",
        ),
    ],
)
def test_bad_alarm_configuration_is_refused_with_what_to_do(cfg, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        CameraAnalyticsConfig.model_validate(cfg)


def test_alarms_reach_the_scene_with_the_zone_and_line_as_configured():
    cfg = CameraAnalyticsConfig.model_validate(
        {
            "zones": [ZONE],
            "lines": [LINE],
            "occupancy_alarms": [{"zone": "platform", "max_people": 3, "seconds": 5}],
            "wrong_way": [{"line": "gate", "allowed": "in"}],
        }
    )
    scene = build_scene(cfg, 200, 200)
    (alarm,) = scene.occupancy
    assert (alarm.zone, alarm.name, alarm.max_people, alarm.clear_people) == ("Platform", "platform", 3, 3)
    assert [(w.line, w.allowed) for w in scene.wrong_way] == [("gate", "in")]
    # no zones: the whole frame is the zone 'frame'
    cfg = CameraAnalyticsConfig.model_validate({"occupancy_alarms": [{"zone": "frame", "max_people": 0, "seconds": 1}]})
    assert build_scene(cfg, 200, 200).occupancy[0].zone == "frame"
