"""Every face detector and descriptor backend measured on one core (``metrosight bench models``): speed on the crowd
sample video's frames, detector recall on annotated photos, descriptor parity with dlib's own runtime on LFW."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from metrosight.detect.base import DetectorError
from metrosight.detect.factory import make_detector
from metrosight.eval import speed
from metrosight.recognize.factory import make_embedder

QUICK_PAIRS = 50  # LFW pairs of each kind in --quick mode


def measure_models(
    data: Path, quick: bool, cache_dir: Path, say: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Every available detector and embedder, measured on one core (the caller pins the process).

    Args:
        data: the shared data folder (see :func:`metrosight.eval.speed.data_dir`).
        quick: fewer frames and repeats, no FDDB, 100 LFW pairs instead of 600.
        cache_dir: where the ONNX embedder's model is built/cached.
        say: progress callback taking one line of text.

    Raises:
        BenchDataError: a data file is missing.
    """
    # heavy: the detector and embedder factories load every model backend (OpenCV, dlib, onnxruntime)

    say = say or (lambda _msg: None)
    sets = [speed.dlib_faces_set(data)]
    if not quick:
        sets.append(speed.fddb_fold1_set(data))
    frames = speed.timing_frames(data, 4 if quick else 10)
    repeats = 1 if quick else 3
    models = data.parent / "models"  # ../shared/models: a user-supplied YuNet ONNX, when present
    detectors: list[dict[str, Any]] = []
    for label, (name, kw) in speed.detector_candidates(models, full=False).items():
        say(f"detector {label}")
        try:
            det = make_detector(name, **kw)
            row = speed.detector_report(det, frames, sets, repeats)
        except DetectorError as exc:
            say(f"  skipped: {exc}")
            continue
        detectors.append({"detector": label, "backend": name, **row})
    base = next((d for d in detectors if d["detector"] == "hog upsample=1"), None)
    for d in detectors:
        d["speed_vs_dlib_hog1_720p"] = base["ms_720p"] / d["ms_720p"] if base and d["ms_720p"] else None
        for s in sets:
            d[s.name].pop("roc", None)

    say("descriptors: LFW fold 1 chips (dlib HOG + 5-point landmarks)")
    pairs = speed.lfw_fold1(data, QUICK_PAIRS if quick else None)
    chips = speed.dlib_chips(pairs.paths)
    embedders = {name: make_embedder(name, cache_dir) for name in ("onnx", "dlib")}
    say(f"descriptors: {len(chips)} faces, {len(pairs.same)} pairs")
    emb = speed.embedder_report(embedders, chips, pairs, reference="dlib", repeats=(5, 1) if quick else (30, 3))
    return {
        "quick": quick,
        "machine": speed.machine_state(),
        "detectors": detectors,
        "detector_sets": {s.name: {"images": len(s.truth), "faces": sum(len(g.boxes) for g in s.truth)} for s in sets},
        "timing": "detectors: process CPU ms a frame (median over frames of the fastest of repeats), "
        "crowd sample video resized; descriptors: process CPU ms a face (median of repeats)",
        "embedders": emb,
    }
