"""Decoding only what the analysis needs: decode CPU seconds per second of video, skipping off (today) vs auto.

Each clip is decoded with :class:`metrosight.ingest.source.VideoSource` at analysis rates 25, 12 and 6 frames a
second, in the same run, with ``ingest.decode.skip`` ``off`` (every frame decoded: today's pipeline, the baseline)
and ``auto`` (non-reference frames the rate does not need are left undecoded). CPU time is the process's
(``time.process_time``, one decoder thread: ``ingest.decode.threads`` 1 for both) over reading, decoding and
converting the frames handed to the analysis to RGB; the best of ``--repeat`` runs. Also reported: frames decoded,
frames the decoder skipped, frames handed to the analysis (the same for both modes, or the skip rule failed).

Clips: the crowd clip (1080p H.264 High with B-frames, x264's B-pyramid), the Hamilton clip (640×360, no
non-reference frames), the crowd clip re-encoded without B-frames (``-bf 0``, as IP cameras send) and, where
ffmpeg has libx265, re-encoded as H.265 (x265's defaults: B-frames). The skip rule has no tuned setting: it was
written from the codecs' definitions and checked on every clip here; nothing was chosen on one part of the data.

    python bench/decode.py [--data DIR] [--out bench/results/decode.json] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RATES = (25.0, 12.0, 6.0)


def make_clips(data: Path, work: Path) -> dict[str, Path]:
    """The clips, building the re-encoded ones under ``work`` (kept between runs)."""
    crowd = data / "facenet_pytorch_samples" / "examples" / "video.mp4"
    clips = {
        "crowd 1080p H.264 (B-frames)": crowd,
        "Hamilton 640x360 H.264": data / "face_recognition_examples" / "examples" / "short_hamilton_clip.mp4",
    }
    work.mkdir(parents=True, exist_ok=True)
    encoders = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    builds = {"crowd 1080p H.264 no B-frames": ("nob.mp4", ["-c:v", "libx264", "-bf", "0", "-preset", "veryfast"])}
    if "libx265" in encoders:
        builds["crowd 1080p H.265"] = ("hevc.mp4", ["-c:v", "libx265", "-preset", "ultrafast"])
    for name, (file, args) in builds.items():
        out = work / file
        if not out.exists():
            cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(crowd), *args, "-an", str(out)]
            subprocess.run(cmd, check=True)
        clips[name] = out
    return clips


def measure(path: Path, fps: float, skip: str, repeat: int) -> dict[str, Any]:
    """Decode ``path`` at ``fps`` with ``skip``: CPU seconds (best of ``repeat``) and the frame counts."""
    from metrosight.core.source import SourceSpec
    from metrosight.ingest.decode import DecodeOptions
    from metrosight.ingest.source import VideoSource

    best: dict[str, Any] = {}
    for _ in range(repeat):
        src = VideoSource(SourceSpec.parse(str(path)), "bench", fps, decode=DecodeOptions(skip=skip))  # type: ignore[arg-type]
        t0 = time.process_time()
        frames = [f.ts for f in src.frames()]
        cpu = time.process_time() - t0
        if not best or cpu < best["cpu_s"]:
            best = {
                "cpu_s": cpu,
                "decode_thread_s": src.stats.decode_seconds,
                "decoded": src.frames_decoded,
                "codec_skipped": src.stats.codec_skipped,
                "analysed": len(frames),
                "video_s": (frames[-1] if frames else 0.0) + 1.0 / (src.fps or 25.0),
            }
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "decode.json")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    if shutil.which("ffmpeg") is None:
        print("ffmpeg is needed to build the clips", file=sys.stderr)  # noqa: T201
        return 2
    from rich.console import Console
    from rich.table import Table

    rows = []
    for name, path in make_clips(args.data, args.out.parent / "decode_clips").items():
        for fps in RATES:
            off, auto = (measure(path, fps, skip, args.repeat) for skip in ("off", "auto"))
            secs = off["video_s"]
            rows.append(
                {
                    "clip": name,
                    "analysis_fps": fps,
                    "video_s": round(secs, 3),
                    "off": off,
                    "auto": auto,
                    "off_cpu_per_video_s": off["cpu_s"] / secs,
                    "auto_cpu_per_video_s": auto["cpu_s"] / secs,
                    "ratio": auto["cpu_s"] / off["cpu_s"] if off["cpu_s"] else None,
                    "same_analysed": off["analysed"] == auto["analysed"],
                }
            )
    table = Table(title="decode CPU seconds per second of video (process CPU, 1 decoder thread; best of runs)")
    for col in ("clip", "fps", "off s/s", "auto s/s", "auto/off", "decoded off→auto", "skipped", "analysed"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["clip"],
            f"{r['analysis_fps']:g}",
            f"{r['off_cpu_per_video_s']:.3f}",
            f"{r['auto_cpu_per_video_s']:.3f}",
            f"{r['ratio']:.2f}" if r["ratio"] else "-",
            f"{r['off']['decoded']}→{r['auto']['decoded']}",
            str(r["auto"]["codec_skipped"]),
            f"{r['auto']['analysed']}" + ("" if r["same_analysed"] else f" (off: {r['off']['analysed']})"),
        )
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpu_clock": "time.process_time"}
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {args.out}")  # noqa: T201
    return 0 if all(r["same_analysed"] for r in rows) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    raise SystemExit(main())
