"""Decode cost per camera on live RTSP cameras, end to end: a node's workers decode two cameras served by a real RTSP
server — the crowd clip (H.264 with B-frames) and the Hamilton clip (no non-reference frames) — at 6 analysed frames
a second, and the node's metrics show each camera's decoding CPU seconds, frames decoded, frames the decoder skipped
and the decoder; the crowd camera's B-frames are left undecoded while it is analysed at the same rate."""

from __future__ import annotations

from pathlib import Path

import pytest

from metrosight.config.model import IngestConfig
from metrosight.ingest.factory import live_source
from metrosight.ingest.source import parse_source
from tests.conftest import missing_system, require_data
from tests.integration.helpers import bootstrap
from tests.integration.rtsp import RtspServer, looped_video, rtsp_missing
from tests.integration.test_live_cameras import Node, settings_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if why := rtsp_missing():
        missing_system(why)
    media = tmp_path_factory.mktemp("media")
    crowd = require_data("facenet_pytorch_samples", "examples", "video.mp4")
    hamilton = require_data("face_recognition_examples", "examples", "short_hamilton_clip.mp4")
    return {
        "crowd": looped_video(crowd, media / "crowd_x4.mp4", 4),
        "hamilton": looped_video(hamilton, media / "hamilton_x2.mp4", 2),
    }


def analysed_for(server: RtspServer, skip: str, seconds: float) -> tuple[int, int, int, float]:
    """(frames analysed, decoded, skipped by the decoder, decode CPU s) of the crowd camera over ``seconds``."""
    cfg = IngestConfig.model_validate({"open_timeout_seconds": 5, "decode": {"skip": skip}})
    src = live_source(parse_source(server.url("crowd")), "cam", cfg, analysis_fps=6, keep_trying=False)
    n, first = 0, None
    for frame in src.frames():
        first = frame.ts if first is None else first
        n += 1
        if frame.ts - first >= seconds:
            break
    src.stop()
    c = src.counters
    return n, c.decoded, c.codec_skipped, c.decode_seconds


def test_a_live_camera_with_b_frames_is_analysed_at_its_rate_with_fewer_frames_decoded(clips) -> None:
    with RtspServer(clips) as server:
        full = analysed_for(server, "off", 5.0)
        auto = analysed_for(server, "auto", 5.0)
    assert full[2] == 0 and auto[2] > 0
    assert abs(auto[0] - full[0]) <= 1  # 6 a second of media time either way
    assert auto[1] < 0.7 * full[1]  # about half the frames decoded
    assert auto[3] > 0 and full[3] > 0


@pytest.mark.slow
def test_node_metrics_show_decode_cost_per_camera(clips, tmp_path) -> None:
    home = tmp_path / "home"
    bootstrap(home)
    with RtspServer(clips) as server:
        cameras = [{"id": name, "source": server.url(name), "analysis_fps": 6} for name in ("crowd", "hamilton")]
        with Node(home, settings_for(cameras)) as node:

            def reported() -> dict | None:
                cams = node.sup.metrics.snapshot()["cameras"]
                ok = all(
                    cams.get(c, {}).get("decode_seconds", 0) > 0 and cams[c]["frames_analysed"] >= 12
                    for c in ("crowd", "hamilton")
                )
                return cams if ok else None

            cams = node.wait(reported, 150, "decode counters of both cameras")
            text = node.sup.metrics.prometheus()
    crowd, hamilton = cams["crowd"], cams["hamilton"]
    assert crowd["frames_codec_skipped"] > 0.3 * crowd["frames_decoded"]  # the B-frames
    assert hamilton["frames_codec_skipped"] == 0  # nothing to skip: every frame a reference
    assert crowd["decoder"] == hamilton["decoder"] == "software"
    for cam in ("crowd", "hamilton"):
        assert f'metrosight_camera_decode_seconds_total{{camera="{cam}"}}' in text
        assert f'metrosight_camera_decoder{{camera="{cam}",decoder="software"}} 1' in text
        assert f'metrosight_camera_frames_codec_skipped_total{{camera="{cam}"}}' in text
    line = next(x for x in text.splitlines() if x.startswith('metrosight_camera_decode_seconds_total{camera="crowd"}'))
    assert float(line.split()[-1]) > 0
