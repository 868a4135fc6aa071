"""Camera source kinds against real servers on loopback: MJPEG over HTTP (the field case), RTSP restricted to UDP or
to TCP (rtsp_transport), RTSP with basic authentication and reserved characters in the password."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from metrosight.config.model import IngestConfig
from metrosight.ingest.factory import live_source
from metrosight.ingest.source import SourceError, open_container, parse_source
from metrosight.store.models import Run
from metrosight.store.repo import Store
from tests.conftest import missing_system, require_case, require_data
from tests.integration.helpers import bootstrap, cli, json_lines
from tests.integration.procs import free_port, kill_process
from tests.integration.rtsp import MjpegHttpServer, RtspServer, listening, looped_video, rtsp_missing

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

FAST = IngestConfig(
    open_timeout_seconds=3.0,
    stall_timeout_seconds=2.0,
    reconnect_initial_seconds=0.2,
    reconnect_max_seconds=0.5,
    down_after_attempts=3,
)
SECRETS = ("Http@Pw 9/x", "TokSecret42")


@pytest.fixture(scope="module")
def servers_ready():
    why = rtsp_missing()
    if why:
        missing_system(why)


@pytest.fixture(scope="module")
def mjpeg(servers_ready) -> Path:
    return require_case("mjpeg-over-http", "mjpeg.avi")


@pytest.fixture(scope="module")
def clip(tmp_path_factory, servers_ready) -> Path:
    ex = require_data("face_recognition_examples", "examples")
    return looped_video(ex / "short_hamilton_clip.mp4", tmp_path_factory.mktemp("media") / "hamilton_x3.mp4", 3)


def http_url(server: MjpegHttpServer) -> str:
    return server.url(f"cam:{quote(SECRETS[0], safe='')}@", f"?token={SECRETS[1]}&fps=30")


def no_secret(*texts: str) -> None:
    for text in texts:
        for s in SECRETS + (quote(SECRETS[0], safe=""),):
            assert s not in text, f"{s!r} shown in {text!r}"


def wait_for(src, states, what, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for change in src.poll_states():
            states.append(change)
        if what():
            return
        cap = src.take()
        if cap is not None:
            frames.append(cap)
        time.sleep(0.02)
    raise AssertionError(f"timed out; states {[(c.state, c.reason) for c in states]}")


frames: list = []


def test_mjpeg_over_http_is_a_live_camera_that_reconnects(mjpeg):
    server = MjpegHttpServer(mjpeg).start()
    spec = parse_source(http_url(server))
    assert spec.kind == "http" and spec.display == f"http://***@127.0.0.1:{server.port}/cam.mjpg?token=***&fps=30"
    src = live_source(spec, "gate-http", FAST, analysis_fps=10).start()
    states: list = []
    frames.clear()
    try:
        wait_for(src, states, lambda: len(frames) >= 5, 30)
        assert frames[0].frame.image.shape == (360, 640, 3)
        server.kill()  # the camera goes away …
        wait_for(src, states, lambda: any(c.state == "reconnecting" for c in states), 30)
        time.sleep(1.0)
        server.start()  # … and comes back
        n = len(frames)
        wait_for(src, states, lambda: [c.state for c in states][-1] == "live" and len(frames) > n + 3, 30)
    finally:
        src.stop()
        server.kill()
    seq = [c.state for c in states]
    assert seq[:2] == ["starting", "live"] and "reconnecting" in seq and seq[-1] == "live"
    assert src.counters.reconnects >= 1 and max(f.segment for f in frames) >= 1
    no_secret(*(c.reason for c in states))
    assert any(spec.display in c.reason for c in states)


def test_run_over_http_stores_the_redacted_address(mjpeg, tmp_path):
    home = tmp_path / "home"
    bootstrap(home)
    cfg = tmp_path / "fast.yaml"
    cfg.write_text(
        "ingest: {open_timeout_seconds: 2, stall_timeout_seconds: 2, reconnect_initial_seconds: 0.2, "
        "reconnect_max_seconds: 0.3, down_after_attempts: 2, analysis_fps: 5}\n"
    )
    with MjpegHttpServer(mjpeg) as server:
        url = http_url(server)
        # the server serves one client and then exits when it closes: the camera then goes down and `run` ends
        import threading

        threading.Timer(4.0, server.kill).start()
        code, out, err = cli(home, "run", "--source", url, "--camera", "gate-http", "--config", cfg, "--json")
    no_secret(out, err)
    assert code != 0 and "camera gate-http is down" in err and "alerts found before the break are stored" in err
    summary = next(x for x in json_lines(out) if x["type"] == "summary")
    assert summary["frames"] >= 5
    store = Store.for_home(home)
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    with Session(store.engine) as s:
        [run] = list(s.scalars(select(Run)))
    assert run.source == f"http://***@127.0.0.1:{server.port}/cam.mjpg?token=***&fps=30"
    assert run.status == "broken"
    no_secret(run.source, run.error or "")


def test_rtsp_transport_auto_reaches_a_udp_only_camera_and_tcp_is_named(clip):
    with RtspServer({"cam": clip}, protocols="udp") as server:
        url = server.url("cam")
        for transport in ("auto", "udp"):
            c = open_container(parse_source(url, transport), open_timeout=5)
            assert next(c.decode(video=0)).width == 640
            c.close()
        with pytest.raises(SourceError) as err:
            open_container(parse_source(url, "tcp"), open_timeout=5)
    msg = str(err.value)
    assert "over TCP" in msg and "does not offer RTP over TCP" in msg and "rtsp_transport" in msg
    assert "credentials" not in msg and "address" not in msg  # it does not blame the address or the password


def test_tcp_only_camera_refuses_udp_by_name(clip):
    with RtspServer({"cam": clip}, protocols="tcp") as server:
        c = open_container(parse_source(server.url("cam")), open_timeout=5)  # auto: TCP first
        c.close()
        with pytest.raises(SourceError) as err:
            open_container(parse_source(server.url("cam"), "udp"), open_timeout=5)
    assert "over UDP" in str(err.value) and "does not offer RTP over UDP" in str(err.value)


def test_rtsp_transport_from_the_camera_config_and_the_run_option(clip, tmp_path):
    home = tmp_path / "home"
    bootstrap(home)
    cfg = tmp_path / "c.yaml"
    with RtspServer({"cam": clip}, protocols="udp") as server:
        cfg.write_text(
            "ingest: {open_timeout_seconds: 3, reconnect_initial_seconds: 0.1, reconnect_max_seconds: 0.2, "
            "down_after_attempts: 2}\n"
            f"cameras:\n  - {{id: udp-cam, source: '{server.url('cam')}', rtsp_transport: tcp}}\n"
        )
        code, _, err = cli(home, "run", "--source", server.url("cam"), "--camera", "udp-cam", "--config", cfg)
        assert code != 0 and "over TCP" in err and "does not offer RTP over TCP" in err
        # the option wins over the config: udp works (stopped by the server going away)
        import threading

        threading.Timer(6.0, server.kill).start()
        code, out, err = cli(
            home,
            "run",
            "--source",
            server.url("cam"),
            "--camera",
            "udp-cam",
            "--config",
            cfg,
            "--rtsp-transport",
            "udp",
            "--json",
        )
    summary = next(x for x in json_lines(out) if x["type"] == "summary")
    assert summary["frames"] > 10, err


def test_rtsp_password_with_reserved_characters_percent_encoded(clip):
    password = "P@ss w/#?:%9"
    with RtspServer({"cam": clip}, user=f"admin:{password}") as server:
        ok = f"rtsp://admin:{quote(password, safe='')}@127.0.0.1:{server.port}/cam"
        c = open_container(parse_source(ok), open_timeout=5)
        assert next(c.decode(video=0)).width == 640
        c.close()
        # FFmpeg's reading of the authority: the last '@' ends the password, so this one works unescaped too
        at_only = f"rtsp://admin2:Pa@ss@127.0.0.1:{server.port}/cam"
        assert parse_source(at_only).password == "Pa@ss"
        wrong = f"rtsp://admin:{quote('Wr@ng pass', safe='')}@127.0.0.1:{server.port}/cam"
        with pytest.raises(SourceError) as err:
            open_container(parse_source(wrong), open_timeout=5)
    msg = str(err.value)
    assert "refused the credentials" in msg and "401" in msg
    assert "Wr@ng" not in msg and "Wr%40ng" not in msg and "admin" not in msg
    assert f"rtsp://***@127.0.0.1:{server.port}/cam" in msg


# -- the other network kinds FFmpeg reads: each a live camera with the same states --------------------------------
def _sender(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@pytest.mark.parametrize("kind", ["udp", "rtmp", "hls"])
def test_network_kinds_are_live_cameras(kind, clip, tmp_path):
    port = free_port()
    procs: list = []
    if kind == "udp":  # MPEG-TS pushed to the camera's port
        url = f"udp://127.0.0.1:{port}"
        procs.append(_sender(["-re", "-i", str(clip), "-c", "copy", "-f", "mpegts", f"{url}?pkt_size=1316"]))
    elif kind == "rtmp":  # a media server's stream (ffmpeg listens as the server)
        url = f"rtmp://127.0.0.1:{port}/live/cam?token={SECRETS[1]}"
        procs.append(_sender(["-re", "-i", str(clip), "-c", "copy", "-f", "flv", "-listen", "1", url]))
        deadline = time.monotonic() + 10
        while not listening(port) and time.monotonic() < deadline:
            time.sleep(0.05)
    else:  # HLS over HTTP, with a token in the query
        hls = tmp_path / "hls"
        hls.mkdir()
        subprocess.run(
            [
                "ffmpeg",
                "-hide_banner",
                "-loglevel",
                "error",
                "-i",
                str(clip),
                "-t",
                "8",
                "-c",
                "copy",
                "-f",
                "hls",
                "-hls_time",
                "1",
                "-hls_playlist_type",
                "vod",
                str(hls / "index.m3u8"),
            ],
            check=True,
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(hls)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        deadline = time.monotonic() + 10
        while not listening(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/index.m3u8?token={SECRETS[1]}"
    spec = parse_source(url)
    # FLV over RTMP is probed for ~5 s before its first frame
    cfg = FAST.model_copy(update={"open_timeout_seconds": 10.0, "stall_timeout_seconds": 5.0})
    src = live_source(spec, f"cam-{kind}", cfg, analysis_fps=10).start()
    states: list = []
    frames.clear()
    try:
        wait_for(src, states, lambda: len(frames) >= 5, 40)
    finally:
        src.stop()
        for p in procs:
            kill_process(p)
    assert frames[0].frame.image.shape == (360, 640, 3)
    assert [c.state for c in states][:2] == ["starting", "live"]
    no_secret(*(c.reason for c in states))
    assert spec.display in states[0].reason


@pytest.mark.slow
def test_node_runs_an_mjpeg_camera_like_an_rtsp_one(mjpeg, tmp_path):
    """The field case on a node: the MJPEG camera goes live in a worker process, frames are analysed, and the
    address is shown and stored without its credentials."""
    import threading

    from metrosight.config.home import Home
    from metrosight.config.model import Settings
    from metrosight.pipeline.supervisor import Supervisor
    from metrosight.services.suite import Services

    home = tmp_path / "home"
    bootstrap(home)
    with MjpegHttpServer(mjpeg) as server:
        settings = Settings.model_validate(
            {
                "ingest": FAST.model_dump(),
                "node": {"workers": 1, "pin_cores": False, "shutdown_timeout_seconds": 20},
                "cameras": [{"id": "gate-http", "source": http_url(server), "analysis_fps": 5}],
            }
        )
        states: list = []
        sup = Supervisor(Services.open(Home(home), settings), on_state=states.append)
        thread = threading.Thread(target=sup.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                cam = sup.metrics.snapshot()["cameras"].get("gate-http", {})
                if any(s.state == "live" for s in states) and cam.get("frames_analysed", 0) >= 5:
                    break
                time.sleep(0.2)
            else:
                raise AssertionError(f"not live: {[(s.state, s.reason) for s in states]}")
        finally:
            sup.request_stop()
            thread.join(60)
    no_secret(*(s.reason for s in states))
    store = Store.for_home(home)
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    with Session(store.engine) as s:
        [run] = list(s.scalars(select(Run)))
    assert run.source == f"http://***@127.0.0.1:{server.port}/cam.mjpg?token=***&fps=30" and run.frames >= 5
