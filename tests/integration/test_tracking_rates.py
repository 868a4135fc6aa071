"""Face tracks at a low analysis rate, with the real detector on the shared clips: one track per face at 6 analysed
frames a second as at every frame, and the same alerts as the earlier tracker on the Hamilton clip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metrosight.config.model import Settings
from metrosight.config.operating_points import SWITCHES
from metrosight.ingest.source import VideoSource, parse_source
from metrosight.pipeline.camera import CameraPipeline
from metrosight.recognize.gallery import Gallery, Matcher
from metrosight.recognize.registry import embedder_for
from metrosight.services.models import make_face_detector
from tests.conftest import require_data
from tests.integration.helpers import bootstrap, cli, enrol_active, json_lines

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "metrosight" / "sample"
# the tracker before issue 20: the tracking switches of the 'today' operating point
BASELINE = {s.path.removeprefix("tracking."): s.today for s in SWITCHES if s.path.startswith("tracking.")}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory):
    settings = Settings()
    return make_face_detector(settings), embedder_for(settings, tmp_path_factory.mktemp("models"))


def tracks_at(video: Path, fps: float | None, tracking: dict, models) -> int:
    """Tracks the camera pipeline starts on ``video`` at ``fps`` analysed frames a second (no watchlist)."""
    settings = Settings.model_validate({"tracking": tracking, "ingest": {"analysis_fps": fps}})
    det, emb = models
    pipe = CameraPipeline(settings, det, emb, Matcher(Gallery([]), 0.95), lambda _a: None, lambda _u: None)
    for frame in VideoSource(parse_source(str(video)), "crowd", fps).frames():
        pipe.process(frame)
    pipe.finish()
    return pipe.stats.tracks


def test_crowd_clip_at_6_fps_gives_the_tracks_of_every_frame(models):
    video = require_data("facenet_pytorch_samples", "examples", "video.mp4")
    every = tracks_at(video, None, {}, models)
    low = tracks_at(video, 6.0, {}, models)
    assert every >= 10  # the clip's walkers (12 measured)
    assert abs(low - every) <= 0.1 * every, (every, low)
    # the earlier tracker split faces at this rate (32 tracks against 15): what the test guards against
    assert tracks_at(video, 6.0, BASELINE, models) > 1.5 * every


def hamilton_alerts(tmp: Path, tracking: dict, fps: float) -> tuple[list[dict], dict]:
    ex = require_data("face_recognition_examples", "examples")
    home = tmp / "home"
    bootstrap(home)
    assert cli(home, "--as", "ada", "watchlist", "create", "wl", "--category", "wanted")[0] == 0
    for subject, photo in [("Lin-Manuel Miranda", "lin-manuel-miranda.png"), ("Barack Obama", "obama.jpg")]:
        code, out, _ = enrol_active(home, "wl", "-s", subject, ex / photo)
        assert code == 0 and "enrolled 1 photo" in out, out
    cfg = tmp / "metrosight.yaml"
    cfg.write_text(json.dumps({"tracking": tracking, "ingest": {"analysis_fps": fps}}))  # JSON is YAML
    code, out, err = cli(home, "run", "--source", SAMPLE / "short_hamilton_clip.mp4", "--camera", "stage",
                         "--config", cfg, "--json")  # fmt: skip
    assert code == 0, err
    lines = json_lines(out)
    return [x for x in lines if x["type"] == "alert"], next(x for x in lines if x["type"] == "summary")


@pytest.mark.slow
def test_hamilton_at_6_fps_alerts_miranda_as_the_earlier_tracker_did(tmp_path):
    new, new_summary = hamilton_alerts(tmp_path / "new", {}, 6.0)
    old, old_summary = hamilton_alerts(tmp_path / "old", BASELINE, 6.0)
    assert {a["subject"] for a in new} == {a["subject"] for a in old} == {"Lin-Manuel Miranda"}
    assert new_summary["alerts"] == old_summary["alerts"] == 1  # one alert, its tracks its sightings
    assert len(new) <= len(old)  # never more sightings than before
    assert all(a["first_seen"] <= a["last_seen"] <= 7.04 for a in new)  # while he is on screen (cut at 7.04 s)
