"""Red team: `metrosight plan` refuses nonsense figures in one line instead of planning with them (an infinite or
NaN option, a tampered node benchmark, a camera that needs more than a whole node)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metrosight.cli import app


@pytest.mark.parametrize(
    "args",
    [
        ["--faces-per-second", "inf"],
        ["--analysis-fps", "inf"],
        ["--frame-ms", "inf"],
        ["--frame-scale", "inf"],
        ["--footfall", "inf"],
        ["--searches-per-person", "inf"],
        ["--events-per-camera-hour", "inf"],
        ["--faces-per-core-per-second", "inf"],
    ],
)
def test_plan_refuses_a_non_finite_figure_in_one_line(tmp_path: Path, args: list[str]) -> None:
    res = CliRunner().invoke(app, ["--home", str(tmp_path / "h"), "plan", *args, "--json"])
    assert res.exit_code == 2, res.stdout
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    assert args[0] in res.stderr and res.stdout == ""


@pytest.mark.parametrize("cores", ["NaN", "Infinity", "1e400"])
def test_plan_refuses_a_node_benchmark_with_non_finite_figures(tmp_path: Path, cores: str) -> None:
    node = tmp_path / "node.json"
    cost = f'{{"cpu_cores_per_camera": {cores}, "descriptors_per_s_camera": 15.0, "analysis_fps": 6.0}}'
    node.write_text(f'{{"points": {{"today": {{"hd": {cost}}}, "tuned": {{"hd": {cost}}}}}}}')
    res = CliRunner().invoke(app, ["--home", str(tmp_path / "h"), "plan", "--node-benchmark", str(node), "--json"])
    assert res.exit_code == 2, res.stdout
    assert res.stderr.startswith(f"error: cannot use the node benchmark {node}") and res.stderr.count("\n") == 1


def test_plan_refuses_a_camera_that_needs_more_than_a_node(tmp_path: Path) -> None:
    """1 s of work per analysed frame at 18 fps is 18 cores a camera: a 16-core node cannot hold one camera,
    and planning one camera a node would undercount the nodes."""
    res = CliRunner().invoke(
        app, ["--home", str(tmp_path / "h"), "plan", "--frame-ms", "1000", "--cores-per-node", "16", "--json"]
    )
    assert res.exit_code == 2, res.stdout
    assert res.stderr.startswith("error: ") and "node" in res.stderr and res.stderr.count("\n") == 1


def test_plan_json_is_strict_json(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["--home", str(tmp_path / "h"), "plan", "--json"])
    assert res.exit_code == 0, res.stderr
    json.loads(res.stdout, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
