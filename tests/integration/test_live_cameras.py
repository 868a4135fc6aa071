"""Live cameras against a real RTSP server on loopback (GStreamer's RTSP server) and the real pipeline.

The server streams the Hamilton clip (Lin-Manuel Miranda on stage, enrolled from his portrait). Tests kill and
restart the server, stall it (SIGSTOP), point a camera at a port where nothing listens or at a server that answers
with random bytes, kill a worker process, and stop a node with SIGTERM; they assert camera states, that alerts keep
coming, and that every alert seen was stored.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

import pytest

from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.ingest.factory import live_source
from metrosight.ingest.source import SourceSpec
from metrosight.ingest.state import CameraState
from metrosight.pipeline.supervisor import Supervisor
from metrosight.services.suite import Services
from metrosight.store.models import AlertRecord, Run
from metrosight.store.repo import Store
from tests.conftest import REPO_ROOT, missing_system, require_data
from tests.integration.helpers import bootstrap, cli, enrol_active, json_lines
from tests.integration.rtsp import GarbageServer, RtspServer, free_port, looped_video, rtsp_missing

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

FAST_INGEST = {
    "stall_timeout_seconds": 2.0,
    "open_timeout_seconds": 3.0,
    "reconnect_initial_seconds": 0.2,
    "reconnect_max_seconds": 1.0,
    "down_after_attempts": 3,
}


@pytest.fixture(scope="module")
def rtsp_ready():
    why = rtsp_missing()
    if why:
        missing_system(why)


@pytest.fixture(scope="module")
def clip(tmp_path_factory, rtsp_ready) -> Path:
    ex = require_data("face_recognition_examples", "examples")
    return looped_video(ex / "short_hamilton_clip.mp4", tmp_path_factory.mktemp("media") / "hamilton_x6.mp4", 6)


@pytest.fixture(scope="module")
def enrolled_template(tmp_path_factory) -> Path:
    ex = require_data("face_recognition_examples", "examples")
    home = tmp_path_factory.mktemp("template") / "home"
    bootstrap(home)
    cli(home, "--as", "ada", "watchlist", "create", "wl", "--category", "wanted")
    assert enrol_active(home, "wl", "-s", "Lin-Manuel Miranda", ex / "lin-manuel-miranda.png")[0] == 0
    return home


@pytest.fixture()
def home(enrolled_template, tmp_path) -> Path:
    dst = tmp_path / "home"
    shutil.copytree(enrolled_template, dst)
    return dst


def settings_for(cameras: list[dict], **ingest) -> Settings:
    return Settings.model_validate(
        {
            "ingest": {**FAST_INGEST, **ingest},
            "cameras": cameras,
            "node": {"shutdown_timeout_seconds": 30},
            "alerts": {"episode_window_s": 0, "group_window_s": 0},
        }  # one alert per track (episodes: elsewhere)
    )


class Node:
    """A supervisor running in a background thread, recording states and alerts with their wall time."""

    def __init__(self, home: Path, settings: Settings) -> None:
        self.rt = Services.open(Home(home), settings)
        self.states: list = []
        self.alerts: list = []
        self.sup = Supervisor(
            self.rt,
            on_alert=lambda a, crop: self.alerts.append((time.time(), a)),
            on_state=lambda p: self.states.append(p),
        )
        self.report = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.report = self.sup.run()

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sup.request_stop()
        self.thread.join(60)

    def wait(self, what, timeout: float, why: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = what()
            if got:
                return got
            time.sleep(0.1)
        raise AssertionError(
            f"timed out after {timeout} s waiting for {why}; states: "
            f"{[(s.camera_id, s.state, s.reason) for s in self.states]}"
        )

    def state_seq(self, camera_id: str) -> list[str]:
        return [s.state for s in self.states if s.camera_id == camera_id]

    def has_states(self, camera_id: str, *wanted: str) -> bool:
        """``wanted`` occur in this order (not necessarily adjacent)."""
        it = iter(self.state_seq(camera_id))
        return all(w in it for w in wanted)


def stored(home: Path) -> tuple[list[AlertRecord], list[Run]]:
    s = Store.for_home(home)
    return s.alerts.all(), _runs(s)


def _runs(store: Store) -> list[Run]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    with Session(store.engine) as s:
        return list(s.scalars(select(Run).order_by(Run.id)))


@pytest.mark.slow
def test_server_killed_and_restarted_camera_reconnects_and_alerts_continue(home, clip):
    with RtspServer({"cam": clip}) as server:
        settings = settings_for([{"id": "platform-1", "source": server.url("cam"), "analysis_fps": 8}])
        with Node(home, settings) as node:
            node.wait(lambda: node.alerts, 90, "a first alert")
            server.kill()
            killed = time.time()
            node.wait(lambda: node.has_states("platform-1", "live", "reconnecting"), 30, "reconnecting")
            time.sleep(1.5)
            server.start()
            restarted = time.time()
            node.wait(lambda: node.has_states("platform-1", "live", "reconnecting", "live"), 30, "live again")
            node.wait(lambda: any(t > restarted for t, _ in node.alerts), 60, "an alert after the restart")
        before = [a for t, a in node.alerts if t < killed]
        after = [a for t, a in node.alerts if t > restarted]
    assert before and after
    assert {a.subject for _, a in node.alerts} == {"Lin-Manuel Miranda"}
    # media time runs on across the outage: the second half's alerts come later in the camera's time
    assert min(a.first_seen for a in after) > max(a.first_seen for a in before)
    seq = node.state_seq("platform-1")
    assert seq[0] == "starting" and seq[-1] == "stopped"
    reconnecting = next(s for s in node.states if s.state == "reconnecting")
    assert reconnecting.reason  # says why
    alerts, runs = stored(home)
    assert {a.event_id for a in alerts} == {a.event_id for _, a in node.alerts}
    assert [r.status for r in runs] == ["finished"]
    assert runs[0].alerts == len(node.alerts) and runs[0].frames > 10
    history = [e.data["state"] for e in Store.for_home(home).events.all(kind="camera_state")]
    assert history == seq  # every state change is kept as an event
    cam = node.report.snapshot["cameras"]["platform-1"]
    assert cam["reconnects"] >= 1 and cam["alerts"] == len(node.alerts)
    assert node.report.snapshot["alert_latency_p95_s"] < 5.0


def test_stalled_server_trips_the_watchdog_then_recovers(clip):
    with RtspServer({"cam": clip}) as server:
        cfg = settings_for([]).ingest
        src = live_source(SourceSpec.parse(server.url("cam")), "cam-s", cfg, analysis_fps=5)
        src.start()
        try:
            seen: list = []

            def until(state: CameraState, timeout: float) -> None:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    src.latest(0.2)
                    seen.extend(src.poll_states())
                    if seen and seen[-1].state == state:
                        return
                raise AssertionError(f"no {state} within {timeout} s: {[(c.state, c.reason) for c in seen]}")

            until(CameraState.LIVE, 30)
            server.proc.send_signal(signal.SIGSTOP)  # connection open, nothing sent: only the watchdog can tell
            t0 = time.monotonic()
            until(CameraState.RECONNECTING, 15)
            waited = time.monotonic() - t0
            server.proc.send_signal(signal.SIGCONT)
            until(CameraState.LIVE, 30)
        finally:
            src.stop()
    assert 1.5 <= waited <= 12.0  # stall_timeout is 2 s (slack for a loaded machine)
    assert src.counters.stalls >= 1
    assert "no data for 2 s" in next(c.reason for c in seen if c.state == CameraState.RECONNECTING)


def test_stream_that_never_connects_is_down_with_a_clear_message(home):
    url = f"rtsp://127.0.0.1:{free_port()}/nothing"
    settings = settings_for([{"id": "dead-cam", "source": url}])
    with Node(home, settings) as node:
        down = node.wait(lambda: [s for s in node.states if s.state == "down"], 30, "down")
        assert node.state_seq("dead-cam")[:2] == ["starting", "down"]
    assert f"cannot open RTSP stream {url}" in down[0].reason and "3 attempts failed" in down[0].reason
    # the one-camera command gives up with the same clear line and a non-zero exit
    cfg = home.parent / "fast.yaml"
    cfg.write_text("ingest:\n" + "".join(f"  {k}: {v}\n" for k, v in FAST_INGEST.items()))
    code, _, err = cli(home, "run", "--source", url, "--config", cfg)
    assert code != 0 and "camera cam0 is down after 3 failed attempts" in err and "cannot open RTSP stream" in err


def test_stream_of_garbage_is_refused_and_retried(home):
    with GarbageServer() as garbage:
        cfg = home.parent / "fast.yaml"
        cfg.write_text("ingest:\n" + "".join(f"  {k}: {v}\n" for k, v in FAST_INGEST.items()))
        started = time.monotonic()
        code, _out, err = cli(home, "run", "--source", garbage.url(), "--config", cfg)
        elapsed = time.monotonic() - started
        assert code != 0
        assert f"cannot open RTSP stream {garbage.url()}" in err and "is down after 3 failed attempts" in err
        assert garbage.connections >= 3  # it was retried, not given up at once
        assert elapsed < 30
    alerts, runs = stored(home)
    assert alerts == [] and runs == []  # nothing half-written


@pytest.mark.slow
def test_killed_worker_is_restarted_and_its_camera_comes_back(home, clip):
    with RtspServer({"cam": clip}) as server:
        settings = settings_for([{"id": "platform-2", "source": server.url("cam"), "analysis_fps": 8}])
        with Node(home, settings) as node:
            node.wait(lambda: node.alerts, 90, "a first alert")
            pid = node.sup.worker_pids()[0]
            os.kill(pid, signal.SIGKILL)
            killed = time.time()
            node.wait(
                lambda: [s for s in node.states if s.state == "reconnecting" and "exited with code -9" in s.reason],
                30,
                "the crash to be reported",
            )
            node.wait(lambda: node.sup.worker_pids().get(0) not in (None, pid), 30, "a new worker")
            node.wait(lambda: any(t > killed for t, _ in node.alerts), 90, "an alert from the new worker")
    alerts, runs = stored(home)
    assert {a.event_id for a in alerts} == {a.event_id for _, a in node.alerts}
    assert [r.status for r in runs] == ["crashed", "finished"]
    assert "exited with code -9" in runs[0].error
    assert node.report.restarts == 1
    assert node.report.snapshot["cameras"]["platform-2"]["restarts"] == 1


@pytest.mark.slow
def test_sigterm_stops_the_node_cleanly_and_loses_nothing(home, clip, tmp_path):
    with RtspServer({"a": clip, "b": clip}) as server:
        cfg = tmp_path / "node.yaml"
        cfg.write_text(
            "ingest:\n"
            + "".join(f"  {k}: {v}\n" for k, v in FAST_INGEST.items())
            + f"cameras:\n  - id: cam-a\n    source: {server.url('a')}\n    analysis_fps: 6\n"
            f"  - id: cam-b\n    source: {server.url('b')}\n    analysis_fps: 6\n"
        )
        metrics = tmp_path / "metrics.prom"
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("metrosight")),
                "--home",
                str(home),
                "node",
                "--config",
                str(cfg),
                "--json",
                "--metrics-file",
                str(metrics),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
        reader.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any('"type": "alert"' in x for x in lines):
            time.sleep(0.2)
        assert any('"type": "alert"' in x for x in lines), f"no alert: {lines} {proc.poll()}"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        reader.join(10)
        err = proc.stderr.read()
    assert code == 0, err
    events = json_lines("".join(lines))
    printed = [e for e in events if e["type"] == "alert"]
    summary = events[-1]
    assert summary["type"] == "summary" and summary["alerts_stored"] == len(printed)
    assert {e["camera_id"] for e in events if e["type"] == "camera_state" and e["state"] == "stopped"} == {
        "cam-a",
        "cam-b",
    }
    alerts, runs = stored(home)
    assert sorted(a.event_id for a in alerts) == sorted(e["event_id"] for e in printed)
    assert sorted(r.status for r in runs) == ["finished", "finished"]
    assert all(r.finished_at is not None for r in runs)
    text = metrics.read_text()
    assert 'metrosight_camera_state{camera="cam-a",state="stopped"} 1' in text
    assert "metrosight_camera_frames_analysed_total" in text


@pytest.mark.slow
def test_run_command_reconnects_then_stops_cleanly_when_the_camera_is_gone(home, clip, tmp_path):
    with RtspServer({"cam": clip}) as server:
        cfg = tmp_path / "fast.yaml"
        patient = {**FAST_INGEST, "down_after_attempts": 8}  # outlives the server's restart (~1-2 s)
        cfg.write_text(
            "ingest:\n"
            + "".join(f"  {k}: {v}\n" for k, v in patient.items())
            + "alerts:\n  episode_window_s: 0\n  group_window_s: 0\n"  # one alert per track (episodes: elsewhere)
        )
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("metrosight")),
                "--home",
                str(home),
                "run",
                "--source",
                server.url("cam"),
                "--camera",
                "gate-3",
                "--config",
                str(cfg),
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: list[tuple[float, str]] = []
        reader = threading.Thread(
            target=lambda: lines.extend((time.time(), x) for x in iter(proc.stdout.readline, "")), daemon=True
        )
        reader.start()

        def alerts_after(t: float) -> list[str]:
            return [x for w, x in lines if w > t and '"type": "alert"' in x]

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not alerts_after(0):
            time.sleep(0.2)
        assert alerts_after(0), f"no alert: {proc.poll()}"
        server.kill()
        time.sleep(0.5)
        server.start()  # back before the camera is given up: the run goes on
        restarted = time.time()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not alerts_after(restarted):
            time.sleep(0.2)
        assert alerts_after(restarted), "no alert after the server came back"
        server.kill()  # gone for good: the camera goes down and the run stops
        code = proc.wait(60)
        reader.join(10)
        err = proc.stderr.read()
    assert code != 0
    assert "camera gate-3: reconnecting" in err
    assert "camera gate-3 is down after 8 failed attempts" in err and "alerts found before the break are stored" in err
    printed = json_lines("".join(x for _, x in lines))
    alerts, runs = stored(home)
    assert sorted(a.event_id for a in alerts) == sorted(e["event_id"] for e in printed if e["type"] == "alert")
    assert [r.status for r in runs] == ["broken"] and "down after 8 failed attempts" in runs[0].error


@pytest.mark.slow
def test_node_runs_behaviour_analytics_for_listed_cameras_and_a_file_camera_ends_cleanly(home, rtsp_ready, tmp_path):
    """A file is a replayed camera: played at its own rate, then the camera stops and the node ends. The Intel
    one-by-one clip's first 22 s: one person stands at the table from 8.5 s to 18.3 s (annotated by eye)."""
    video = require_data("intel_sample_videos", "one-by-one-person-detection.mp4")
    clip = tmp_path / "intel_22s.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            str(video),
            "-t",
            "22",
            "-c",
            "copy",
            "-an",
            str(clip),
        ],
        check=True,
    )
    table = [[400, 330], [540, 330], [540, 415], [400, 415]]
    settings = Settings.model_validate(
        {
            "cameras": [{"id": "intel", "source": str(clip)}],
            "analytics": {
                "loitering_seconds": 5.0,
                "cameras": {"intel": {"zones": [{"name": "table", "polygon": table}]}},
            },
        }
    )
    node = Node(home, settings)
    started = time.monotonic()
    report = node.sup.run(duration=120)
    elapsed = time.monotonic() - started
    assert 20 <= elapsed < 90  # played in real time, then the node ended by itself
    assert node.state_seq("intel") == ["starting", "live", "stopped"]
    store = Store.for_home(home)
    loiter = [e for e in store.events.all(camera_id="intel") if e.kind != "camera_state"]
    assert [e.kind for e in loiter] == ["loitering"], [(e.kind, e.start_ts) for e in loiter]
    assert abs(loiter[0].start_ts - 8.5) <= 2.5
    assert [r.status for r in _runs(store)] == ["finished"]
    assert report.snapshot["cameras"]["intel"]["frames_analysed"] > 100
