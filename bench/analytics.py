"""Behaviour analytics: agreement with ETH/UCY ground truth, person detectors compared, per-frame cost.

1. ETH/UCY: precision/recall of loitering and fast-movement events against ground truth computed from the
   trajectories, clean and with 0.1 m noise, 20% dropped observations, id switches (see metrosight.eval.behaviour
   for the definitions and tolerance bands; "exact" rows have no band). Settings were chosen on the "tuning" scenes
   (students003, crowds_zara01); the "held out" ones (students001, biwi_hotel, and any other *.txt given by name
   with --scenes) are reported apart.
2. ETH/UCY crowd-safety alarms: occupancy of each quadrant above its limit (the 75th percentile of its true
   counts) for 5 s, and wrong-way crossings of the two centre lines, against ground truth from the trajectories
   (metrosight.eval.crowd), same perturbations.
3. Person detectors on the intel one-by-one video, against the by-eye annotation in
   tests/data/intel_one_by_one_truth.json: share of frames with someone at the table in which a person is found,
   detections in frames with nobody, ms a frame. The default-HOG row is the baseline of the ratio.
4. Per-frame cost of the analytics worker (motion gate + person detection + tracking + rules) on
   people_counter_clips/example_01.mp4, mot20_clip and the intel video.

    python bench/analytics.py [--data DIR] [--out bench/results/analytics.json] [--skip-eth | --eth-only]
                              [--scenes NAME ...]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

REPO = Path(__file__).resolve().parents[1]


def eth(data: Path, names: list[str] | None = None) -> list[dict]:
    from metrosight.eval.behaviour import HELD_OUT_SCENES, PERTURBATIONS, TUNING_SCENES, evaluate, scene_set, scenes

    rows = []
    for scene, trajs in scenes(data / "eth_ucy_trajectories", names or TUNING_SCENES + HELD_OUT_SCENES):
        for p in PERTURBATIONS:
            for kind, s in evaluate(trajs, p).items():
                errs = s.start_errors
                rows.append(
                    {
                        "set": scene_set(scene),
                        "scene": scene,
                        "perturbation": p.name,
                        "kind": kind,
                        "events": s.events,
                        "truth": s.truth,
                        "precision": round(s.precision, 3),
                        "recall": round(s.recall, 3),
                        "mean_start_error_s": round(sum(errs) / len(errs), 2) if errs else None,
                    }
                )
    return rows


def crowd(data: Path, names: list[str] | None = None) -> list[dict]:
    from metrosight.eval.behaviour import HELD_OUT_SCENES, PERTURBATIONS, TUNING_SCENES, scene_set, scenes
    from metrosight.eval.crowd import evaluate_crowd

    rows = []
    for scene, trajs in scenes(data / "eth_ucy_trajectories", names or TUNING_SCENES + HELD_OUT_SCENES):
        for p in PERTURBATIONS:
            for kind, s in evaluate_crowd(trajs, p).items():
                errs = s.start_errors
                rows.append(
                    {
                        "set": scene_set(scene),
                        "scene": scene,
                        "perturbation": p.name,
                        "kind": kind,
                        "events": s.events,
                        "truth": s.truth,
                        "precision": round(s.precision, 3),
                        "recall": round(s.recall, 3),
                        "mean_time_error_s": round(sum(errs) / len(errs), 2) if errs else None,
                    }
                )
    return rows


def detectors(data: Path) -> list[dict]:
    import cv2

    from metrosight.detect.person import HogParams, HogPersonDetector
    from metrosight.ingest.source import SourceSpec, VideoSource

    truth = json.loads((REPO / "tests" / "data" / "intel_one_by_one_truth.json").read_text())
    video = data / truth["video"]
    people = truth["people"]

    def state(t: float) -> str:
        for p in people:
            if p["arrives"] <= t <= p["leaves"]:
                return "table"
            if p["appears"] <= t <= p["gone"]:
                return "walking"
        return "empty"

    cv2.setNumThreads(1)
    rows = []
    for label, params in (
        ("HOG default 64x128 @0.4 (baseline)", HogParams(model="default", scale=0.4)),
        ("HOG default 64x128 @0.33, threshold -0.5", HogParams(model="default", scale=0.33, hit_threshold=-0.5)),
        ("HOG Daimler 48x96 @0.25 (default)", HogParams(model="daimler", scale=0.25)),
        ("HOG Daimler 48x96 @0.3", HogParams(model="daimler", scale=0.3)),
    ):
        det = HogPersonDetector(params)
        counts = {"table": [0, 0], "walking": [0, 0], "empty": [0, 0]}
        spent = 0.0
        for frame in VideoSource(SourceSpec.parse(str(video)), "bench", None, 10).frames():
            t0 = time.perf_counter()
            found = det.detect(frame.image)
            spent += time.perf_counter() - t0
            c = counts[state(frame.ts)]
            c[0] += 1
            c[1] += len(found) if state(frame.ts) == "empty" else bool(found)
        n = sum(c[0] for c in counts.values())
        rows.append(
            {
                "detector": label,
                "frames": n,
                "table_recall": round(counts["table"][1] / max(1, counts["table"][0]), 3),
                "walking_recall": round(counts["walking"][1] / max(1, counts["walking"][0]), 3),
                "detections_in_empty_frames": counts["empty"][1],
                "empty_frames": counts["empty"][0],
                "ms_per_frame": round(1000 * spent / n, 1),
            }
        )
    return rows


def worker_cost(data: Path) -> list[dict]:
    from metrosight.config.model import AnalyticsConfig
    from metrosight.ingest.source import SourceSpec, VideoSource
    from metrosight.pipeline.analytics import AnalyticsPipeline, make_person_detector

    rows = []
    for parts in (
        ("people_counter_clips", "example_01.mp4"),
        ("mot20_clip", "MOT20-05-raw_even_shorter.mp4"),
        ("intel_sample_videos", "one-by-one-person-detection.mp4"),
    ):
        from metrosight.detect.motion import MotionDetector

        cfg = AnalyticsConfig()
        pipe = AnalyticsPipeline(
            cfg, "bench", make_person_detector(cfg), lambda e: None, lambda u: None, motion_gate=MotionDetector()
        )
        t0 = time.perf_counter()
        decode = 0.0
        frames = VideoSource(SourceSpec.parse(str(data.joinpath(*parts))), "bench", None, 10).frames()
        while True:
            d0 = time.perf_counter()
            frame = next(frames, None)
            decode += time.perf_counter() - d0
            if frame is None:
                break
            pipe.process(frame)
        pipe.finish()
        total = time.perf_counter() - t0
        s = pipe.stats
        n = max(1, s.frames)
        rows.append(
            {
                "video": parts[-1],
                "size": f"{frame_size(data.joinpath(*parts))}",
                "frames": s.frames,
                "detected_frames": s.detected_frames,
                "persons_per_frame": round(s.persons / max(1, s.detected_frames), 1),
                "tracks": s.tracks,
                "ms_per_frame": {k: round(1000 * v / n, 2) for k, v in s.stage_seconds.items()},
                "decode_ms_per_frame": round(1000 * decode / n, 2),
                "total_ms_per_frame": round(1000 * total / n, 2),
            }
        )
    return rows


def frame_size(path: Path) -> str:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return f"{s.width}x{s.height}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "analytics.json"))
    ap.add_argument("--skip-eth", action="store_true")
    ap.add_argument("--eth-only", action="store_true", help="only the ETH/UCY tables (behaviour tier, crowd alarms)")
    ap.add_argument("--scenes", nargs="*", default=None, help="ETH/UCY scene names (default: the four shared ones)")
    ap.add_argument("--core", type=int, default=None, help="pin to this core (default: the last one)")
    args = ap.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[-1] if args.core is None else args.core})
    data = Path(args.data or os.environ.get("METROSIGHT_DATA") or REPO.parent / "shared" / "data")
    if not (data / "DATA.md").exists():
        print(f"error: shared data missing: {data} (set METROSIGHT_DATA)", file=sys.stderr)
        return 2

    from rich.console import Console
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=160)  # a log file gets whole rows
    result: dict[str, object] = {}
    if not args.skip_eth:
        rows = eth(data, args.scenes)
        result["eth_ucy"] = rows
        t = Table(title="ETH/UCY: behaviour events vs ground truth from the trajectories")
        for col in ("set", "scene", "perturbation", "kind", "events", "truth", "precision", "recall", "start err s"):
            t.add_column(col)
        for r in sorted(rows, key=lambda r: r["set"] != "tuning"):
            t.add_row(
                r["set"],
                r["scene"],
                r["perturbation"],
                r["kind"],
                str(r["events"]),
                str(r["truth"]),
                f"{r['precision']:.3f}",
                f"{r['recall']:.3f}",
                str(r["mean_start_error_s"]),
            )
        console.print(t)
        rows = crowd(data, args.scenes)
        result["eth_ucy_crowd"] = rows
        t = Table(title="ETH/UCY: crowd-safety alarms (occupancy, wrong way) vs ground truth from the trajectories")
        for col in ("set", "scene", "perturbation", "kind", "events", "truth", "precision", "recall", "time err s"):
            t.add_column(col)
        for r in sorted(rows, key=lambda r: r["set"] != "tuning"):
            t.add_row(
                r["set"],
                r["scene"],
                r["perturbation"],
                r["kind"],
                str(r["events"]),
                str(r["truth"]),
                f"{r['precision']:.3f}",
                f"{r['recall']:.3f}",
                str(r["mean_time_error_s"]),
            )
        console.print(t)
    if args.eth_only:
        return write(result, args.out, console)
    rows = detectors(data)
    result["person_detectors"] = rows
    base = rows[0]["ms_per_frame"]
    t = Table(title="person detectors on the intel one-by-one video (768x432, 1 core)")
    for col in (
        "detector",
        "at-table recall",
        "walking recall",
        "detections in empty frames",
        "ms/frame",
        "× baseline time",
    ):
        t.add_column(col)
    for r in rows:
        t.add_row(
            r["detector"],
            f"{r['table_recall']:.3f}",
            f"{r['walking_recall']:.3f}",
            f"{r['detections_in_empty_frames']} / {r['empty_frames']}",
            f"{r['ms_per_frame']:.1f}",
            f"{r['ms_per_frame'] / base:.2f}",
        )
    console.print(t)
    rows = worker_cost(data)
    result["worker_cost"] = rows
    t = Table(title="analytics worker, ms per frame (1 core): motion gate, person detection, tracking, rules")
    for col in (
        "video",
        "size",
        "frames",
        "detected",
        "persons/frame",
        "tracks",
        "motion",
        "detect",
        "track",
        "rules",
        "decode",
        "total",
    ):
        t.add_column(col)
    for r in rows:
        m = r["ms_per_frame"]
        t.add_row(
            r["video"],
            r["size"],
            str(r["frames"]),
            str(r["detected_frames"]),
            str(r["persons_per_frame"]),
            str(r["tracks"]),
            f"{m.get('motion', 0):.2f}",
            f"{m.get('person_detect', 0):.2f}",
            f"{m.get('person_track', 0):.2f}",
            f"{m.get('rules', 0):.2f}",
            f"{r['decode_ms_per_frame']:.2f}",
            f"{r['total_ms_per_frame']:.2f}",
        )
    console.print(t)
    return write(result, args.out, console)


def write(result: dict[str, object], path: str, console: Console) -> int:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
