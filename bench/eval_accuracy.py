"""Accuracy on the shared data, in full: the figures of the README's accuracy section.

Runs, on one core, with the face_recognition baseline in the same run:
- ``metrosight eval identify`` on LFW fold 1 (1 and 3 enrolment photos per person, and 1/2/3 photos on the same
  probes), on AT&T s1–s20 (s1–s10 enrolled, s11–s20 never enrolled) and on dlib's aligned "johns" chips (3 enrolled,
  2 never), with the FDDB fold-1 cohort for AS-norm;
- ``metrosight eval verify`` on LFW fold 1's 600 pairs;
- ``metrosight eval detect`` on FDDB fold 1 and dlib's annotated photos (the default detector, MTCNN, dlib HOG);
- ``metrosight eval identify --video`` on the labelled White House clip.

Each run writes its HTML/JSON report and plots to bench/results/eval/; this script prints a summary table (FNIR
ratios against the baseline measured in the same run) and writes bench/results/eval_accuracy.json.

    python bench/eval_accuracy.py [--core N] [--data DIR] [--quick]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
OUT = RESULTS / "eval"
CACHE = RESULTS / "eval_cache"


def metrosight(home: Path, *args: object) -> None:
    cmd = [
        sys.executable,
        "-c",
        "from metrosight.cli import app; app()",
        "--home",
        str(home),
        *map(str, args),
    ]
    print("$ metrosight " + " ".join(map(str, args)), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "COLUMNS": "220"})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--core", type=int, default=None)
    ap.add_argument(
        "--data", type=Path, default=Path(os.environ.get("METROSIGHT_DATA", REPO.parent / "shared" / "data"))
    )
    ap.add_argument("--quick", action="store_true", help="LFW first 120 people, FDDB first 60 images")
    args = ap.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[-1] if args.core is None else args.core})  # children inherit it

    from rich.console import Console
    from rich.table import Table

    d = args.data
    started = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="metrosight-eval-"))
    models = home / "cache" / "models"
    models.mkdir(parents=True)
    quick = ["--max-people", "120"] if args.quick else []

    # The cohort: every usable face of FDDB fold 1 (news photos, no photo shared with LFW or AT&T).
    from metrosight.detect.factory import DEFAULT_BACKEND, make_detector

    cohort = CACHE / f"cohort_fddb1_{DEFAULT_BACKEND}.npz"  # built with the default detector, as `calibrate` would
    if not cohort.is_file():
        from metrosight.eval.calibrate import build_cohort, photo_files
        from metrosight.eval.extract import MetrosightEncoder
        from metrosight.recognize.embedder_onnx import OnnxResNetEmbedder

        enc = MetrosightEncoder(make_detector("fast"), OnnxResNetEmbedder(cache_dir=CACHE / "models", threads=1))
        build_cohort(photo_files(d / "fddb" / "originalPics"), enc).save(cohort)

    lfw = d / "lfw" / "lfw-deepfunneled"

    def run_eval(command: str, name: str, *args: object, scored: bool = True) -> None:
        """``metrosight eval COMMAND ARGS`` reporting into OUT as NAME; scored runs use the cohort and the shared
        descriptor cache."""
        scoring = ["--cohort", cohort, "--cache", CACHE] if scored else []
        metrosight(home, "eval", command, *args, *scoring, "--out", OUT, "--name", name)

    run_eval("identify", "identify-lfw", "--data", lfw, "--per-person", "1", "--per-person", "3", *quick)
    run_eval("identify", "identify-lfw-same-probes", "--data", lfw, "--per-person", "1", "--per-person", "2",
             "--per-person", "3", "--same-probes", *quick)  # fmt: skip
    run_eval("identify", "identify-att", "--data", d / "att_faces", "--include", r"s([1-9]|1[0-9]|20)",
             "--non-mated", r"s(1[1-9]|20)", "--per-person", "1", "--per-person", "3")  # fmt: skip
    run_eval("identify", "identify-johns", "--data", d / "dlib_johns", "--aligned", "--non-mated",
             "John_S(himkus|imm)", "--per-person", "1", "--per-person", "3")  # fmt: skip
    run_eval("verify", "verify-lfw", "--images", lfw, "--pairs", d / "lfw" / "pairs.txt")
    det_quick = ["--max-images", "60"] if args.quick else []
    run_eval("detect", "detect", "--fddb", d / "fddb", "--dlib-xml", d / "dlib_faces" / "training.xml",
             "--dlib-xml", d / "dlib_faces" / "testing.xml", "--detector", "configured", "--detector", "mtcnn",
             "--detector", "hog", *det_quick, scored=False)  # fmt: skip
    ex = d / "face_recognition_examples" / "examples"
    gallery = home / "hamilton-gallery"
    for person, photo in [
        ("Lin-Manuel_Miranda", "lin-manuel-miranda.png"),
        ("Alex_Lacamoire", "alex-lacamoire.png"),
        ("Barack_Obama", "obama.jpg"),
        ("Joe_Biden", "biden.jpg"),
    ]:
        (gallery / person).mkdir(parents=True)
        (gallery / person / photo).symlink_to(ex / photo)
    run_eval("identify", "identify-video", "--video", ex / "short_hamilton_clip.mp4", "--labels",
             REPO / "tests" / "data" / "hamilton_labels.csv", "--gallery", gallery, scored=False)  # fmt: skip

    # Calibration as an operator would plan it: watchlist = LFW people with 2+ photos (their first photo), non-mated
    # traffic = LFW's one-photo people, cohort = FDDB fold 1; then the mated probes' FNIR at the chosen threshold.
    from metrosight.eval.datasets import open_set_split, people_folders

    split = open_set_split(people_folders(lfw), 1)
    cal_gallery, cal_traffic = home / "cal-gallery", home / "cal-traffic"
    for person, photos in split.gallery.items():
        (cal_gallery / person).mkdir(parents=True)
        (cal_gallery / person / photos[0].name).symlink_to(photos[0])
    cal_traffic.mkdir()
    for p, _ in split.non_mated:
        (cal_traffic / p.name).symlink_to(p)
    cfg = home / "deploy.yaml"
    cfg.write_text("recognition:\n  normalization: cohort\n  match_threshold: 1.0\n")
    (home / "calibration").mkdir(exist_ok=True)
    import shutil

    shutil.copy(cohort, home / "calibration" / "cohort.npz")
    metrosight(
        home,
        "--config",
        cfg,
        "calibrate",
        "--non-mated",
        cal_traffic,
        "--gallery",
        cal_gallery,
        "--target-fpir",
        "0.01",
        "--footfall",
        "100000",
        "--write-config",
        cfg,
        "--out",
        OUT,
    )
    from metrosight.config.load import load_settings

    calibrated = load_settings(cfg, environ={}).recognition.match_threshold

    summary: dict[str, object] = {
        "seconds": 0.0,
        "identify": {},
        "verify": {},
        "detect": {},
        "video": {},
        "calibrated_threshold": calibrated,
    }
    t = Table(
        "set",
        "gallery",
        "method",
        "rank-1",
        "FNIR@0.1",
        "FNIR@0.01",
        "FNIR@0.003",
        "× baseline @0.003",
        "held-out FNIR@0.003",
        title="open-set identification (FNIR: lower is better)",
    )
    for name in ("identify-lfw", "identify-lfw-same-probes", "identify-att", "identify-johns"):
        data = json.loads((OUT / f"{name}.json").read_text())["data"]["identification"]
        summary["identify"][name] = data  # type: ignore[index]
        for gal, methods in data.items():
            base = next(v for k, v in methods.items() if k.startswith("face_recognition"))
            b3 = next(p["fnir"] for p in base["fnir_at_fpir"] if p["fpir"] == 0.003)
            for m, r in methods.items():
                f = {p["fpir"]: p["fnir"] for p in r["fnir_at_fpir"]}
                ho = {x["target"]: x for x in r["heldout"]}
                ratio = f"{f[0.003] / b3:.2f}" if b3 > 0 else "-"
                t.add_row(
                    name.removeprefix("identify-"),
                    gal,
                    m,
                    f"{100 * r['rank1']:.1f}%",
                    *[f"{100 * f[x]:.1f}%" for x in (0.1, 0.01, 0.003)],
                    ratio,
                    f"{100 * ho[0.003]['fnir']:.1f}%" if 0.003 in ho else "-",
                )
    v = json.loads((OUT / "verify-lfw.json").read_text())["data"]["verification"]
    summary["verify"] = v
    tv = Table(
        "method",
        "accuracy",
        "EER",
        "all-pairs TAR@FAR 1e-3",
        "all-pairs TAR@FAR 1e-4",
        title="LFW fold 1 verification",
    )
    for m, r in v.items():
        ap = {x["far"]: x["tar"] for x in r["all_pairs"]["tar_at_far"]}
        tv.add_row(
            m,
            f"{100 * r['accuracy']:.2f} ± {100 * r['accuracy_std']:.2f}%",
            f"{100 * r['eer']:.1f}%",
            f"{100 * ap[0.001]:.1f}%",
            f"{100 * ap[0.0001]:.1f}%",
        )
    dd = json.loads((OUT / "detect.json").read_text())["data"]["detection"]
    summary["detect"] = {
        s: {k: {kk: vv for kk, vv in x.items() if kk != "roc_iou_0.4"} for k, x in dets.items()}
        for s, dets in dd.items()
    }
    td = Table(
        "set",
        "detector",
        "faces",
        "recall@0.4",
        "recall@0.5",
        "precision@0.4",
        "ms/image",
        title="face detection",
    )
    for s, dets in dd.items():
        for k, x in dets.items():
            td.add_row(
                s,
                k,
                str(x["faces"]),
                f"{100 * x['at_iou']['0.4']['recall']:.1f}%",
                f"{100 * x['at_iou']['0.5']['recall']:.1f}%",
                f"{100 * x['at_iou']['0.4']['precision']:.1f}%",
                f"{x['ms_per_image']:.0f}",
            )
    vid = json.loads((OUT / "identify-video.json").read_text())["data"]
    summary["video"] = vid
    summary["seconds"] = time.perf_counter() - started
    console = Console(width=220)
    for table in (t, tv, td):
        console.print(table)
    console.print(
        f"video: {len(vid['alerts'])} alert(s), {sum(a['true'] for a in vid['alerts'])} true; appearances found "
        f"{sum(a['found'] for a in vid['appearances'])}/{len(vid['appearances'])}"
    )
    # The mated probes were not used by calibrate: their FNIR at its threshold is an honest operating point.
    from metrosight.eval.extract import MetrosightEncoder, encode_all
    from metrosight.eval.identify import MethodSpec, evaluate_open_set
    from metrosight.eval.metrics import fnir_at_threshold
    from metrosight.recognize.embedder_onnx import OnnxResNetEmbedder
    from metrosight.recognize.normalize import Cohort

    enc = MetrosightEncoder(
        make_detector("fast"), OnnxResNetEmbedder(cache_dir=CACHE / "models", threads=1), gate_quality=False
    )
    recs = encode_all(split.all_items(), enc, CACHE)
    run = evaluate_open_set(split, recs, MethodSpec("asnorm", "asnorm", True, Cohort.load(cohort)), size_sweep=False)
    fpir_cal, fnir_cal = fnir_at_threshold(run.searches, calibrated)
    summary["calibrated_operating_point"] = {"threshold": calibrated, "fpir": fpir_cal, "fnir": fnir_cal}
    console.print(
        f"calibrate (target FPIR 0.01, {len(split.gallery)} people): AS-norm threshold {calibrated}; "
        f"on LFW: FPIR {100 * fpir_cal:.2f}% (calibration data), FNIR of the mated probes {100 * fnir_cal:.1f}%"
    )
    console.print(f"reports in {OUT}; {summary['seconds']:.0f} s")
    (RESULTS / "eval_accuracy.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
