"""Rotation and mirroring metadata (the container's display matrix) applied to every decoded frame.

A phone records a portrait video as landscape pixels plus a display matrix; the same holds for a mirrored (selfie)
clip. Built here from the Hamilton clip with FFmpeg: pixels turned a quarter clockwise plus ``rotate`` metadata, and
pixels mirrored plus a mirroring display matrix. Frames must come out upright, and the same people must be found
and alerted as in the upright clip.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from metrosight.config.model import IngestConfig
from metrosight.ingest.factory import live_source
from metrosight.ingest.source import VideoSource, parse_source
from tests.conftest import missing_system, require_data
from tests.integration.helpers import bootstrap, cli, enrol_active, json_lines

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    if shutil.which("ffmpeg") is None:
        missing_system("ffmpeg is not installed (apt-get install ffmpeg)")
    src = require_data("face_recognition_examples", "examples") / "short_hamilton_clip.mp4"
    d = tmp_path_factory.mktemp("rotation")
    enc = ["-an", "-c:v", "libx264", "-crf", "16", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
    ffmpeg("-i", str(src), *enc, str(d / "upright.mp4"))
    # pixels a quarter turn clockwise; the metadata turns them back for display
    ffmpeg("-i", str(src), "-vf", "transpose=clock", *enc, str(d / "turned.mp4"))
    ffmpeg("-i", str(d / "turned.mp4"), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(d / "rotated.mp4"))
    # pixels mirrored; a mirroring display matrix (FFmpeg 5's command line cannot write one: PyAV remuxes)
    ffmpeg("-i", str(src), "-vf", "hflip", *enc, str(d / "flipped.mp4"))
    with av.open(str(d / "flipped.mp4")) as inp, av.open(str(d / "mirrored.mp4"), "w") as out:
        s_in = inp.streams.video[0]
        st = out.add_stream_from_template(s_in)
        st.set_display_rotation(0, hflip=True)
        for p in inp.demux(s_in):
            if p.dts is not None:
                p.stream = st
                out.mux(p)
    return {k: d / f"{k}.mp4" for k in ("upright", "rotated", "mirrored", "turned")}


def first_frames(path: Path, n: int = 5) -> list[np.ndarray]:
    out = []
    for f in VideoSource(parse_source(str(path))).frames():
        out.append(f.image.astype(np.int16))
        if len(out) == n:
            break
    return out


def test_the_test_clips_carry_metadata_not_upright_pixels(clips):
    for name in ("rotated", "mirrored"):
        with av.open(str(clips[name])) as c:
            f = next(c.decode(video=0))
            raw = f.to_ndarray(format="rgb24").astype(np.int16)
            assert f.rotation in (90, -90, 180, -180)  # a display matrix is there
    up = first_frames(clips["upright"], 1)[0]
    assert raw.shape == up.shape and np.abs(raw - up).mean() > 10  # mirrored pixels differ from upright ones
    # FFmpeg's own command line (autorotate) agrees on what upright means for the rotated clip
    oracle = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            str(clips["rotated"]),
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    assert np.abs(np.frombuffer(oracle, np.uint8).reshape(up.shape).astype(np.int16) - up).mean() < 3


@pytest.mark.parametrize("name", ["rotated", "mirrored"])
def test_frames_come_out_upright_from_files_and_replayed_cameras(clips, name):
    up = first_frames(clips["upright"])
    got = first_frames(clips[name])
    for a, b in zip(up, got, strict=True):
        assert a.shape == b.shape and np.abs(a - b).mean() < 3  # re-encoding noise (uncorrected: ~19)
    # the live path (a node replaying a file as a camera) turns frames the same way
    src = live_source(parse_source(str(clips[name])), "cam-r", IngestConfig(), keep_trying=False)
    frame = next(src.frames())
    src.stop()
    assert frame.image.shape == up[0].shape and np.abs(frame.image.astype(np.int16) - up[0]).mean() < 3


@pytest.mark.slow
def test_same_faces_and_alerts_as_the_upright_clip(clips, tmp_path):
    ex = require_data("face_recognition_examples", "examples")
    home = tmp_path / "home"
    bootstrap(home)
    assert cli(home, "--as", "ada", "watchlist", "create", "wl", "--category", "wanted")[0] == 0
    assert enrol_active(home, "wl", "-s", "Lin-Manuel Miranda", ex / "lin-manuel-miranda.png")[0] == 0
    results = {}
    frames: set[int] = set()
    for name in ("upright", "rotated", "mirrored"):
        path = clips[name]
        code, out, err = cli(home, "run", "--source", path, "--camera", name, "--json")
        assert code == 0, err
        lines = json_lines(out)
        summary = next(x for x in lines if x["type"] == "summary")
        alerts = [x for x in lines if x["type"] == "alert"]
        results[name] = (summary["faces"], len(alerts), {a["subject"] for a in alerts})
        frames.add(summary["frames"])
    assert len(frames) == 1  # the same frames were read from each clip
    faces_up, alerts_up, who_up = results["upright"]
    assert alerts_up >= 1 and who_up == {"Lin-Manuel Miranda"}
    for name in ("rotated", "mirrored"):
        faces, n_alerts, who = results[name]
        assert who == who_up and n_alerts == alerts_up, results
        assert abs(faces - faces_up) <= max(5, faces_up // 20), results  # within 5 %: re-encoding noise only


def test_live_stream_orientation_message_is_applied(clips, tmp_path):
    """A live H.264 stream says its orientation in-band (a display-orientation SEI message, as some cameras mounted
    on their side send): served over RTSP, its frames come out upright."""
    from tests.integration.rtsp import RtspServer, rtsp_missing

    if why := rtsp_missing():
        pytest.skip(why)
    sei = tmp_path / "sei.mp4"
    ffmpeg(
        "-i",
        str(clips["turned"]),
        "-c",
        "copy",
        "-bsf:v",
        "h264_metadata=display_orientation=insert:rotate=90",
        str(sei),
    )
    up = [
        f.image.astype(np.int16)
        for f, _ in zip(VideoSource(parse_source(str(clips["upright"]))).frames(), range(60), strict=False)
    ]
    with RtspServer({"cam": sei}) as server:
        src = live_source(parse_source(server.url("cam")), "cam-sei", IngestConfig(open_timeout_seconds=5))
        got = []
        for frame in src.frames():
            got.append(frame.image.astype(np.int16))
            if len(got) == 3:
                break
        src.stop()
    for image in got:
        assert image.shape == up[0].shape  # turned back to landscape
        assert min(np.abs(image - u).mean() for u in up) < 4  # and upright: it matches a frame of the upright clip
