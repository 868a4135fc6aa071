"""Supervisor helpers and node metrics (no processes, no models)."""

from __future__ import annotations

import time

import pytest

from metrosight.bus.payloads import CameraStateV1, CameraStatsV1
from metrosight.config.model import CameraConfig, Settings
from metrosight.pipeline.metrics import NodeMetrics
from metrosight.pipeline.supervisor import RestartLimiter, assign


def cams(n: int) -> list[CameraConfig]:
    return [CameraConfig(id=f"c{i}", source=f"rtsp://10.0.0.{i}/s") for i in range(n)]


def test_assign_spreads_round_robin_and_never_leaves_a_worker_empty():
    groups = assign(cams(5), 2)
    assert [[c.id for c in g] for g in groups] == [["c0", "c2", "c4"], ["c1", "c3"]]
    assert len(assign(cams(2), 8)) == 2  # no more workers than cameras
    assert [len(g) for g in assign(cams(31), 2)] == [16, 15]


def test_restart_limiter_allows_a_burst_then_waits_for_the_window():
    lim = RestartLimiter(max_restarts=3, window=60.0)
    t = 1000.0
    for k in range(3):
        assert lim.next_allowed(t + k) == t + k
        lim.record(t + k)
    assert lim.next_allowed(t + 5) == t + 60.0  # the oldest restart must leave the window first
    assert lim.next_allowed(t + 60.0) == t + 60.0
    lim.record(t + 60.0)
    assert lim.next_allowed(t + 61.0) == t + 61.0
    lim.record(t + 61.0)
    assert lim.next_allowed(t + 61.5) == t + 62.0


def test_zero_restarts_disables_restarts():
    lim = RestartLimiter(max_restarts=0, window=10.0)
    assert lim.next_allowed(5.0) == float("inf")  # restarts disabled: the camera stays down


def stats(cid: str, worker: int, analysed: int, dropped: int, cpu: float) -> CameraStatsV1:
    return CameraStatsV1(
        camera_id=cid,
        worker=worker,
        state="live",
        frames_decoded=analysed * 3,
        frames_skipped=analysed,
        frames_dropped=dropped,
        frames_analysed=analysed,
        faces=2 * analysed,
        embedded=analysed // 2,
        tracks=1,
        alerts=0,
        reconnects=0,
        stalls=0,
        failed_attempts=0,
        last_frame_wall=time.time(),
        worker_cpu_seconds=cpu,
        wall_time=time.time(),
    )


def test_counters_survive_a_worker_restart_and_render_as_prometheus():
    m = NodeMetrics()
    m.on_state(CameraStateV1(camera_id="c0", state="live", wall_time=time.time(), worker=0))
    m.on_stats(stats("c0", 0, 100, 7, 12.5))
    m.on_worker_restart(0, ["c0"])
    m.on_stats(stats("c0", 0, 10, 1, 1.5))  # the new worker counts from zero
    snap = m.snapshot()["cameras"]["c0"]
    assert snap["frames_analysed"] == 110 and snap["frames_dropped"] == 8 and snap["restarts"] == 1
    assert m.worker_cpu[0] == pytest.approx(14.0)
    m.on_alert_stored(time.time() - 0.3, time.time())
    m.on_alert_stored(time.time() - 0.1, time.time())
    q = m.latency_quantiles()
    assert 0.09 < q[0.5] < 0.31 and q[0.95] <= 0.31
    text = m.prometheus()
    assert 'metrosight_camera_state{camera="c0",state="live"} 1' in text
    assert 'metrosight_camera_state{camera="c0",state="down"} 0' in text
    assert 'metrosight_camera_frames_analysed_total{camera="c0"} 110' in text
    assert 'metrosight_camera_worker_restarts_total{camera="c0"} 1' in text
    assert "metrosight_alert_latency_seconds_count 2" in text
    assert text.count("# TYPE metrosight_camera_frames_dropped_total counter") == 1


def test_node_and_camera_config_validate():
    s = Settings.model_validate(
        {"cameras": [{"id": "p1", "source": "rtsp://x/y", "analysis_fps": 6}], "node": {"workers": 2}}
    )
    assert s.cameras[0].analysis_fps == 6 and s.node.workers == 2 and s.ingest.down_after_attempts == 5
    with pytest.raises(ValueError, match="analysis_fps"):
        Settings.model_validate({"cameras": [{"id": "p1", "source": "x", "analysis_fps": 0}]})
    with pytest.raises(ValueError, match="node.workers"):
        Settings.model_validate({"node": {"workers": 0}})


@pytest.mark.parametrize(
    ("yaml_text", "msg"),
    [
        ("cameras: []\n", "no cameras configured"),
        ("cameras:\n  - {id: a, source: /no/such.mp4}\n", "camera a: video file not found: /no/such.mp4"),
        (
            "cameras:\n  - {id: a, source: rtsp://x/y}\n  - {id: a, source: rtsp://x/z}\n",
            "camera ids must be unique; 'a' is repeated",
        ),
        ("cameras:\n  - {id: a, source: webcam:x}\n", "camera a: bad webcam source"),
    ],
)
def test_node_refuses_a_bad_camera_list_with_one_line(tmp_path, yaml_text, msg):
    from typer.testing import CliRunner

    from metrosight.cli import app

    cfg = tmp_path / "node.yaml"
    cfg.write_text(yaml_text)
    res = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), "node", "--config", str(cfg)])
    assert res.exit_code == 2 and msg in res.stderr


def test_the_supervisor_closes_a_run_from_a_worker_s_typed_messages(tmp_path):
    """What a worker sends (typed messages) reaches the bus and the runs table: its camera states are published,
    its counters kept, and ``CameraFinished`` closes the run row (opened with the source without its password)."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from metrosight.bus.topics import CAMERA_STATE
    from metrosight.config.home import Home
    from metrosight.pipeline.messages import CameraFinished, StateChanged, StatsReported
    from metrosight.pipeline.runs import RunCounts
    from metrosight.pipeline.supervisor import Supervisor
    from metrosight.services.suite import Services
    from metrosight.store.models import Run

    settings = Settings.model_validate({"cameras": [{"id": "c0", "source": "rtsp://op:s3cret@127.0.0.1:9/x"}]})
    services = Services.open(Home(tmp_path / "home"), settings)
    sup = Supervisor(services)
    states: list[CameraStateV1] = []
    sup.bus.subscribe(CAMERA_STATE, states.append)
    w = sup.workers[0]
    w.runs = {"c0": sup.rows.open("c0", sup.specs["c0"])}
    sup._handle(w, StateChanged(CameraStateV1(camera_id="c0", state="live", wall_time=time.time(), worker=0)))
    sup._handle(w, StatsReported(stats("c0", 0, 12, 0, 1.0)))
    sup._handle(w, CameraFinished("c0", "broken", "the stream ended", RunCounts(12, 24, 1, 0)))
    sup._handle(w, CameraFinished("c0", "finished", None, RunCounts()))  # a second report changes nothing
    with Session(services.store.engine) as s:
        [run] = list(s.scalars(select(Run)))
    assert [p.state for p in states] == ["live"] and w.last_stats["c0"].frames_analysed == 12
    assert (run.status, run.error, run.frames, run.faces, run.tracks) == ("broken", "the stream ended", 12, 24, 1)
    assert "s3cret" not in run.source and run.source.startswith("rtsp://")
