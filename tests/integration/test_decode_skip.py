"""Decoding only what the analysis needs, on real files: a clip with B-frames decodes fewer frames at a low
analysis rate and still hands the analysis as many frames, with indexes of full decoding; a clip without B-frames
(as most IP cameras send) loses nothing; the Hamilton clip gives the same frames as with every frame decoded."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from metrosight.core.source import SourceSpec
from metrosight.ingest.decode import DecodeOptions
from metrosight.ingest.source import VideoSource
from tests.conftest import missing_system, require_data

pytestmark = pytest.mark.integration


def crowd() -> Path:
    return require_data("facenet_pytorch_samples", "examples", "video.mp4")


def analysed(path: Path, fps: float | None, skip: str) -> tuple[VideoSource, list[tuple[int, float]]]:
    src = VideoSource(SourceSpec.parse(str(path)), "cam", fps, decode=DecodeOptions(skip=skip))  # type: ignore[arg-type]
    return src, [(f.index, f.ts) for f in src.frames()]


@pytest.fixture(scope="module")
def no_b_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The crowd clip re-encoded without B-frames (every frame a reference), at 640 px to keep it quick."""
    if shutil.which("ffmpeg") is None:
        missing_system("ffmpeg is needed to build the clip without B-frames")
    out = tmp_path_factory.mktemp("nob") / "nob.mp4"
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(crowd()), "-vf", "scale=640:-2", "-c:v", "libx264", "-bf", "0"]
    subprocess.run([*cmd, "-an", str(out)], check=True, timeout=120)
    return out


@pytest.mark.parametrize("fps", [12.0, 6.0])
def test_a_b_frame_clip_decodes_fewer_frames_and_analyses_as_many(fps: float) -> None:
    full_src, full = analysed(crowd(), fps, "off")
    auto_src, auto = analysed(crowd(), fps, "auto")
    assert full_src.frames_decoded == 105 and full_src.stats.codec_skipped == 0
    assert auto_src.frames_decoded == 53 and auto_src.stats.codec_skipped == 52  # x264's non-reference B-frames
    assert len(auto) == len(full)  # the analysis rate is kept
    for (i_full, ts_full), (i_auto, ts_auto) in zip(full, auto, strict=True):
        assert abs(i_full - i_auto) <= 1  # a neighbouring frame at most, indexes as with full decoding
        assert abs(ts_full - ts_auto) <= 0.04 + 1e-6
    assert auto_src.stats.decode_seconds < full_src.stats.decode_seconds


def test_every_frame_is_decoded_without_an_analysis_rate_or_at_the_stream_rate() -> None:
    for fps in (None, 25.0):
        src, frames = analysed(crowd(), fps, "auto")
        assert src.frames_decoded == 105 and src.stats.codec_skipped == 0 and len(frames) == 105


def test_a_clip_without_b_frames_loses_nothing(no_b_clip: Path) -> None:
    full_src, full = analysed(no_b_clip, 6.0, "off")
    auto_src, auto = analysed(no_b_clip, 6.0, "auto")
    assert auto_src.stats.codec_skipped == 0 and auto_src.frames_decoded == full_src.frames_decoded == 105
    assert auto == full


def test_hamilton_gives_the_same_frames_with_auto() -> None:
    clip = require_data("face_recognition_examples", "examples", "short_hamilton_clip.mp4")
    for fps in (None, 6.0):
        off_src, off = analysed(clip, fps, "off")
        auto_src, auto = analysed(clip, fps, "auto")
        assert auto == off and auto_src.frames_decoded == off_src.frames_decoded == 275


@pytest.mark.slow
def test_alerts_are_the_same_with_auto_on_hamilton_and_the_crowd(tmp_path: Path) -> None:
    """The real pipeline at 6 analysed frames a second with skipping off (today) and auto: the same alerts."""
    from tests.integration.helpers import bootstrap, cli, enrol_active, json_lines

    ex = require_data("face_recognition_examples", "examples")
    home = tmp_path / "home"
    bootstrap(home)
    assert cli(home, "--as", "ada", "watchlist", "create", "wl", "--category", "wanted")[0] == 0
    assert enrol_active(home, "wl", "-s", "Lin-Manuel Miranda", ex / "lin-manuel-miranda.png")[0] == 0
    assert enrol_active(home, "wl", "-s", "Barack Obama", ex / "obama.jpg")[0] == 0
    got: dict[tuple[str, str], tuple[list[tuple[str, float]], int]] = {}
    skipped: dict[tuple[str, str], int] = {}
    for skip in ("off", "auto"):
        cfg = tmp_path / f"{skip}.yaml"
        cfg.write_text(f"ingest:\n  analysis_fps: 6\n  decode:\n    skip: {skip}\n")
        for name, clip in (("hamilton", ex / "short_hamilton_clip.mp4"), ("crowd", crowd())):
            code, out, err = cli(home, "run", "--source", clip, "--camera", name, "--config", cfg, "--json")
            assert code == 0, err
            lines = json_lines(out)
            alerts = [(a["subject"], round(a["first_seen"], 2)) for a in lines if a["type"] == "alert"]
            summary = next(x for x in lines if x["type"] == "summary")
            got[(skip, name)] = (alerts, summary["frames"])
            skipped[(skip, name)] = summary["decode"]["frames_codec_skipped"]
    assert got[("auto", "hamilton")] == got[("off", "hamilton")]
    assert {s for s, _ in got[("off", "hamilton")][0]} == {"Lin-Manuel Miranda"}
    (crowd_off, n_off), (crowd_auto, n_auto) = got[("off", "crowd")], got[("auto", "crowd")]
    assert n_auto == n_off and [s for s, _ in crowd_auto] == [s for s, _ in crowd_off]  # frames a neighbour apart
    assert skipped == {("off", "hamilton"): 0, ("off", "crowd"): 0, ("auto", "hamilton"): 0, ("auto", "crowd"): 52}
