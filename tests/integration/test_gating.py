"""Motion gating and detection regions on real video with the real models, through `metrosight run`.

- a still scene (ffmpeg's colour bars): after the first full detection the detector is not called again until the
  safety refresh;
- a still person (a portrait held in an HD frame): found in every frame, searched only around their face;
- the bundled Hamilton clip: the same alerts with gating on as with it off (today), Lin-Manuel Miranda enrolled
  from the still of its first shot;
- a detection region that excludes his face (the bottom half of the frame): no alert; one that holds it (the top
  half): the same alerts as the whole frame.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.core.types import Box, Detection
from metrosight.detect.registry import face_detector_for
from metrosight.pipeline.runtime import Runtime
from metrosight.services.installation import Installation
from metrosight.services.models import Models
from metrosight.services.suite import Services
from tests.conftest import missing_system, require_data
from tests.integration.helpers import bootstrap, cli, enrol_active, json_lines

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "metrosight" / "sample"


class CountingDetector:
    """The configured detector (CenterFace), counting its calls and the pixels it is given."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.scales_input = inner.scales_input
        self.calls = 0
        self.pixels = 0

    def detect(self, image: np.ndarray) -> list[Detection]:
        self.calls += 1
        self.pixels += image.shape[0] * image.shape[1]
        return self.inner.detect(image)

    def working_scale(self, width: int, height: int) -> float:
        return self.inner.working_scale(width, height)

    def landmark_box(self, box: Box) -> Box:
        return self.inner.landmark_box(box)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, timeout=120)


def run_counted(home: Path, video: Path, over: dict) -> tuple[CountingDetector, Any]:
    settings = Settings.model_validate(over)
    inst = Installation.open(Home(home), settings)
    det = CountingDetector(face_detector_for(settings))
    svc = Services.of(inst, Models(settings, inst.home.cache, detector=det, store=inst.store.gallery))
    report = Runtime(svc).run(str(video), "cam")
    assert report.status == "finished"
    return det, report


GATED = {"detection": {"gating": {"enabled": True, "full_every_seconds": 60}}}


def test_a_still_scene_is_searched_once(tmp_path: Path):
    video = tmp_path / "bars.mp4"
    ffmpeg("-f", "lavfi", "-i", "smptebars=size=640x360:rate=10", "-t", "5", "-pix_fmt", "yuv420p", str(video))
    det, report = run_counted(tmp_path / "home", video, GATED)
    s = report.stats
    assert s.frames == 50 and det.calls == 1 and s.gated == 49
    assert s.detect_pixels == 640 * 360 and s.faces == 0
    today, _ = run_counted(tmp_path / "home2", video, {})
    assert today.calls == 50  # gating off (the default): every frame, whole


def test_a_still_person_is_found_in_every_frame_searched_around_their_face(tmp_path: Path):
    photo = require_data("face_recognition_examples", "examples", "obama.jpg")
    video = tmp_path / "portrait.mp4"
    pad = "scale=-2:400,pad=1280:720:500:160:color=gray,format=yuv420p"
    ffmpeg("-loop", "1", "-i", str(photo), "-t", "4", "-r", "10", "-vf", pad, str(video))
    det, report = run_counted(tmp_path / "home", video, GATED)
    s = report.stats
    assert s.frames == 40 and s.faces == 40 and s.tracks == 1  # never lost, one track
    assert s.gated == 0 and det.calls == 40
    assert s.detect_pixels < 0.3 * s.frame_pixels  # the first frame whole, then around the face
    today, base = run_counted(tmp_path / "home2", video, {})
    assert base.stats.faces == 40 and base.stats.tracks == 1
    assert det.pixels < 0.5 * today.pixels


@pytest.fixture(scope="module")
def hamilton_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("gating") / "home"
    bootstrap(home)
    assert cli(home, "--as", "ada", "watchlist", "create", "wl", "--category", "wanted")[0] == 0
    code, out, err = enrol_active(home, "wl", "-s", "Lin-Manuel Miranda", SAMPLE / "lin-manuel-miranda-still.png")
    assert code == 0 and "enrolled 1 photo" in out, out + err
    return home


def run_hamilton(home: Path, tmp: Path, name: str, config: str) -> tuple[list[dict], dict]:
    cfg = tmp / f"{name}.yaml"
    cfg.write_text(config, encoding="utf-8")
    clip = SAMPLE / "short_hamilton_clip.mp4"
    code, out, err = cli(home, "run", "--source", clip, "--camera", "stage", "--config", cfg, "--json")
    assert code == 0, err
    lines = json_lines(out)
    return [x for x in lines if x["type"] == "alert"], next(x for x in lines if x["type"] == "summary")


def sightings(alerts: list[dict]) -> list[tuple[str, float]]:
    return sorted((a["subject"], a["first_seen"]) for a in alerts)


def test_hamilton_same_alerts_with_gating_on(hamilton_home: Path, tmp_path: Path):
    base = "alerts: {episode_window_s: 0, group_window_s: 0}\n"
    off, off_sum = run_hamilton(hamilton_home, tmp_path, "off", base)
    on, on_sum = run_hamilton(hamilton_home, tmp_path, "on", base + "detection: {gating: {enabled: true}}\n")
    assert off and {a["subject"] for a in off} == {"Lin-Manuel Miranda"}
    assert [s for s, _ in sightings(on)] == [s for s, _ in sightings(off)]
    for (_, a), (_, b) in zip(sightings(on), sightings(off), strict=True):
        assert abs(a - b) <= 0.2  # seen at the same moment, within a few frames
    assert off_sum["frames_gated"] == 0 and off_sum["detect_share"] == 1.0
    assert on_sum["detect_share"] <= 1.0 and abs(on_sum["tracks"] - off_sum["tracks"]) <= 0.1 * off_sum["tracks"]


def test_a_region_without_his_face_raises_no_alert(hamilton_home: Path, tmp_path: Path):
    cams = "cameras: [{{id: stage, source: x.mp4, detection: {{regions: [{r}]}}}}]\n"
    bottom, bottom_sum = run_hamilton(hamilton_home, tmp_path, "bottom", cams.format(r="[0, 0.5, 1, 1]"))
    assert bottom == [] and bottom_sum["detect_share"] == 0.5
    top, _ = run_hamilton(hamilton_home, tmp_path, "top", cams.format(r="[0, 0, 1, 0.5]"))
    assert {a["subject"] for a in top} == {"Lin-Manuel Miranda"}


@pytest.fixture(scope="module")
def live_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Hamilton clip six times over, for the loopback RTSP server."""
    from tests.integration.rtsp import looped_video, rtsp_missing

    why = rtsp_missing()
    if why:
        missing_system(why)
    return looped_video(SAMPLE / "short_hamilton_clip.mp4", tmp_path_factory.mktemp("media") / "hamilton_x6.mp4", 6)


def test_a_live_camera_in_a_node_gates_searches_its_region_and_alerts_across_a_reconnect(
    hamilton_home: Path, live_clip: Path, tmp_path: Path
):
    """An RTSP camera (the Hamilton clip looped) in a node, gating on and a region holding Miranda's face (the top
    half): alerts before the server is killed and after it restarts (the reconnect searches the region whole again);
    the node's metrics count half of the pixels searched."""
    from tests.integration.rtsp import RtspServer
    from tests.integration.test_live_cameras import Node, settings_for

    with RtspServer({"cam": live_clip}) as server:
        detection = {"gating": True, "regions": [[0.0, 0.0, 1.0, 0.5]]}
        cams = [{"id": "platform-1", "source": server.url("cam"), "analysis_fps": 8, "detection": detection}]
        home = tmp_path / "home"
        shutil.copytree(hamilton_home, home)
        with Node(home, settings_for(cams)) as node:
            node.wait(lambda: node.alerts, 90, "a first alert")
            server.kill()
            node.wait(lambda: node.has_states("platform-1", "live", "reconnecting"), 30, "reconnecting")
            time.sleep(1.5)
            server.start()
            restarted = time.time()
            node.wait(lambda: node.has_states("platform-1", "live", "reconnecting", "live"), 30, "live again")
            node.wait(lambda: any(t > restarted for t, _ in node.alerts), 60, "an alert after the restart")
    assert {a.subject for _, a in node.alerts} == {"Lin-Manuel Miranda"}
    cam = node.report.snapshot["cameras"]["platform-1"]
    assert cam["frames_analysed"] > 10 and cam["frame_pixels"] == cam["frames_analysed"] * 640 * 360
    assert 0 < cam["detect_pixels"] <= 0.5 * cam["frame_pixels"]  # never more than the region
