"""Faces cut by the photo's edge and faces covered by a mask or a hand: how often the enrolment checks refuse real,
whole, bare faces (false refusals) and how often they catch cut and covered ones built from the same photos.

    python bench/face_checks.py [--tune-people 150] [--people 300]

Real faces: LFW deep-funneled (the first photo of each person), split by person into a *tuning* part (where the
covered-score threshold is chosen: the smallest that refuses at most 1% of bare faces) and a *report* part (every
figure below the table's first row comes from people never used to choose it), plus the AT&T faces (tight crops)
and the face_recognition examples. Cut faces: the same photos cropped through the eyes, the brows, the nose, the
mouth and the cheeks. Covered faces: the same photos with a synthetic medical mask (white, light blue, black, pink,
patterned; with pleats and shading) or a hand (the person's own skin colour, fingers) drawn over the lower face with
their landmarks. Each is run through the real detector, landmarks, alignment and :func:`assess`. Prints a table and
writes ``bench/results/face_checks.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from metrosight.config.model import Settings  # noqa: E402
from metrosight.detect.centerface_onnx import CenterFaceDetector  # noqa: E402
from metrosight.ingest.images import read_photo  # noqa: E402
from metrosight.recognize.align import align  # noqa: E402
from metrosight.recognize.quality import assess  # noqa: E402
from tests.photofiles import MASKS, draw_hand, draw_mask, geometry  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def main_face(det, img):  # type: ignore[no-untyped-def]
    """The detected face nearest the photo's centre (with landmarks), or None."""
    h, w = img.shape[:2]
    ds = [d for d in det.detect(img) if d.landmarks is not None]
    if not ds:
        return None
    return min(ds, key=lambda d: np.hypot(d.box.center[0] - w / 2, d.box.center[1] - h / 2))


def crop_cut(img: np.ndarray, lm: np.ndarray, kind: str) -> np.ndarray:
    a, b, e, nose = geometry(lm)
    ey = (a[1] + b[1]) / 2
    left, right = min(lm[:4, 0]), max(lm[:4, 0])
    cuts = {
        "top through the brows": lambda: img[int(ey - 0.3 * e) :],
        "top through the eyes": lambda: img[int(ey) :],
        "top through the nose": lambda: img[int((ey + nose[1]) / 2) :],
        "left through the eye": lambda: img[:, int(left + 0.2 * e) :],
        "left through the cheek": lambda: img[:, int(max(left - 0.2 * e, 1)) :],
        "right through the cheek": lambda: img[:, : int(right + 0.2 * e)],
        "bottom through the mouth": lambda: img[: int(nose[1] + 0.45 * e)],
    }
    return np.ascontiguousarray(cuts[kind]())


SETTINGS = Settings()


def judge(det, img):  # type: ignore[no-untyped-def]
    """``(detected, refused as cut, covered score)`` of the face nearest the centre, by the enrolment checks
    (:func:`assess` with the photo's size and the default settings)."""
    d = main_face(det, img)
    if d is None:
        return False, None, None
    try:
        chip = align(img, d.box, d.landmarks)
    except Exception:  # noqa: BLE001
        return True, None, None
    q = assess(
        d.box,
        chip,
        d.landmarks,
        SETTINGS.detection.min_face_px,
        SETTINGS.recognition.min_blur_var,
        detector_yaw=d.yaw,
        image_size=(img.shape[1], img.shape[0]),
        max_covered=None,
    )
    cut = q.problem if q.problem is not None and "cut by" in q.problem else None
    return True, cut, q.covered


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tune-people", type=int, default=150)
    ap.add_argument("--people", type=int, default=300, help="report people (after the tuning ones)")
    ap.add_argument("--target-fr", type=float, default=0.01, help="false-refusal rate allowed on the tuning part")
    args = ap.parse_args()
    t0 = time.perf_counter()
    det = CenterFaceDetector()
    lfw = sorted((DATA / "lfw" / "lfw-deepfunneled").iterdir())
    firsts = [sorted(p.iterdir())[0] for p in lfw if p.is_dir() and any(p.iterdir())]
    tune, report = firsts[: args.tune_people], firsts[args.tune_people : args.tune_people + args.people]
    att = sorted((DATA / "att_faces").glob("s*/1.pgm")) + sorted((DATA / "att_faces").glob("s*/5.pgm"))
    examples = sorted((DATA / "face_recognition_examples" / "examples").glob("*.jpg")) + sorted(
        (DATA / "face_recognition_examples" / "examples").glob("*.png")
    )

    def bare(paths):  # type: ignore[no-untyped-def]
        rows = []
        for p in paths:
            img = read_photo(p).image
            found, side, cov = judge(det, img)
            if found:
                rows.append({"photo": p.name, "cut": side, "covered": cov})
        return rows

    def covered_set(paths, seed_offset):  # type: ignore[no-untyped-def]
        rows = []
        for i, p in enumerate(paths):
            img = read_photo(p).image
            d = main_face(det, img)
            if d is None:
                continue
            for kind in [*MASKS, "hand"]:
                r = np.random.default_rng(seed_offset + i * 31 + len(kind))
                built = draw_hand(img, d.landmarks, r) if kind == "hand" else draw_mask(img, d.landmarks, kind, r)
                found, side, cov = judge(det, built)
                rows.append({"photo": p.name, "kind": kind, "found": found, "cut": side, "covered": cov})
        return rows

    bare_tune = bare(tune)  # the threshold is tuned on bare faces only
    scores = np.array([r["covered"] for r in bare_tune if r["covered"] is not None])
    threshold = float(np.quantile(scores, 1 - args.target_fr))
    threshold = round(threshold + 0.005, 3)

    bare_report, cov_report = bare(report), covered_set(report, 100_000)
    bare_att, bare_ex = bare(att), bare(examples)
    cut_rows = []
    for p in report:
        img = read_photo(p).image
        d = main_face(det, img)
        if d is None:
            continue
        for kind in (
            "top through the brows",
            "top through the eyes",
            "top through the nose",
            "left through the eye",
            "left through the cheek",
            "right through the cheek",
            "bottom through the mouth",
        ):
            found, side, _ = judge(det, crop_cut(img, d.landmarks, kind))
            cut_rows.append({"photo": p.name, "kind": kind, "found": found, "cut": side})

    def fr(rows, key):  # type: ignore[no-untyped-def]
        usable = [r for r in rows if r.get(key) is not None] if key == "covered" else rows
        if key == "covered":
            return sum(r["covered"] > threshold for r in usable) / max(len(usable), 1), len(usable)
        return sum(r["cut"] is not None for r in rows) / max(len(rows), 1), len(rows)

    table = []
    for name, rows in (
        ("LFW tuning people (threshold chosen here)", bare_tune),
        ("LFW report people", bare_report),
        ("AT&T (tight crops)", bare_att),
        ("face_recognition examples", bare_ex),
    ):
        c, n = fr(rows, "cut")
        v, _ = fr(rows, "covered")
        table.append({"set": f"bare: {name}", "faces": n, "refused as cut": c, "refused as covered": v})
    for kind in [*MASKS, "hand"]:
        rows = [r for r in cov_report if r["kind"] == kind]
        got = [r for r in rows if r["found"] and r["covered"] is not None]
        table.append(
            {
                "set": f"covered (report people): {kind}",
                "faces": len(rows),
                "detected": len(got) / max(len(rows), 1),
                "refused as covered": sum(r["covered"] > threshold for r in got) / max(len(got), 1),
                "refused as cut": sum(r["cut"] is not None for r in got) / max(len(got), 1),
            }
        )
    for kind in sorted({r["kind"] for r in cut_rows}):
        rows = [r for r in cut_rows if r["kind"] == kind]
        got = [r for r in rows if r["found"]]
        table.append(
            {
                "set": f"cut (report people): {kind}",
                "faces": len(rows),
                "detected": len(got) / max(len(rows), 1),
                "refused as cut": sum(r["cut"] is not None for r in got) / max(len(got), 1),
            }
        )

    print(
        f"covered-score threshold chosen on the tuning people: {threshold} (target false refusals {args.target_fr:.0%})"
    )
    print("share of faces refused as cut by the edge / as covered (covered: at the threshold above)")
    print(f"{'set':58} {'faces':>5} {'detected':>8} {'cut':>6} {'covered':>8}")
    for r in table:
        det_s = f"{r['detected']:.0%}" if "detected" in r else ""
        cov_s = f"{r['refused as covered']:.1%}" if "refused as covered" in r else ""
        print(f"{r['set']:58} {r['faces']:>5} {det_s:>8} {r['refused as cut']:>6.1%} {cov_s:>8}")
    out = ROOT / "bench" / "results" / "face_checks.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "threshold": threshold,
                "target_false_refusal": args.target_fr,
                "table": table,
                "tune_scores_bare": sorted(round(float(s), 4) for s in scores),
                "seconds": round(time.perf_counter() - t0, 1),
            },
            indent=1,
        )
    )
    print(f"wrote {out.relative_to(ROOT)} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
