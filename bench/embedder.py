"""Face-descriptor speed and parity: dlib-bin vs dlib's ResNet in ONNX Runtime, on one core.

Measures ms per face at batch 1 and batch 32 for both backends, the speed ratio, and parity on LFW fold 1 (807
faces, 600 pairs): the lowest cosine between the two backends' descriptors and each backend's verification accuracy
at dlib's 0.6 Euclidean threshold. Prints a table and writes bench/results/embedder.json.

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
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
THRESHOLD = 0.6


def pin(core: int | None) -> int:
    """Pin this process to one core (the last available one by default); returns the core."""
    cores = sorted(os.sched_getaffinity(0))
    chosen = cores[-1] if core is None else core
    os.sched_setaffinity(0, {chosen})
    return chosen


def read_pairs(pairs_txt: Path) -> list[tuple[str, str, bool]]:
    lines = pairs_txt.read_text().split("\n")
    n = int(lines[0].split()[-1])

    def img(name: str, idx: str) -> str:
        return f"{name}/{name}_{int(idx):04d}.jpg"

    pairs = [(img(a, b), img(a, c), True) for a, b, c in (ln.split() for ln in lines[1 : 1 + n])]
    pairs += [(img(a, b), img(c, d), False) for a, b, c, d in (ln.split() for ln in lines[1 + n : 1 + 2 * n])]
    return pairs


def lfw_chips(lfw: Path, names: list[str]):  # type: ignore[no-untyped-def]
    import cv2
    import dlib
    import face_recognition_models
    import numpy as np

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
    chips = []
    for name in names:
        rgb = np.ascontiguousarray(cv2.cvtColor(cv2.imread(str(lfw / "lfw-deepfunneled" / name)), cv2.COLOR_BGR2RGB))
        h, w = rgb.shape[:2]
        dets = list(detector(rgb, 1))
        if dets:
            rect = min(dets, key=lambda r: (r.center().x - w / 2) ** 2 + (r.center().y - h / 2) ** 2)
        else:
            rect = dlib.rectangle(w // 4, h // 4, 3 * w // 4, 3 * h // 4)
        chips.append(np.asarray(dlib.get_face_chip(rgb, predictor(rgb, rect), size=150, padding=0.25)))
    return np.stack(chips).astype(np.uint8)


def ms_per_face(embed, chips, batch: int, repeats: int) -> float:  # type: ignore[no-untyped-def]
    """Median over ``repeats`` runs of one batch (after one warm-up), in ms per face."""
    x = chips[:batch]
    embed(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        embed(x)
        times.append(time.perf_counter() - t)
    return 1000.0 * statistics.median(times) / batch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--core", type=int, default=None, help="core to pin to (default: the last one)")
    ap.add_argument("--data", type=Path, default=None, help="shared data folder (default $METROSIGHT_DATA or ../shared/data)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "embedder.json")
    ap.add_argument("--cache-dir", type=Path, default=None, help="ONNX model cache (default: a temporary folder)")
    args = ap.parse_args()

    core = pin(args.core)
    import dlib
    import numpy as np
    import onnxruntime
    from rich.console import Console
    from rich.table import Table

    from metrosight.recognize.embedder_onnx import DlibResNetEmbedder, OnnxResNetEmbedder

    console = Console()
    data = args.data or Path(os.environ.get("METROSIGHT_DATA") or REPO.parent / "shared" / "data")
    lfw = data / "lfw"
    if not (lfw / "pairs.txt").exists():
        console.print(f"[red]LFW fold 1 not found under {lfw}[/red]")
        return 2

    pairs = read_pairs(lfw / "pairs.txt")
    names = sorted({p for a, b, _ in pairs for p in (a, b)})
    t0 = time.perf_counter()
    chips = lfw_chips(lfw, names)
    console.print(f"{len(chips)} chips from {len(names)} images in {time.perf_counter() - t0:.1f} s (core {core})")

    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="metrosight-onnx-"))
    onnx_emb = OnnxResNetEmbedder(cache_dir=cache, threads=1, max_batch=32)
    dlib_emb = DlibResNetEmbedder()

    t0 = time.perf_counter()
    d_onnx = onnx_emb.embed(chips)
    t_onnx_all = time.perf_counter() - t0
    t0 = time.perf_counter()
    d_dlib = dlib_emb.embed(chips)
    t_dlib_all = time.perf_counter() - t0

    speed = {
        "dlib": {"1": ms_per_face(dlib_emb.embed, chips, 1, 10), "32": ms_per_face(dlib_emb.embed, chips, 32, 1)},
        "onnx": {"1": ms_per_face(onnx_emb.embed, chips, 1, 100), "32": ms_per_face(onnx_emb.embed, chips, 32, 10)},
    }
    ratio = {b: speed["dlib"][b] / speed["onnx"][b] for b in ("1", "32")}

    cos = (d_onnx * d_dlib).sum(1) / (np.linalg.norm(d_onnx, axis=1) * np.linalg.norm(d_dlib, axis=1))
    index = {n: i for i, n in enumerate(names)}
    ia = np.array([index[a] for a, _, _ in pairs])
    ib = np.array([index[b] for _, b, _ in pairs])
    same = np.array([s for _, _, s in pairs])
    dist = {k: np.linalg.norm(d[ia] - d[ib], axis=1) for k, d in (("onnx", d_onnx), ("dlib", d_dlib))}
    acc = {k: float(((v < THRESHOLD) == same).mean()) for k, v in dist.items()}
    differ = int(((dist["onnx"] < THRESHOLD) != (dist["dlib"] < THRESHOLD)).sum())

    table = Table(title=f"Face descriptors, one core (core {core}), LFW fold 1")
    table.add_column("backend")
    table.add_column("ms/face batch 1", justify="right")
    table.add_column("ms/face batch 32", justify="right")
    table.add_column("807 faces, s", justify="right")
    table.add_column(f"accuracy @ {THRESHOLD}", justify="right")
    table.add_row("dlib-bin", f"{speed['dlib']['1']:.1f}", f"{speed['dlib']['32']:.1f}", f"{t_dlib_all:.1f}",
                  f"{acc['dlib']:.4f}")
    table.add_row("ONNX Runtime", f"{speed['onnx']['1']:.2f}", f"{speed['onnx']['32']:.2f}", f"{t_onnx_all:.1f}",
                  f"{acc['onnx']:.4f}")
    table.add_row("ratio dlib/ONNX", f"{ratio['1']:.1f}×", f"{ratio['32']:.1f}×", "", "")
    console.print(table)
    console.print(f"parity: min cosine {cos.min():.7f} over {len(cos)} faces; max |Δ| "
                  f"{np.abs(d_onnx - d_dlib).max():.2e}; pairs decided differently: {differ} of {len(pairs)}")

    result = {
        "benchmark": "embedder",
        "command": "python bench/embedder.py",
        "machine": {"cpu": platform.processor() or platform.machine(), "core": core, "python": sys.version.split()[0],
                    "onnxruntime": onnxruntime.__version__, "dlib": dlib.__version__},
        "ms_per_face": speed,
        "ratio_dlib_over_onnx": ratio,
        "whole_fold_seconds": {"dlib": t_dlib_all, "onnx": t_onnx_all},
        "parity": {"faces": len(cos), "min_cosine": float(cos.min()),
                   "max_abs_diff": float(np.abs(d_onnx - d_dlib).max()), "pairs": len(pairs),
                   "accuracy_at_0.6": acc, "pairs_decided_differently": differ},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
