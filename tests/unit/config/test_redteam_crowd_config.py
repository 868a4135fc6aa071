"""Red team, crowd alarms: degenerate zones, lines and calibrations are refused by the configuration (so by
`config check` and at every start, with one line naming them) instead of crashing a camera at its first frame."""

from __future__ import annotations

import pydantic
import pytest

from metrosight.config.analytics import CameraAnalyticsConfig
from metrosight.pipeline.analytics import build_scene

SQUARE = [[0, 0], [100, 0], [100, 100], [0, 100]]
CALIB = {"image_points": [[0, 0], [100, 0], [100, 100], [0, 100]], "world_points": [[0, 0], [4, 0], [4, 4], [0, 4]]}


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (
            {"lines": [{"name": "gate", "a": [5, 5], "b": [5, 5]}], "wrong_way": [{"line": "gate", "allowed": "in"}]},
            "counting line 'gate'.*two distinct end points",
        ),
        ({"zones": [{"name": "z", "polygon": [[0, 0], [10, 10], [20, 20]]}]}, "zone 'z'.*zero area"),
        ({"zones": [{"name": "z", "polygon": [[0, 0], [1e400, 0], [0, 10]]}]}, "zone 'z'.*finite"),
        ({"lines": [{"name": "g", "a": [0, float("nan")], "b": [5, 5]}]}, "counting line 'g'.*finite"),
        # corners listed across (a bow tie) instead of around: the zone would be two triangles, not the rectangle
        ({"zones": [{"name": "hall", "polygon": [[0, 0], [100, 0], [0, 100], [100, 100]]}]}, "zone 'hall'.*crosses"),
        (
            {"zones": [{"name": "hall", "polygon": [[0, 0], [100, 0], [100, 100], [0, 100], [60, 50], [120, 50]]}]},
            "zone 'hall'.*crosses",
        ),
        (
            {"calibration": {**CALIB, "image_points": [[0, 0], [50, 0], [100, 0], [0, 100]]}},
            "calibration image_points.*collinear",
        ),
    ],
)
def test_degenerate_geometry_is_refused_naming_it(cfg: dict, message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        CameraAnalyticsConfig.model_validate(cfg)


def test_ordinary_zones_lines_and_calibration_still_build_a_scene() -> None:
    concave = [[0, 0], [100, 0], [100, 100], [50, 40], [0, 100]]  # an L or U shaped platform edge is fine
    closed = [*SQUARE, SQUARE[0]]  # the first point again at the end, as GeoJSON writes a ring
    cfg = CameraAnalyticsConfig.model_validate(
        {
            "zones": [
                {"name": "a", "polygon": SQUARE},
                {"name": "b", "polygon": concave},
                {"name": "c", "polygon": closed},
            ],
            "lines": [{"name": "gate", "a": [50, 0], "b": [50, 100]}],
            "calibration": CALIB,
            "occupancy_alarms": [{"zone": "b", "max_people": 3, "seconds": 5}],
            "wrong_way": [{"line": "gate", "allowed": "in"}],
        }
    )
    scene = build_scene(cfg, 640, 480)
    assert [z.name for z in scene.zones] == ["a", "b", "c"] and len(scene.lines) == 1
