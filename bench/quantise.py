"""Faster model variants against the float models, through the parity gate, on one core.

For each variant of ``metrosight models optimise`` (int8 static QDQ, int8 dynamic, ORT-optimised graph, fp16):

- embedder (dlib's ResNet): ms per face pass, process CPU time, one thread, at batch 1 and batch 16, against the
  float model timed in the same run; the lowest and mean cosine to the float descriptors over every LFW fold-1 face
  (chip and mirror image), the decisions changed on the 600 fold-1 pairs at the shipped threshold, PASS/FAIL;
- detector (CenterFace): ms per network pass on a 720p frame's input (512×288), batch 1 and 16, against float;
  FDDB fold-1 recall at IoU 0.4 against the float model's, PASS/FAIL (within 0.5 points).

Calibration (int8) never uses the measuring data: the embedder's on dlib_johns + AT&T faces, the detector's on
dlib_faces + 64 LFW photos (see metrosight.eval.parity). The variants are built into --cache-dir (default
bench/results/quantise-models, git-ignored) exactly as `metrosight models optimise` builds them.

    python bench/quantise.py [--data DIR] [--out FILE] [--cache-dir DIR] [--core N] [--no-detector]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy and onnxruntime are imported after main() pins one core and one thread
    import numpy as np

REPO = Path(__file__).resolve().parents[1]
SECONDS = 2.0  # CPU seconds each timing runs for (after one warm-up call)


def cpu_ms(model: Path, feed: dict[str, np.ndarray], items: int) -> float:
    """Process CPU milliseconds per item of one-thread inference of ``feed`` (``items`` items a call)."""
    from metrosight.core.onnx_session import open_session
    from metrosight.eval.parity import ONE_THREAD

    session = open_session(model, ONE_THREAD)
    session.run(None, feed)
    t0, n = time.process_time(), 0
    while time.process_time() - t0 < SECONDS:
        session.run(None, feed)
        n += items
    return 1000.0 * (time.process_time() - t0) / n


def embedder_rows(data: Path, cache: Path) -> list[dict[str, Any]]:
    """One row per embedder variant (the float model first): speed and parity."""
    from metrosight.core.derived import VARIANTS, ParityRecord, build_variant, file_sha256
    from metrosight.detect.centerface_onnx import CenterFaceDetector
    from metrosight.eval.parity import (
        CALIBRATED_ON,
        EMBEDDER_FLOAT_TAIL,
        ONE_THREAD,
        compare_passes,
        descriptor_passes,
        embedder_calibration,
        lfw_faces,
    )
    from metrosight.recognize.embedder_onnx import OnnxResNetEmbedder
    from metrosight.recognize.operating import FLOOR_COSINE

    detector = CenterFaceDetector(inference=ONE_THREAD)
    float_model = OnnxResNetEmbedder(cache).float_path()
    faces = lfw_faces(data, detector)
    reference = descriptor_passes(float_model, faces)
    calibration = embedder_calibration(data, detector)
    chips = faces.chips[:16]
    rows = []
    for variant in ("float32", *VARIANTS):
        if variant == "float32":
            model = float_model
        else:
            model = build_variant(float_model, variant, "chips", calibration, EMBEDDER_FLOAT_TAIL)
        parity = compare_passes(reference, descriptor_passes(model, faces), faces, FLOOR_COSINE)
        if variant != "float32":
            data_note = {"measured_on": "LFW fold 1", "calibrated_on": CALIBRATED_ON if variant == "int8" else ""}
            record = ParityRecord(
                variant, file_sha256(model), file_sha256(float_model), parity.passed, parity.summary(), data=data_note
            )
            record.write(model)
        rows.append(
            {
                "variant": variant,
                "ms_b1": cpu_ms(model, {"chips": chips[:1]}, 1),
                "ms_b16": cpu_ms(model, {"chips": chips}, 16),
                "mb": model.stat().st_size / 1e6,
                **parity.figures(),
                "summary": parity.summary(),
                "passed": parity.passed,
            }
        )
        print(f"embedder {variant}: {rows[-1]['ms_b1']:.2f} ms/face, {parity.summary()}", file=sys.stderr)
    return rows


def detector_rows(data: Path, cache: Path) -> list[dict[str, Any]]:
    """One row per detector variant (the float model first): speed and FDDB recall."""
    import numpy as np  # after pin_one_core: one BLAS thread

    from metrosight.core.derived import VARIANTS, build_variant
    from metrosight.detect.centerface_onnx import CenterFaceDetector, default_model_path, ensure_prepared_model
    from metrosight.eval.parity import ONE_THREAD, detector_calibration, faces_found, fddb_fold1
    from metrosight.recognize.parity import DetectorParity

    reference = CenterFaceDetector(inference=ONE_THREAD)
    float_model = ensure_prepared_model(default_model_path(), cache)
    gts, images = fddb_fold1(data)
    faces = sum(len(g.boxes) for g in gts)
    found_float = faces_found(reference, gts, images)
    calibration = detector_calibration(data, reference)
    frame = reference.network_input(np.zeros((720, 1280, 3), np.uint8))  # (1, 3, 288, 512)
    rows = []
    for variant in ("float32", *VARIANTS):
        model = float_model if variant == "float32" else build_variant(float_model, variant, "input.1", calibration)
        if variant == "float32":
            found = found_float
        else:
            found = faces_found(
                CenterFaceDetector(model_path=model, model_prepared=True, inference=ONE_THREAD), gts, images
            )
        parity = DetectorParity(faces, found_float, found)
        rows.append(
            {
                "variant": variant,
                "ms_b1": cpu_ms(model, {"input.1": frame}, 1),
                "ms_b16": cpu_ms(model, {"input.1": np.repeat(frame, 16, axis=0)}, 16),
                "mb": model.stat().st_size / 1e6,
                **parity.figures(),
                "summary": parity.summary(),
                "passed": parity.passed,
            }
        )
        print(f"detector {variant}: {rows[-1]['ms_b1']:.2f} ms/frame, {parity.summary()}", file=sys.stderr)
    return rows


def _tables(result: dict[str, Any]) -> list[Any]:
    from rich.table import Table

    out = []
    emb = result["embedder"]
    if emb:
        base = emb[0]
        t = Table(title="Embedder variants vs float32 (dlib ResNet; CPU ms per face pass, one thread; LFW fold 1)")
        for col in ("variant", "ms b1", "× float", "ms b16", "× float", "MB", "min cos", "mean cos", "<0.999", "Δdec"):
            t.add_column(col, justify="left" if col == "variant" else "right")
        t.add_column("gate")
        for r in emb:
            t.add_row(
                r["variant"],
                f"{r['ms_b1']:.2f}",
                f"{base['ms_b1'] / r['ms_b1']:.2f}",
                f"{r['ms_b16']:.2f}",
                f"{base['ms_b16'] / r['ms_b16']:.2f}",
                f"{r['mb']:.1f}",
                f"{r['min_cosine']:.5f}",
                f"{r['mean_cosine']:.5f}",
                f"{r['below_min_cosine']}/{r['descriptors']}",
                f"{r['decision_changes']}/{r['pairs']}",
                "PASS" if r["passed"] else "FAIL",
            )
        out.append(t)
    det = result["detector"]
    if det:
        base = det[0]
        t = Table(title="Detector variants vs float32 (CenterFace; CPU ms per 512×288 pass, one thread; FDDB fold 1)")
        for col in ("variant", "ms b1", "× float", "ms b16", "× float", "MB", "found", "recall", "drop (pt)"):
            t.add_column(col, justify="left" if col == "variant" else "right")
        t.add_column("gate")
        for r in det:
            t.add_row(
                r["variant"],
                f"{r['ms_b1']:.2f}",
                f"{base['ms_b1'] / r['ms_b1']:.2f}",
                f"{r['ms_b16']:.2f}",
                f"{base['ms_b16'] / r['ms_b16']:.2f}",
                f"{r['mb']:.1f}",
                f"{r['candidate_found']}/{r['faces']}",
                f"{100 * r['candidate_recall']:.2f}%",
                f"{r['recall_drop_points']:.2f}",
                "PASS" if r["passed"] else "FAIL",
            )
        out.append(t)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--core", type=int, default=None, help="core to pin to (default: the last one)")
    ap.add_argument("--data", type=Path, default=None, help="shared data (default $METROSIGHT_DATA, ../shared/data)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "quantise.json")
    ap.add_argument("--cache-dir", type=Path, default=REPO / "bench" / "results" / "quantise-models")
    ap.add_argument("--no-detector", action="store_true", help="measure the embedder variants only")
    ap.add_argument("--no-embedder", action="store_true", help="measure the detector variants only")
    args = ap.parse_args()

    from rich.console import Console

    from metrosight.eval.speed import BenchDataError, data_dir, machine_state, pin_one_core

    core = pin_one_core(args.core)
    try:
        data = data_dir(args.data)
    except BenchDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import onnxruntime

    args.cache_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "machine": {**machine_state(), "core": core, "onnxruntime": onnxruntime.__version__},
        "timing": "process CPU time (time.process_time), one intra-op thread, after one warm-up call",
        "embedder": [] if args.no_embedder else embedder_rows(data, args.cache_dir),
        "detector": [] if args.no_detector else detector_rows(data, args.cache_dir),
    }
    console = Console(width=150)
    for table in _tables(result):
        console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
