"""The observability kit (Prometheus rules, Grafana dashboard) names only metrics the code exports.

The exported names are read from what the code renders — the operator service's registry and a node's metrics
file — fed with one camera's state and counters, not from a hand-written list.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from importlib import resources
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from metrosight.api.live import CameraBoard
from metrosight.api.metrics import make_registry, render
from metrosight.bus.payloads import CameraStateV1, CameraStatsV1
from metrosight.pipeline.camera import STAGE_BUCKETS
from metrosight.pipeline.metrics import NodeMetrics
from tests.conftest import missing_system

DEPLOY = resources.files("metrosight") / "deploy"
RULES = Path(str(DEPLOY / "prometheus" / "metrosight-rules.yml"))
DASHBOARD = Path(str(DEPLOY / "grafana" / "metrosight-dashboard.json"))
NAME = re.compile(r"\bmetrosight_[a-z0-9_]+")


def _stats(worker: int = 0) -> CameraStatsV1:
    n = len(STAGE_BUCKETS) + 1
    return CameraStatsV1(
        camera_id="cam-1",
        worker=worker,
        state="live",
        frames_decoded=100,
        frames_skipped=0,
        frames_dropped=3,
        frames_analysed=97,
        faces=10,
        embedded=5,
        tracks=2,
        alerts=1,
        reconnects=0,
        stalls=0,
        failed_attempts=0,
        last_frame_wall=time.time(),
        worker_cpu_seconds=1.5,
        wall_time=time.time(),
        stage_seconds={s: 0.1 for s in ("detect", "track", "align", "embed", "match")},
        stage_buckets={s: [1] * n for s in ("detect", "track", "align", "embed", "match")},
    )


def _sample_names(text: str) -> set[str]:
    return {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    home = tmp_path_factory.mktemp("home")
    state = CameraStateV1(camera_id="cam-1", state="live", wall_time=time.time(), worker=0)
    board = CameraBoard([])
    board.on_state(state)
    board.on_stats(_stats())
    operating = {
        k: 1.0
        for k in (
            "target_fpir",
            "fpir_per_search",
            "threshold",
            "persons",
            "impostor_pairs",
            "searches_per_day",
            "expected_false_candidates_per_day",
        )
    }
    service = render(make_registry(board, lambda: {"pending": 1}, operating=lambda: operating, home=home)).decode()
    node = NodeMetrics(home=home)
    node.on_state(state)
    node.on_stats(_stats())
    node.on_worker_restart(0, ["cam-1"])
    node.on_alert_stored(time.time() - 0.2, time.time())
    names = _sample_names(service) | _sample_names(node.prometheus())
    assert "metrosight_home_free_bytes" in names and "metrosight_frames_dropped_total" in names
    return names


def _rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def test_rules_name_only_exported_metrics(exported: set[str]) -> None:
    for rule in _rules():
        used = set(NAME.findall(rule["expr"]))
        assert used, rule["alert"]
        assert used <= exported, f"{rule['alert']}: {sorted(used - exported)} not exported"


def test_rules_cover_the_operational_failures() -> None:
    rules = _rules()
    text = " ".join(r["expr"] for r in rules)
    for needed in (
        'metrosight_camera_state{state="down"}',  # camera down
        "metrosight_frames_dropped_total",  # frames dropped (service)
        "metrosight_camera_frames_dropped_total",  # frames dropped (node)
        "metrosight_alert_latency_seconds",  # alert latency
        "metrosight_camera_worker_restarts_total",  # worker restarts
        "metrosight_home_free_bytes",  # disk
    ):
        assert needed in text, needed
    for r in rules:
        assert r["labels"]["severity"] in {"warning", "critical"}
        assert r["annotations"]["summary"] and r["annotations"]["description"]
    assert len({r["alert"] for r in rules}) == len(rules)


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool") or os.environ.get("METROSIGHT_PROMTOOL")
    if not promtool:
        missing_system("promtool is not installed (Debian package prometheus; .ci/run extracts it)")
    proc = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in proc.stdout


def test_dashboard_names_only_exported_metrics(exported: set[str]) -> None:
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    used: set[str] = set()
    for p in dash["panels"]:
        assert p["targets"], p["title"]
        for t in p["targets"]:
            names = set(NAME.findall(t["expr"]))
            assert names, (p["title"], t["expr"])
            used |= names
    assert used <= exported, sorted(used - exported)
    for needed in ("metrosight_camera_state", "metrosight_frames_dropped_total", "metrosight_home_free_bytes"):
        assert needed in used
    assert dash["__inputs"][0]["pluginId"] == "prometheus"
