"""Face-detector benchmark: speed on one core and accuracy on dlib's photos and FDDB fold 1.

For each detector: median ms a frame at 480p and 720p (frames of the facenet-pytorch sample video, resized; boxes
and landmarks included), recall and false positives on dlib_faces (training.xml + testing.xml) and on FDDB fold 1
(ellipses as boxes), IoU >= 0.4. Prints a table and writes bench/results/detectors.json. The measuring functions
are metrosight.eval.speed's (shared with `metrosight bench models`).

    python bench/detectors.py                      # all detectors
    python bench/detectors.py --only fast upsample=0   # some of them (substrings of the labels)
    python bench/detectors.py --no-fddb            # skip FDDB (quick)

Data: $METROSIGHT_DATA, else ../shared/data relative to the repo root. The YuNet entry runs the ONNX in
../shared/models (a user-supplied model, not part of the product) and is skipped when that file is absent.
"""

from __future__ import annotations

import os

# one core, one thread: set before numpy/cv2/onnxruntime are imported (pin_one_core below pins the core)
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import json
from pathlib import Path
from typing import Any

from metrosight.detect.factory import make_detector
from metrosight.eval.speed import (
    BenchDataError,
    LabelledSet,
    data_dir,
    detector_candidates,
    detector_report,
    dlib_faces_set,
    fddb_fold1_set,
    machine_state,
    pin_one_core,
    timing_frames,
)

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="substrings of detector labels to run")
    ap.add_argument("--no-fddb", action="store_true", help="skip FDDB fold 1")
    ap.add_argument("--frames", type=int, default=12, help="video frames timed at each size (>= 10)")
    ap.add_argument("--repeats", type=int, default=3, help="runs a frame; the fastest counts")
    ap.add_argument("--core", type=int, default=None, help="core to pin to (default: the last one)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "detectors.json")
    args = ap.parse_args()

    core = pin_one_core(args.core)
    try:
        d = data_dir()
        sets: list[LabelledSet] = [dlib_faces_set(d)]
        if not args.no_fddb:
            sets.append(fddb_fold1_set(d))
        frames = timing_frames(d, max(10, args.frames))
    except BenchDataError as exc:
        raise SystemExit(f"error: {exc}") from None

    rows: list[dict[str, Any]] = []
    for label, (name, kw) in detector_candidates(ROOT.parent / "shared" / "models").items():
        if args.only and not any(o in label for o in args.only):
            continue
        det = make_detector(name, **kw)
        row: dict[str, Any] = {
            "detector": label,
            "backend": name,
            "kwargs": {k: str(v) for k, v in kw.items()},
            **detector_report(det, frames, sets, max(1, args.repeats)),
        }
        rows.append(row)
        print(f"done {label}", flush=True)

    from rich.console import Console
    from rich.table import Table

    t = Table(title="Face detectors, 1 core (IoU >= 0.4)")
    cols = ("detector", "CPU ms 480p", "CPU ms 720p", "(wall 480p/720p)", "dlib recall", "dlib FP")
    for col in (*cols, "FDDB-1 recall", "FDDB-1 FP"):
        t.add_column(col, justify="left" if col == "detector" else "right")
    for r in rows:
        a = r["dlib_faces"]
        f = r.get("fddb_fold1")
        t.add_row(
            r["detector"],
            f"{r['ms_480p']:.1f}",
            f"{r['ms_720p']:.1f}",
            f"({r['wall_ms_480p']:.0f}/{r['wall_ms_720p']:.0f})",
            f"{a['tp']}/{a['n_gt']} ({a['recall']:.3f})",
            str(a["fp"]),
            f"{f['tp']}/{f['n_gt']} ({f['recall']:.3f})" if f else "-",
            str(f["fp"]) if f else "-",
        )
    Console(width=160).print(t)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        **machine_state(),
        "cores_used": 1,
        "core": core,
        "frames_timed": len(frames["720p"]),
        "timing": "ms_*: process CPU time, wall_ms_*: wall clock; median over frames of the fastest of --repeats",
        "repeats": args.repeats,
        "video": "facenet_pytorch_samples/examples/video.mp4",
        "iou_threshold": 0.4,
    }
    args.out.write_text(json.dumps({"meta": meta, "detectors": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
