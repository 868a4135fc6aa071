"""`config check` applies the camera id rule to every camera list and validates deployment.timezone."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from metrosight.cli import app
from metrosight.config.load import ConfigError, load_settings


def check(tmp_path: Path, text: str) -> tuple[int, str]:
    f = tmp_path / "c.yaml"
    f.write_text(text, encoding="utf-8")
    r = CliRunner().invoke(app, ["config", "check", str(f)])
    return r.exit_code, r.stdout + r.stderr


@pytest.mark.parametrize(
    "yaml_text, key, why",
    [
        ('cameras: [{id: "../../../x", source: a.mp4}]', "cameras.0.id", "starts with '.'"),
        ('cameras: [{id: "red/platform 1", source: a.mp4}]', "cameras.0.id", "'/'"),
        ('cameras: [{id: "/etc/x", source: a.mp4}]', "cameras.0.id", "'/'"),
        ('cameras: [{id: "a\\0b", source: a.mp4}]', "cameras.0.id", "NUL"),
        ('cameras: [{id: "cam-1", source: a.mp4, line: "red/blue"}]', "cameras.0.line", "'/'"),
        ("analytics: {cameras: {'a/b': {}}}", "analytics.cameras", "'/'"),
        ("deployment: {timezone: Mars/Base}", "deployment.timezone", "unknown time zone 'Mars/Base'"),
        ("privacy: {retention: {alerts_days: 99999999999}}", "privacy.retention.alerts_days", "36500"),
    ],
)
def test_config_check_names_the_key_and_the_rule(tmp_path, yaml_text, key, why):
    code, text = check(tmp_path, yaml_text)
    assert code == 2 and key in text and why in text and "Traceback" not in text


def test_camera_ids_with_spaces_and_cyrillic_and_a_zone_are_accepted(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(
        'deployment: {timezone: Europe/Moscow}\ncameras:\n  - {id: "Платформа 1", source: a.mp4, line: "red line"}\n'
        "analytics: {cameras: {'Платформа 1': {}}}\n",
        encoding="utf-8",
    )
    s = load_settings(f)
    assert s.cameras[0].id == "Платформа 1" and s.deployment.tz().key == "Europe/Moscow"
    assert check(tmp_path, f.read_text(encoding="utf-8"))[0] == 0


def test_the_zone_can_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("METROSIGHT__DEPLOYMENT__TIMEZONE", "Nowhere/Land")
    with pytest.raises(ConfigError, match="deployment.timezone"):
        load_settings(None)


@pytest.mark.parametrize("command", [["node"], ["worker", "--bus", "redis://127.0.0.1:1/0"], ["serve"]])
@pytest.mark.parametrize("camera", ["../../../x", "red/platform 1", "a,b"])
def test_every_host_refuses_a_hostile_camera_id_in_its_config_with_one_line(tmp_path, command, camera):
    cfg = tmp_path / "node.yaml"
    cfg.write_text(f'cameras:\n  - {{id: "{camera}", source: rtsp://10.0.0.9/s}}\n', encoding="utf-8")
    res = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), *command[:1], "--config", str(cfg), *command[1:]])
    assert res.exit_code == 2 and "cameras.0.id" in res.stderr and "camera id" in res.stderr, res.output
    assert not (tmp_path / "home" / "media").exists()
