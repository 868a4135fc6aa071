"""``metrosight bench …``: how fast and how accurate the face models are on this machine.

``bench models`` measures, on one core, every face detector and descriptor backend available: ms per frame (detector,
480p and 720p frames of the crowd sample video) and per face (descriptor, batch 1 and 32), detector recall on dlib's
annotated photos and FDDB fold 1, and descriptor parity with dlib's own runtime on LFW fold 1. The measuring
functions live in :mod:`metrosight.eval.speed` (the scripts in ``bench/`` use the same ones).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from metrosight.console import SafeConsole

bench_app = typer.Typer(help="Measure speed and accuracy of the face models on this machine.", no_args_is_help=True)
out = SafeConsole(soft_wrap=True, width=150)
err = SafeConsole(stderr=True, soft_wrap=True)

QUICK_PAIRS = 50  # LFW pairs of each kind in --quick mode


def _fail(message: str, code: int = 2) -> None:
    from metrosight import cli as root  # lazy: metrosight.cli imports this module

    root.fail(message, code)


def _cache_dir() -> Path:
    """The home's model cache (the ONNX build of dlib's ResNet is reused from there), else a temporary folder."""
    from metrosight import cli as root
    from metrosight.config.home import Home

    try:
        return Home.resolve(root.state.home).ensure().cache / "models"
    except OSError:
        return Path(tempfile.mkdtemp(prefix="metrosight-models-"))


def measure_models(data: Path, quick: bool, cache_dir: Path, say: Any = None) -> dict[str, Any]:
    """Every available detector and embedder, measured on one core (the caller pins the process).

    Args:
        data: the shared data folder (see :func:`metrosight.eval.speed.data_dir`).
        quick: fewer frames and repeats, no FDDB, 100 LFW pairs instead of 600.
        cache_dir: where the ONNX embedder's model is built/cached.
        say: progress callback taking one line of text.

    Raises:
        BenchDataError: a data file is missing.
    """
    from metrosight.detect.base import DetectorError
    from metrosight.detect.factory import make_detector
    from metrosight.eval import speed
    from metrosight.recognize.factory import make_embedder

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


def _tables(res: dict[str, Any]) -> list[Table]:
    sets = list(res["detector_sets"])
    det = Table(title=f"Face detectors, one core (core {res['core']}), IoU ≥ 0.4")
    for col in (
        "detector",
        "CPU ms 480p",
        "CPU ms 720p",
        "× dlib HOG",
        *[f"{s} {m}" for s in sets for m in ("recall", "FP")],
    ):
        det.add_column(col, justify="left" if col == "detector" else "right")
    for d in res["detectors"]:
        ratio = d["speed_vs_dlib_hog1_720p"]
        det.add_row(
            d["detector"],
            f"{d['ms_480p']:.1f}",
            f"{d['ms_720p']:.1f}",
            f"{ratio:.1f}×" if ratio else "-",
            *[x for s in sets for x in (f"{d[s]['tp']}/{d[s]['n_gt']} ({d[s]['recall']:.3f})", str(d[s]["fp"]))],
        )
    e = res["embedders"]
    emb = Table(title=f"Face descriptors, one core, LFW fold 1 ({e['faces']} faces)")
    for col in (
        "embedder",
        "CPU ms/face batch 1",
        "CPU ms/face batch 32",
        "× dlib (batch 1 / 32)",
        "accuracy @0.6",
        "min cosine to dlib",
        "pairs decided differently",
    ):
        emb.add_column(col, justify="left" if col == "embedder" else "right")
    for name, sp in e["ms_per_face"].items():
        r = e["ratio_vs_dlib"][name]
        p = e["parity"].get(name)
        emb.add_row(
            name,
            f"{sp['1']:.2f}",
            f"{sp['32']:.2f}",
            f"{r['1']:.1f}× / {r['32']:.1f}×",
            f"{e['accuracy_at_0.6'][name]:.4f}",
            f"{p['min_cosine']:.7f}" if p else "(reference)",
            f"{p['pairs_decided_differently']}/{p['pairs']}" if p else "-",
        )
    return [det, emb]


@bench_app.command("models")
def models_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="print the results as one JSON object")] = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="fewer frames and repeats, no FDDB, 100 LFW pairs (about a minute)")
    ] = False,
    data: Annotated[
        Path | None, typer.Option("--data", help="shared data folder (default $METROSIGHT_DATA, else ../shared/data)")
    ] = None,
    core: Annotated[int | None, typer.Option("--core", help="core to run on (default: the last one)")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="also write the JSON to this file")] = None,
) -> None:
    """Speed on one core, detector recall (dlib's photos, FDDB fold 1) and descriptor parity with dlib (LFW fold 1)
    of every face detector and embedder available."""
    from metrosight.eval.speed import BenchDataError, data_dir, pin_one_core

    try:
        root = data_dir(data)
    except BenchDataError as exc:
        _fail(str(exc))
        return
    used = pin_one_core(core)
    started = time.perf_counter()
    try:
        with err.status("measuring…") as status:
            res = measure_models(root, quick, _cache_dir(), say=lambda m: status.update(f"measuring: {m}"))
    except BenchDataError as exc:
        _fail(str(exc))
        return
    res["core"] = used
    res["data"] = str(root)
    res["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(res, indent=2)
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(text + "\n")
    if as_json:
        print(text)
        return
    for t in _tables(res):
        out.print(t)
    m = res["machine"]
    out.print(
        f"{m['cpu']}, {m['cores']} cores, load average {m['load_avg_1_5_15']} (timings on a busy machine vary; "
        f"ratios measured in the same run hold better); {res['seconds']} s"
        + ("; --quick: no FDDB, 100 LFW pairs" if quick else ""),
        highlight=False,
    )
