"""The CLI package: one context per invocation (no state shared between commands run in one process), and the
command-line parsing helpers tested without the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from metrosight.cli import app
from metrosight.cli.app import build_app
from metrosight.cli.context import CliContext, cli_context
from metrosight.cli.enrol import AuthorisationOptions, parse_authorisation, person_folders
from metrosight.core.when import Clock

CLOCK = Clock(tz=UTC, fixed=datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


def test_every_invocation_gets_a_context_of_its_own(tmp_path: Path) -> None:
    seen: list[CliContext] = []
    probe_app = build_app()

    @probe_app.command("probe")
    def probe(ctx: typer.Context) -> None:
        c = cli_context(ctx)
        seen.append(c)
        c.emit(f"{c.home_dir} {c.user} {c.authenticated}")

    runner = CliRunner()
    first = runner.invoke(
        probe_app, ["--home", str(tmp_path / "a"), "--as", "ada", "probe"], env={"METROSIGHT_USER": None}
    )
    second = runner.invoke(probe_app, ["--home", str(tmp_path / "b"), "probe"], env={"METROSIGHT_USER": None})
    assert first.exit_code == 0 and second.exit_code == 0
    assert first.stdout == f"{tmp_path / 'a'} ada None\n"
    assert second.stdout == f"{tmp_path / 'b'} None None\n"  # nothing of the first command's user remains
    assert seen[0] is not seen[1]


def test_a_command_outside_the_app_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError, match="outside the metrosight app"):
        cli_context(typer.Context(typer.core.TyperCommand("x")))


def test_a_bad_global_config_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("recognition:\n  match_threshold: lots\n")
    res = CliRunner().invoke(app, ["--home", str(tmp_path / "h"), "--config", str(bad), "plan", "--json"])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: invalid configuration:") and "match_threshold" in res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


def test_no_authorisation_option_is_no_authorisation() -> None:
    assert parse_authorisation(AuthorisationOptions(), CLOCK) is None


def test_an_authorisation_names_what_it_lacks(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as exit_:
        parse_authorisation(AuthorisationOptions(legal_basis="order 7", expires="30d"), CLOCK)
    assert exit_.value.exit_code == 2
    assert "an authorisation needs --authority, --reference" in capsys.readouterr().err


def test_an_authorisation_reads_its_dates_and_scope() -> None:
    opts = AuthorisationOptions("order 7", "court", "R-1", "30d", cameras="cam1, cam2", lines="L1", urgent=True)
    auth = parse_authorisation(opts, CLOCK)
    assert auth is not None and auth.urgent
    assert auth.expires_at == CLOCK.now() + timedelta(days=30)
    assert auth.cameras == ("cam1", "cam2") and auth.lines == ("L1",)


def test_an_authorisation_refuses_a_bad_camera_id(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit):
        parse_authorisation(AuthorisationOptions("order 7", "court", "R-1", "30d", cameras="../etc"), CLOCK)
    assert "camera id" in capsys.readouterr().err


def test_person_folders_name_each_person_and_say_what_was_skipped(tmp_path: Path) -> None:
    (tmp_path / "Ada_Lovelace").mkdir()
    (tmp_path / "Ada_Lovelace" / "1.jpg").write_bytes(b"x")
    (tmp_path / "Ada_Lovelace" / "nested").mkdir()
    (tmp_path / "loose.jpg").write_bytes(b"x")
    (tmp_path / ".DS_Store").write_bytes(b"x")
    people, skipped = person_folders(tmp_path)
    assert people == [("Ada Lovelace", tmp_path / "Ada_Lovelace", [tmp_path / "Ada_Lovelace" / "1.jpg"])]
    assert [p.name for p, _why in skipped] == ["nested", "loose.jpg"]


def test_plan_prints_its_inputs_figures_and_plan_as_one_json_object(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["--home", str(tmp_path / "h"), "plan", "--cameras", "100", "--faces-per-second", "3", "--json"]
    )
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["input"]["cameras"] == 100 and doc["input"]["faces_per_s"] == 3.0
    assert doc["plan"]["nodes"] >= 1 and set(doc) >= {"figures", "consumers", "consumer_msgs_per_s_measured"}


def test_plan_refuses_an_unreadable_bus_benchmark_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bus.json"
    bad.write_text("{not json")
    res = CliRunner().invoke(app, ["--home", str(tmp_path / "h"), "plan", "--bus-benchmark", str(bad)])
    assert res.exit_code == 2
    assert res.stderr.startswith(f"error: cannot use the bus benchmark {bad}") and res.stderr.count("\n") == 1


def _node_json(tmp_path: Path) -> Path:
    def cost(cores: float) -> dict:
        return {
            "cpu_cores_per_camera": cores,
            "descriptors_per_s_camera": 15.0,
            "analysis_fps": 6.0,
            "cpu_share": {"embed": 0.5},
        }

    f = tmp_path / "node.json"
    f.write_text(json.dumps({"points": {"today": {"hd": cost(0.8)}, "tuned": {"hd": cost(0.32)}}}))
    return f


def test_plan_uses_the_measured_operating_point_and_shows_todays_nodes_from_the_same_run(tmp_path: Path) -> None:
    node = _node_json(tmp_path)
    args = ["--home", str(tmp_path / "h"), "plan", "--node-benchmark", str(node), "--utilisation", "1"]
    res = CliRunner().invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["operating_point"] == "tuned" and doc["camera_kind"] == "hd"
    assert doc["plan"]["cameras_per_node"] == 100 and doc["plan"]["nodes"] == 123  # 32 / 0.32; 12,300 / 100
    assert doc["today"]["plan"]["cameras_per_node"] == 40 and doc["today"]["plan"]["nodes"] == 308
    res = CliRunner().invoke(app, [*args, "--operating-point", "today", "--json"])
    assert json.loads(res.stdout)["plan"]["nodes"] == 308 and json.loads(res.stdout)["today"] is None
    table = CliRunner().invoke(app, args).stdout
    assert "today's pipeline" in table and "308 nodes" in table


def test_plan_refuses_an_unknown_point_or_camera_kind_and_a_missing_one_in_one_line(tmp_path: Path) -> None:
    node = _node_json(tmp_path)
    base = ["--home", str(tmp_path / "h"), "plan", "--node-benchmark", str(node)]
    for extra, says in (
        (["--operating-point", "fast"], "unknown --operating-point 'fast': use today or tuned"),
        (["--camera-kind", "4k"], "unknown --camera-kind '4k': use hd or sd"),
        (["--camera-kind", "sd"], "no measurement of point 'tuned' for 'sd'"),
    ):
        res = CliRunner().invoke(app, [*base, *extra])
        assert res.exit_code == 2 and says in res.stderr and res.stderr.count("\n") == 1, res.stderr


def test_per_operation_costs_given_are_used_and_refused_beside_a_node_benchmark(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path / "h"), "plan", "--utilisation", "1"]
    res = CliRunner().invoke(app, [*home, "--frame-ms", "10", "--faces-per-core-per-second", "100", "--json"])
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    # 18 frames/s × 10 ms + 15 faces/s × 10 ms = 0.33 cores, whatever benchmark file the checkout holds
    assert doc["plan"]["cores_per_camera"] == pytest.approx(0.33) and doc["operating_point"] is None
    res = CliRunner().invoke(app, [*home, "--node-benchmark", str(_node_json(tmp_path)), "--frame-ms", "10"])
    assert res.exit_code == 2 and "give either --node-benchmark or per-operation costs" in res.stderr
    assert res.stderr.count("\n") == 1
