"""Milliseconds per stage and end-to-end faces per second of `metrosight run`, on one core.

For each video: a watchlist is enrolled (Hamilton clip: the four face_recognition example portraits; crowd video:
all of LFW fold 1), then the real pipeline runs over the whole video. Reported per video: frames, faces, tracks,
alerts, ms per frame for decode and each stage (detect, track, align+quality, embed, match), ms per embedded face,
frames/s and faces/s end to end. Also, for reference in the same run, the same videos with the dlib-bin runtime
(HOG detector + dlib's own ResNet), so speed-ups are ratios measured on the same machine at the same time.

    python bench/pipeline.py [--data DIR] [--out bench/results/pipeline.json] [--no-reference]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def data_root(arg: str | None) -> Path:
    return Path(arg or os.environ.get("METROSIGHT_DATA") or REPO.parent / "shared" / "data")


def run_one(label: str, video: Path, enrol: list[tuple[str, Path]], settings_over: dict) -> dict:
    from metrosight.config.home import Home
    from metrosight.config.model import Settings
    from metrosight.eval.speed import bench_watchlist
    from metrosight.pipeline.runtime import Runtime
    from metrosight.services.suite import Services

    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp))
        settings = Settings.model_validate(settings_over)
        svc = Services.open(home, settings)
        t0 = time.perf_counter()
        results = bench_watchlist(svc, "bench", enrol)  # recorded, then approved by a second user
        enrol_s = time.perf_counter() - t0
        report = Runtime(svc).run(str(video), "bench")
        s = report.stats
        stage = {k: 1000.0 * v / max(1, s.frames) for k, v in s.stage_seconds.items()}
        decode_s = report.seconds - sum(s.stage_seconds.values())
        stage["decode+other"] = 1000.0 * decode_s / max(1, s.frames)
        return {
            "config": label,
            "video": video.name,
            "enrolled": sum(r.status == "enrolled" for r in results),
            "enrol_seconds": round(enrol_s, 2),
            "frames": s.frames,
            "faces": s.faces,
            "tracks": s.tracks,
            "embedded": s.embedded,
            "alerts": s.alerts,
            "seconds": round(report.seconds, 3),
            "fps": round(report.fps, 2),
            "faces_per_s": round(s.faces / report.seconds, 1) if report.seconds else 0.0,
            "ms_per_frame": {k: round(v, 2) for k, v in stage.items()},
            "ms_per_embedded_face": round(1000.0 * s.stage_seconds.get("embed", 0.0) / max(1, s.embedded), 2),
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "pipeline.json"))
    ap.add_argument("--no-reference", action="store_true", help="skip the dlib-bin reference runs")
    ap.add_argument("--core", type=int, default=None, help="pin to this core (default: the last one)")
    args = ap.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    core = cores[-1] if args.core is None else args.core
    os.sched_setaffinity(0, {core})

    from rich.console import Console
    from rich.table import Table

    data = data_root(args.data)
    ex = data / "face_recognition_examples" / "examples"
    lfw = data / "lfw" / "lfw-deepfunneled"
    crowd = data / "facenet_pytorch_samples" / "examples" / "video.mp4"
    for p in (ex, lfw, crowd):
        if not p.exists():
            print(f"error: shared data missing: {p} (set METROSIGHT_DATA)", file=sys.stderr)
            return 2
    hamilton_gallery = [
        ("Lin-Manuel Miranda", ex / "lin-manuel-miranda.png"),
        ("Alex Lacamoire", ex / "alex-lacamoire.png"),
        ("Barack Obama", ex / "obama.jpg"),
        ("Joe Biden", ex / "biden.jpg"),
    ]
    lfw_gallery = [(p.parent.name, p) for p in sorted(lfw.glob("*/*.jpg")) if p.name.endswith("_0001.jpg")]
    configs = [("metrosight (CenterFace + ONNX ResNet)", {})]
    if not args.no_reference:
        configs.append(
            (
                "dlib-bin reference (HOG + dlib ResNet)",
                {"detection": {"detector": {"kind": "hog"}}, "recognition": {"embedder": "dlib"}},
            )
        )
    rows = []
    console = Console(width=200)
    for label, over in configs:
        for video, gallery in ((ex / "short_hamilton_clip.mp4", hamilton_gallery), (crowd, lfw_gallery)):
            console.print(f"[dim]{label}: {video.name} …[/]")
            rows.append(run_one(label, video, gallery, over))

    table = Table(title=f"metrosight pipeline, 1 core ({platform.processor() or platform.machine()})")
    for col in (
        "config",
        "video",
        "gallery",
        "frames",
        "faces",
        "tracks",
        "embedded",
        "alerts",
        "detect ms/f",
        "align ms/f",
        "embed ms/face",
        "decode+other ms/f",
        "frames/s",
        "faces/s",
    ):
        table.add_column(col, justify="right" if col not in ("config", "video") else "left")
    for r in rows:
        m = r["ms_per_frame"]
        table.add_row(
            r["config"],
            r["video"],
            str(r["enrolled"]),
            str(r["frames"]),
            str(r["faces"]),
            str(r["tracks"]),
            str(r["embedded"]),
            str(r["alerts"]),
            f"{m.get('detect', 0):.1f}",
            f"{m.get('align', 0):.1f}",
            f"{r['ms_per_embedded_face']:.1f}",
            f"{m['decode+other']:.1f}",
            f"{r['fps']:.1f}",
            f"{r['faces_per_s']:.1f}",
        )
    console.print(table)
    ratios = {}
    if not args.no_reference:
        for video in {r["video"] for r in rows}:
            a = next(r for r in rows if r["video"] == video and r["config"].startswith("metrosight"))
            b = next(r for r in rows if r["video"] == video and r["config"].startswith("dlib"))
            ratios[video] = round(a["fps"] / b["fps"], 2) if b["fps"] else None
            console.print(f"{video}: metrosight is {ratios[video]}× the dlib-bin reference in frames/s (same run)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"core": core, "rows": rows, "fps_ratio_vs_dlib_bin": ratios}, indent=2))
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
