"""The analytics worker's motion gate (detect/motion.py) against no gate, on the analytics clips.

Each clip is decoded once: the gate's moving fraction of every frame (its CPU time, ``time.process_time``, one
core) and the person detector's result on every frame (its CPU time). The analytics worker is then replayed with
those fractions scaled by each factor given (``--scales``; 1 is what the worker uses) and with no gate, the cached
detections standing in for the detector: the gate's decision depends only on the fraction, the live tracks and the
media time, and HOG is deterministic, so this is the worker's result. Per row: frames searched for people, person
detections, tracks, events (the intel clip has the table zone, loitering after 5 s and an occupancy alarm, as in
tests/integration/test_analytics_video.py), frames skipped in which the detector would have found someone, and
CPU (gate + the detection actually run). The intel clip is where the mapping was chosen; the others check it.

    python bench/analytics_gate.py [--data DIR] [--scales 0.5 1 2] [--out bench/results/analytics_gate.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy loads its BLAS

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TRUTH = json.loads((REPO / "tests" / "data" / "intel_one_by_one_truth.json").read_text())
CLIPS = {
    "intel one-by-one (choose)": ("intel_sample_videos", "one-by-one-person-detection.mp4"),
    "people_counter example_01 (check)": ("people_counter_clips", "example_01.mp4"),
    "MOT20 clip (check)": ("mot20_clip", "MOT20-05-raw_even_shorter.mp4"),
}


def config(clip: str) -> Any:
    from metrosight.config.model import AnalyticsConfig

    if not clip.startswith("intel"):
        return AnalyticsConfig()
    zone = {"name": "table", "polygon": TRUTH["table_zone"]}
    alarm = {"zone": "table", "max_people": 0, "seconds": 3, "clear_seconds": 5}
    cams = {"c": {"zones": [zone], "occupancy_alarms": [alarm]}}
    return AnalyticsConfig.model_validate({"loitering_seconds": 5.0, "cameras": cams})


def decode(clip: str, path: Path) -> tuple[list[dict[str, Any]], float]:
    """Per frame: ts, index, shape, moving fraction, detections, detection CPU; and the gate's CPU in all."""
    import cv2

    from metrosight.detect.motion import MotionDetector
    from metrosight.ingest.source import SourceSpec, VideoSource
    from metrosight.pipeline.analytics import make_person_detector

    cv2.setNumThreads(1)
    det, gate = make_person_detector(config(clip)), MotionDetector()
    rows, gate_cpu = [], 0.0
    for f in VideoSource(SourceSpec.parse(str(path)), "c", None).frames():
        t0 = time.process_time()
        moving = gate.moving_fraction(f.image, f.ts)
        t1 = time.process_time()
        found = det.detect(f.image)
        rows.append(
            {"ts": f.ts, "index": f.index, "shape": f.image.shape, "moving": moving, "dets": found}
            | {"det_cpu": time.process_time() - t1}
        )
        gate_cpu += t1 - t0
    return rows, gate_cpu


class Replay:
    """The cached detections of frame ``i`` (the person detector), and the scaled fraction (the gate)."""

    def __init__(self, rows: list[dict[str, Any]], scale: float) -> None:
        self.rows, self.scale, self.i, self.cpu = rows, scale, 0, 0.0

    def detect(self, image: np.ndarray) -> list[Any]:
        self.cpu += self.rows[self.i]["det_cpu"]
        return list(self.rows[self.i]["dets"])

    def moving_fraction(self, image: np.ndarray, ts: float) -> float:
        m = float(self.rows[self.i]["moving"])
        return 1.0 if m >= 1.0 else m * self.scale


def replay(clip: str, rows: list[dict[str, Any]], scale: float | None) -> dict[str, Any]:
    from metrosight.core.types import Frame
    from metrosight.pipeline.analytics import AnalyticsPipeline

    rep = Replay(rows, scale or 1.0)
    events: list[Any] = []
    pipe = AnalyticsPipeline(config(clip), "c", rep, events.append, lambda u: None, motion_gate=rep if scale else None)
    img = np.zeros(rows[0]["shape"], np.uint8)
    missed = 0
    for i, r in enumerate(rows):
        rep.i = i
        before = pipe.stats.detected_frames
        pipe.process(Frame(image=img, ts=r["ts"], index=r["index"], camera_id="c"))
        missed += pipe.stats.detected_frames == before and bool(r["dets"])
    pipe.finish()
    s = pipe.stats
    return {
        "gate": "none" if scale is None else f"motion x{scale:g}",
        "frames": s.frames,
        "searched": s.detected_frames,
        "persons": s.persons,
        "tracks": s.tracks,
        "events": sorted(f"{e.kind}@{e.start_ts:.1f}" for e in events),
        "skipped_with_people": missed,
        "detect_cpu_s": round(rep.cpu, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None)
    ap.add_argument("--scales", nargs="*", type=float, default=[0.5, 1.0, 2.0])
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "analytics_gate.json"))
    args = ap.parse_args()
    data = Path(args.data or os.environ.get("METROSIGHT_DATA") or REPO.parent / "shared" / "data")
    if not (data / "DATA.md").exists():
        print(f"error: shared data missing: {data} (set METROSIGHT_DATA)", file=sys.stderr)
        return 2
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    t = Table(title="analytics motion gate vs none (CPU: time.process_time, 1 thread)")
    for col in ("clip", "gate", "frames", "searched", "persons", "tracks", "events", "= none", "missed", "CPU s"):
        t.add_column(col)
    result = []
    for clip, parts in CLIPS.items():
        rows, gate_cpu = decode(clip, data.joinpath(*parts))
        base = replay(clip, rows, None)
        for r in [base] + [replay(clip, rows, s) for s in args.scales]:
            cpu = r["detect_cpu_s"] + (0.0 if r["gate"] == "none" else gate_cpu)
            r |= {"clip": clip, "cpu_s": round(cpu, 2), "gate_ms_per_frame": round(1000 * gate_cpu / len(rows), 3)}
            result.append(r)
            same = "yes" if r["events"] == base["events"] and r["tracks"] == base["tracks"] else "NO"
            t.add_row(
                clip,
                r["gate"],
                *(str(r[k]) for k in ("frames", "searched", "persons", "tracks")),
                str(len(r["events"])),
                same,
                str(r["skipped_with_people"]),
                f"{cpu:.2f}",
            )
    console.print(t)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
