"""Scoped roles through the CLI: camera groups in `config check`, `user add --scope`, `user scope`, `user list`, and a
line-scoped operator's `alert list/show/crop`, which see only their line."""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from metrosight.bus.payloads import AlertV1
from metrosight.config.model import Settings
from metrosight.core.types import Category
from metrosight.policy.scope import CameraGroups
from metrosight.services.sinks import AlertSink
from metrosight.store.repo import Store
from tests.integration.helpers import bootstrap, cli, json_lines
from tests.scope_world import ADA, BOB, CAMERA_GROUPS, CAMERAS, vec


def _config(tmp_path: Path, groups: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"cameras": CAMERAS, "camera_groups": groups}))
    return path


def test_config_check_names_an_unknown_camera_or_line_of_a_group(tmp_path: Path) -> None:
    assert cli(tmp_path / "h", "config", "check", str(_config(tmp_path, CAMERA_GROUPS)))[0] == 0
    for groups, said in (
        ({"centre": {"cameras": ["cam-a1", "cam-9"]}}, "camera_groups.centre: camera 'cam-9' is not configured"),
        ({"centre": {"lines": ["line-z"]}}, "camera_groups.centre: no camera is on line 'line-z'"),
        ({"line-a": {"cameras": ["cam-a1"]}}, "'line-a' is already a line or group of cameras"),
        ({"centre": {}}, "camera_groups.centre: names no camera and no line"),
        ({"centre": {"cameras": ["cam/1"]}}, "contains '/'"),
    ):
        code, out, err = cli(tmp_path / "h", "config", "check", str(_config(tmp_path, groups)))
        assert code != 0 and said in out + err, out + err
        assert "Traceback" not in out + err


def test_scoped_operator_in_the_cli(tmp_path: Path) -> None:
    home, cfg = tmp_path / "home", str(_config(tmp_path, CAMERA_GROUPS))
    bootstrap(home)
    code, out, err = cli(
        home, "--config", cfg, "--as", "ada", "user", "add", "op", "-r", "operator", "--scope", "cameras:line-a"
    )
    assert code == 0 and "operator (cameras:line-a)" in out, out + err
    code, _out, err = cli(
        home, "--config", cfg, "--as", "ada", "user", "add", "x", "-r", "operator", "--scope", "cameras:nowhere"
    )
    assert code != 0 and "no camera group 'nowhere'" in err
    code, _out, err = cli(
        home, "--config", cfg, "--as", "ada", "user", "scope", "ada", "--role", "admin", "--scope", "cameras:line-a"
    )
    assert code != 0 and "admin role cannot be scoped" in err
    assert "operator (cameras:line-a)" in cli(home, "--config", cfg, "--as", "ada", "user", "list")[1]

    groups = CameraGroups.of(
        Settings.model_validate({"cameras": CAMERAS, "camera_groups": CAMERA_GROUPS}).camera_group_members()
    )
    store = Store.for_home(home, camera_groups=groups)
    store.watchlists.create("wl", Category.WANTED, ADA)
    ids = {}
    for i, name in enumerate(("Alfa Person", "Bravo Person")):
        ids[name], _ = store.entries.enroll("wl", name, vec(i), "m", f"{i}.jpg", f"{i:064x}", 0.9, ADA, _auth())
        store.entries.approve("wl", name, BOB)
    sink = AlertSink(store, home / "media", None)
    for name, cam in (("Alfa Person", "cam-a1"), ("Bravo Person", "cam-b1")):
        sink.on_alert(
            AlertV1(
                event_id=f"{cam}:1",
                camera_id=cam,
                track_id=1,
                subject_id=ids[name],
                subject=name,
                watchlist="wl",
                category="wanted",
                score=0.9,
                distance=0.3,
                first_seen=0.0,
                last_seen=1.0,
                samples=1,
                crop_jpeg=f"\xff\xd8{cam}".encode(),
                group="hub",
                media_origin=time.time(),
            )
        )
    alerts = {a.camera_id: a.id for a in store.alerts.all()}
    store.engine.dispose()

    code, out, err = cli(home, "--config", cfg, "--as", "op", "alert", "list", "--json")
    assert code == 0, err
    assert [r["cameras"] for r in json_lines(out)] == [["cam-a1"]] and "cam-b1" not in out
    code, out, err = cli(home, "--config", cfg, "--as", "op", "alert", "show", str(alerts["cam-b1"]))
    assert code != 0 and "cam-b1" not in out and f"no alert {alerts['cam-b1']}" in err
    code, _out, err = cli(
        home, "--config", cfg, "--as", "op", "alert", "crop", str(alerts["cam-b1"]), "--out", str(tmp_path / "x.jpg")
    )
    assert code != 0 and not (tmp_path / "x.jpg").exists()
    code, _out, err = cli(
        home, "--config", cfg, "--as", "op", "alert", "crop", str(alerts["cam-a1"]), "--out", str(tmp_path / "a.jpg")
    )
    assert code == 0 and (tmp_path / "a.jpg").read_bytes().endswith(b"cam-a1"), err
    # the admin moves op to line-b: audited, and op's next command sees line-b
    assert cli(home, "--config", cfg, "--as", "ada", "user", "scope", "op", "--scope", "cameras:line-b")[0] == 0
    out = cli(home, "--config", cfg, "--as", "op", "alert", "list", "--json")[1]
    assert [r["cameras"] for r in json_lines(out)] == [["cam-b1"]]
    upd = [e for e in Store.for_home(home).audit.entries() if e.action == "user.update" and e.target == "op"]
    assert json.loads(upd[-1].details)["scopes"] == {
        "from": {"operator": ["cameras:line-a"]},
        "to": {"operator": ["cameras:line-b"]},
    }


def _auth():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from metrosight.policy.rules import Authorisation

    return Authorisation("Code art. 1", "District court", "R-1", datetime.now(UTC) + timedelta(days=30))
