"""Face-descriptor speed and parity: dlib-bin vs dlib's ResNet in ONNX Runtime, on one core.

Measures ms per face (process CPU time) at batch 1 and batch 32 for both backends, the speed ratio, and parity on
LFW fold 1 (807 faces, 600 pairs): the lowest cosine between the two backends' descriptors and each backend's
verification accuracy at dlib's 0.6 Euclidean threshold. Prints a table and writes bench/results/embedder.json.
The measuring functions are metrosight.eval.speed's (shared with `metrosight bench models`).

    python bench/embedder.py [--core N] [--data DIR] [--out FILE]

Chips are made as dlib users make them: HOG detector (upsample 1; the central box when nothing is found),
5-point landmarks, get_face_chip(size=150, padding=0.25).
"""

from __future__ import annotations

import os

# One core, one thread: set before numpy/onnxruntime/dlib are imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--core", type=int, default=None, help="core to pin to (default: the last one)")
    ap.add_argument(
        "--data", type=Path, default=None, help="shared data folder (default $METROSIGHT_DATA or ../shared/data)"
    )
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "embedder.json")
    ap.add_argument("--cache-dir", type=Path, default=None, help="ONNX model cache (default: a temporary folder)")
    args = ap.parse_args()

    from metrosight.eval.speed import (
        DLIB_THRESHOLD,
        BenchDataError,
        data_dir,
        dlib_chips,
        embedder_report,
        lfw_fold1,
        machine_state,
        pin_one_core,
    )

    core = pin_one_core(args.core)
    import dlib
    import onnxruntime
    from rich.console import Console
    from rich.table import Table

    from metrosight.recognize.embedder_onnx import DlibResNetEmbedder, OnnxResNetEmbedder

    console = Console()
    try:
        pairs = lfw_fold1(data_dir(args.data))
    except BenchDataError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    t0 = time.perf_counter()
    chips = dlib_chips(pairs.paths)
    console.print(
        f"{len(chips)} chips from {len(pairs.paths)} images in {time.perf_counter() - t0:.1f} s (core {core})"
    )

    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="metrosight-onnx-"))
    embedders = {"onnx": OnnxResNetEmbedder(cache_dir=cache, threads=1, max_batch=32), "dlib": DlibResNetEmbedder()}
    rep = embedder_report(embedders, chips, pairs, reference="dlib", repeats=(30, 3))
    speed, acc = rep["ms_per_face"], rep[f"accuracy_at_{DLIB_THRESHOLD}"]
    ratio = {b: speed["dlib"][b] / speed["onnx"][b] for b in ("1", "32")}
    parity = rep["parity"]["onnx"]

    table = Table(title=f"Face descriptors, one core (core {core}), LFW fold 1")
    table.add_column("backend")
    table.add_column("ms/face batch 1", justify="right")
    table.add_column("ms/face batch 32", justify="right")
    table.add_column(f"{len(chips)} faces, CPU s", justify="right")
    table.add_column(f"accuracy @ {DLIB_THRESHOLD}", justify="right")
    for name, label in (("dlib", "dlib-bin"), ("onnx", "ONNX Runtime")):
        table.add_row(
            label,
            f"{speed[name]['1']:.2f}",
            f"{speed[name]['32']:.2f}",
            f"{rep['whole_set_seconds'][name]:.1f}",
            f"{acc[name]:.4f}",
        )
    table.add_row("ratio dlib/ONNX", f"{ratio['1']:.1f}×", f"{ratio['32']:.1f}×", "", "")
    console.print(table)
    console.print(
        f"parity: min cosine {parity['min_cosine']:.7f} over {parity['faces']} faces; max |Δ| "
        f"{parity['max_abs_diff']:.2e}; pairs decided differently: {parity['pairs_decided_differently']} "
        f"of {parity['pairs']}"
    )

    result = {
        "benchmark": "embedder",
        "command": "python bench/embedder.py",
        "machine": {
            **machine_state(),
            "core": core,
            "python": sys.version.split()[0],
            "onnxruntime": onnxruntime.__version__,
            "dlib": dlib.__version__,
        },
        "ms_per_face": speed,
        "ratio_dlib_over_onnx": ratio,
        "whole_fold_seconds": rep["whole_set_seconds"],
        "parity": {
            "faces": parity["faces"],
            "min_cosine": parity["min_cosine"],
            "max_abs_diff": parity["max_abs_diff"],
            "pairs": parity["pairs"],
            "accuracy_at_0.6": acc,
            "pairs_decided_differently": parity["pairs_decided_differently"],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
