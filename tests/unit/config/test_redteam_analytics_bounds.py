"""Red team, behaviour analytics: a duration or count that can never be reached (``seconds: .inf``, a year of
loitering) configured an alarm that never fires, silently. Every analytics duration and count is finite and
bounded; ``config check`` refuses one beyond its bound in one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
from typer.testing import CliRunner

from metrosight.cli import app
from metrosight.config.analytics import MAX_STAY_SECONDS, AnalyticsConfig, CameraAnalyticsConfig

ZONE = "{name: hall, polygon: [[0, 0], [100, 0], [100, 100], [0, 100]]}"
GATE = "{name: gate, a: [50, 0], b: [50, 100]}"


def check(tmp_path: Path, text: str) -> tuple[int, str]:
    f = tmp_path / "c.yaml"
    f.write_text(text, encoding="utf-8")
    r = CliRunner().invoke(app, ["config", "check", str(f)])
    return r.exit_code, r.stdout + r.stderr


def camera(body: str) -> str:
    return f"cameras: [{{id: cam-1, source: a.mp4}}]\nanalytics: {{cameras: {{cam-1: {{zones: [{ZONE}], {body}}}}}}}\n"


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        (camera("occupancy_alarms: [{zone: hall, max_people: 3, seconds: .inf}]"), "seconds"),
        (camera("occupancy_alarms: [{zone: hall, max_people: 3, seconds: .nan}]"), "seconds"),
        (camera("occupancy_alarms: [{zone: hall, max_people: 3, seconds: 5, clear_seconds: .inf}]"), "clear_seconds"),
        (camera("occupancy_alarms: [{zone: hall, max_people: 100000000000, seconds: 5}]"), "max_people"),
        (camera(f"occupancy_alarms: [{{zone: hall, max_people: 3, seconds: {MAX_STAY_SECONDS * 2}}}]"), "seconds"),
        (
            "cameras: [{id: cam-1, source: a.mp4}]\nanalytics: {cameras: {cam-1: {zones: [{name: hall, "
            "polygon: [[0, 0], [100, 0], [100, 100], [0, 100]], loitering_seconds: .inf}]}}}\n",
            "loitering_seconds",
        ),
        ("analytics: {loitering_seconds: .inf}", "analytics.loitering_seconds"),
        ("analytics: {loitering_seconds: 1e12}", "analytics.loitering_seconds"),
        ("analytics: {exit_grace_seconds: .inf}", "analytics.exit_grace_seconds"),
        ("analytics: {relink_seconds: .inf}", "analytics.relink_seconds"),
        ("analytics: {max_missed_seconds: .inf}", "analytics.max_missed_seconds"),
        ("analytics: {min_duration_seconds: .inf}", "analytics.min_duration_seconds"),
        ("analytics: {speed_window_seconds: .inf}", "analytics.speed_window_seconds"),
        ("analytics: {refresh_seconds: .inf}", "analytics.refresh_seconds"),
        ("analytics: {fast_speed_mps: .inf}", "analytics.fast_speed_mps"),
    ],
)
def test_config_check_refuses_an_unreachable_analytics_setting_in_one_line(tmp_path, yaml_text, key):
    code, text = check(tmp_path, yaml_text)
    assert code == 2 and key in text and "Traceback" not in text
    assert len([x for x in text.splitlines() if x.strip()]) == 1, text


def test_the_largest_accepted_durations_still_load() -> None:
    cfg = CameraAnalyticsConfig.model_validate(
        {
            "zones": [{"name": "z", "polygon": [[0, 0], [9, 0], [9, 9]], "loitering_seconds": MAX_STAY_SECONDS}],
            "occupancy_alarms": [
                {"zone": "z", "max_people": 3, "seconds": MAX_STAY_SECONDS, "clear_seconds": MAX_STAY_SECONDS}
            ],
        }
    )
    assert cfg.occupancy_alarms[0].seconds == MAX_STAY_SECONDS
    assert AnalyticsConfig(loitering_seconds=MAX_STAY_SECONDS).loitering_seconds == MAX_STAY_SECONDS
    with pytest.raises(pydantic.ValidationError, match="seconds"):
        AnalyticsConfig(loitering_seconds=float("inf"))
