"""Red team: decode skipping on streams built to be awkward — B-frames at odd rates (29.97, 13, 7 fps), H.265 with a
B-pyramid in Matroska, variable frame rate, MPEG-TS, MJPEG, a raw Annex B stream without timestamps — gives the
analysis as many frames as decoding every frame, each within one source frame or so of the one it replaces; and a
file cut short is reported with the same frame count whichever decoding is used."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from metrosight.core.source import SourceSpec
from metrosight.ingest.decode import DecodeOptions
from metrosight.ingest.source import SourceBroken, VideoSource
from tests.conftest import missing_system

pytestmark = pytest.mark.integration

X264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]
X265 = ["-c:v", "libx265", "-x265-params", "log-level=error:bframes=4:b-pyramid=1", "-pix_fmt", "yuv420p"]
VFR = "setpts='N/25/TB+if(eq(mod(N,5),0),0.02/TB,0)+if(gt(N,75),0.3/TB,0)'"
CLIPS = {
    "b-2997.mp4": ("30000/1001", [*X264, "-bf", "3"]),
    "b-13.mp4": ("13", [*X264, "-bf", "2"]),
    "b-7.mp4": ("7", [*X264, "-bf", "3"]),
    "hevc-2997.mkv": ("30000/1001", X265),
    "vfr.mp4": ("25", ["-vf", VFR, "-fps_mode", "vfr", *X264, "-bf", "3"]),
    "b-25.ts": ("25", [*X264, "-bf", "3"]),
    "mjpeg.avi": ("25", ["-c:v", "mjpeg"]),
    "annexb.h264": ("25", [*X264, "-bf", "3"]),
}


def _make(folder: Path, name: str, rate: str, args: list[str], seconds: int = 6) -> Path:
    if shutil.which("ffmpeg") is None:
        missing_system("ffmpeg is needed to build the test clips")
    out = folder / name
    src = ["-f", "lavfi", "-i", f"testsrc2=size=320x240:rate={rate}", "-t", str(seconds)]
    subprocess.run(["ffmpeg", "-v", "error", "-y", *src, *args, str(out)], check=True, timeout=120)
    return out


def _analysed(path: Path, fps: float, skip: str) -> tuple[VideoSource, list[tuple[int, float]], str | None]:
    src = VideoSource(SourceSpec.parse(str(path)), "cam", fps, decode=DecodeOptions(skip=skip))  # type: ignore[arg-type]
    out: list[tuple[int, float]] = []
    try:
        for f in src.frames():
            out.append((f.index, f.ts))
    except SourceBroken as exc:
        return src, out, str(exc)
    return src, out, None


@pytest.mark.parametrize("name", sorted(CLIPS))
@pytest.mark.parametrize("fps", [6.0, 2.5])
def test_awkward_streams_give_as_many_frames_with_skipping(tmp_path: Path, name: str, fps: float) -> None:
    clip = _make(tmp_path, name, *CLIPS[name])
    _, full, _ = _analysed(clip, fps, "off")
    _, auto, _ = _analysed(clip, fps, "auto")
    assert len(auto) == len(full) > 0
    for (i_full, ts_full), (i_auto, ts_auto) in zip(full, auto, strict=True):
        assert abs(i_full - i_auto) <= 2 and abs(ts_full - ts_auto) < 1.0 / fps


def test_a_file_cut_short_is_reported_with_the_same_count_with_skipping(tmp_path: Path) -> None:
    whole = _make(tmp_path, "whole.mp4", "30000/1001", [*X264, "-bf", "3", "-movflags", "+faststart"])
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:120_000])
    _, _, off = _analysed(cut, 6.0, "off")
    auto_src, _, auto = _analysed(cut, 6.0, "auto")
    assert off is not None and auto is not None and auto_src.stats.codec_skipped > 0
    assert off.split(":")[1] == auto.split(":")[1]  # "video broke off after N frames"
