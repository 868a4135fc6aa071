"""``metrosight bench …``: how fast and how accurate the face models are on this machine.

``bench models`` measures, on one core, every face detector and descriptor backend available: ms per frame (detector,
480p and 720p frames of the crowd sample video) and per face (descriptor, batch 1 and 32), detector recall on dlib's
annotated photos and FDDB fold 1, and descriptor parity with dlib's own runtime on LFW fold 1. The measuring
is done by :func:`metrosight.eval.model_bench.measure_models` (the scripts in ``bench/`` use the same functions).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from metrosight.cli.common import fail
from metrosight.cli.context import cli_context
from metrosight.config.home import Home
from metrosight.console import SafeConsole
from metrosight.eval.model_bench import measure_models
from metrosight.eval.speed import BenchDataError, data_dir, pin_one_core

bench_app = typer.Typer(help="Measure speed and accuracy of the face models on this machine.", no_args_is_help=True)

TABLE_WIDTH = 150  # the tables are wide: printed at this width whatever the terminal's


def model_cache(home_dir: Path | None) -> Path:
    """The home's model cache (the ONNX build of dlib's ResNet is reused from there), else a temporary folder."""
    try:
        return Home.resolve(home_dir).ensure().cache / "models"
    except OSError:
        return Path(tempfile.mkdtemp(prefix="metrosight-models-"))


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
    ctx: typer.Context,
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
    c = cli_context(ctx)
    try:
        root = data_dir(data)
    except BenchDataError as exc:
        fail(str(exc))
    used = pin_one_core(core)
    started = time.perf_counter()
    try:
        with c.err.status("measuring…") as status:
            res = measure_models(root, quick, model_cache(c.home_dir), say=lambda m: status.update(f"measuring: {m}"))
    except BenchDataError as exc:
        fail(str(exc))
    res["core"] = used
    res["data"] = str(root)
    res["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(res, indent=2)
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(text + "\n")
    if as_json:
        c.emit(text)
        return
    out = SafeConsole(soft_wrap=True, width=TABLE_WIDTH)
    for t in _tables(res):
        out.print(t)
    m = res["machine"]
    out.print(
        f"{m['cpu']}, {m['cores']} cores, load average {m['load_avg_1_5_15']} (timings on a busy machine vary; "
        f"ratios measured in the same run hold better); {res['seconds']} s"
        + ("; --quick: no FDDB, 100 LFW pairs" if quick else ""),
        highlight=False,
    )
