"""Recognition accuracy per quality bin: where do face height, sharpness and yaw start to cost matches?

    python bench/quality_bins.py [--reuse]

Development set (chooses the limits): AT&T s1–s20, the face_recognition knn examples, and the LFW fold-1 people of
even position in name order. Held-out set (reports them): the LFW fold-1 people of odd position. Each photo is
searched as it is and degraded (scaled to 1/2, 1/2.8, 1/4 and 1/5.5 of its size, blurred with σ 1.5 and 3 px), to
fill the bins real enrolment and camera photos fall into; every version goes through the real path (CenterFace,
dlib 5-point landmarks, alignment, :func:`metrosight.recognize.quality` measures, the ONNX descriptor fused with
its mirror image).

Measure: the *genuine-match rate* — the share of a person's probes whose cosine to the person's template (the unit
mean of their *other* original photos) reaches the threshold at which 1 in 1,000 impostor comparisons (a probe
against another person's template, development set) match. Per bin of one measure, among faces that pass the limits
already chosen (face height first, then sharpness, then yaw). A limit sits where the rate drops: walking the bins from
the worst end, the first bin (with at least 25 probes) whose rate is within 5 points of the rate of all original
development photos starts the accepted range; where the bins beyond it are too small to judge, the previous limit is
kept if it lies there (a limit is not tightened without evidence).

Writes ``bench/results/quality_bins.json`` and ``docs/accuracy/quality_bins.png``; prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
FACES = RESULTS / "quality_bins_faces.npz"

VARIANTS = {"orig": None, "s0.5": 0.5, "s0.35": 0.35, "s0.25": 0.25, "s0.18": 0.18, "blur1.5": -1.5, "blur3": -3.0}
BINS = {
    "height_px": [0, 20, 24, 28, 32, 36, 40, 48, 56, 64, 80, 100, 1e9],
    "blur_var": [0, 5, 10, 15, 20, 30, 40, 60, 80, 120, 200, 400, 1e9],
    "yaw_ratio": [0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1e9],
}
HIGHER_IS_BETTER = {"height_px": True, "blur_var": True, "yaw_ratio": False}
DROP = 0.05  # a bin "drops" when its rate is more than 5 points under the reference rate
MIN_N = 25  # bins with fewer genuine probes are not judged
FMR = 1e-3
OLD = {"height_px": 36, "blur_var": 20.0, "yaw_ratio": 0.45}


def photo_sets() -> list[tuple[Path, str, str]]:
    """``(photo, person, split)``: split ``dev`` or ``heldout``."""
    out = []
    att = DATA / "att_faces"
    for i in range(1, 21):
        for p in sorted((att / f"s{i}").glob("*.pgm")):
            out.append((p, f"att-s{i}", "dev"))
    knn = DATA / "face_recognition_examples" / "examples" / "knn_examples" / "train"
    for d in sorted(x for x in knn.iterdir() if x.is_dir()):
        for p in sorted(d.iterdir()):
            out.append((p, f"knn-{d.name}", "dev"))
    lfw = DATA / "lfw" / "lfw-deepfunneled"
    for k, d in enumerate(sorted(x for x in lfw.iterdir() if x.is_dir())):
        for p in sorted(d.glob("*.jpg")):
            out.append((p, f"lfw-{d.name}", "dev" if k % 2 == 0 else "heldout"))
    return out


def collect() -> dict[str, np.ndarray]:
    import cv2

    from metrosight.config.model import Settings
    from metrosight.eval.extract import MetrosightEncoder, subject_face
    from metrosight.ingest.images import ImageError, load_image
    from metrosight.recognize.align import align
    from metrosight.recognize.quality import blur_variance, face_yaw
    from metrosight.recognize.registry import embedder_for
    from metrosight.services.models import make_face_detector

    s = Settings()
    emb = embedder_for(s, RESULTS / "models", flip=True)
    enc = MetrosightEncoder(make_face_detector(s), emb)
    rows: dict[str, list] = {
        k: [] for k in ("photo", "person", "split", "variant", "height_px", "blur_var", "yaw_ratio", "desc")
    }
    items = photo_sets()
    for n, (path, person, split) in enumerate(items):
        try:
            img, _ = load_image(path)
        except ImageError:
            continue
        for vname, v in VARIANTS.items():
            if v is None:
                im = img
            elif v > 0:
                h, w = img.shape[:2]
                im = cv2.resize(img, (max(8, round(w * v)), max(8, round(h * v))), interpolation=cv2.INTER_AREA)
            else:
                im = cv2.GaussianBlur(img, (0, 0), -v)
            h, w = im.shape[:2]
            det = subject_face([d for d in enc.detect(im) if d.landmarks is not None], w, h)
            if det is None:
                continue
            chip = align(im, det.box, det.landmarks)
            rows["photo"].append(str(path))
            rows["person"].append(person)
            rows["split"].append(split)
            rows["variant"].append(vname)
            rows["height_px"].append(det.box.height)
            rows["blur_var"].append(blur_variance(chip))
            rows["yaw_ratio"].append(face_yaw(det.landmarks, det.yaw))
            rows["desc"].append(np.asarray(emb.embed(chip[None]), np.float32)[0])
        if n % 100 == 0:
            print(f"{n}/{len(items)} photos", file=sys.stderr, flush=True)
    out = {k: np.asarray(v) for k, v in rows.items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    np.savez(FACES, **out)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def scores(f: dict[str, np.ndarray], split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(index, genuine score, best impostor score)`` of the probes of one split that have a genuine template."""
    sel = np.flatnonzero(f["split"] == split)
    d = _unit(f["desc"][sel].astype(np.float64))
    person, photo, orig = f["person"][sel], f["photo"][sel], f["variant"][sel] == "orig"
    people = sorted(set(person))
    sums = {p: d[orig & (person == p)].sum(axis=0) for p in people}
    own_orig = {ph: d[k] for k, ph in enumerate(photo) if orig[k]}
    counts = {p: int(np.sum(orig & (person == p))) for p in people}
    templates = np.stack([_unit(sums[p]) for p in people])
    pidx = np.array([people.index(p) for p in person])
    cos_all = d @ templates.T
    cos_all[np.arange(len(d)), pidx] = -np.inf
    gen = np.full(len(d), np.nan)
    for k in range(len(d)):
        p = person[k]
        if counts[p] < 2 or photo[k] not in own_orig:
            continue
        t = _unit(sums[p] - own_orig[photo[k]])
        gen[k] = float(d[k] @ t)
    ok = np.isfinite(gen)
    return sel[ok], gen[ok], np.concatenate([cos_all[np.isfinite(cos_all)]])


def rate_table(vals: np.ndarray, hit: np.ndarray, edges: list[float]) -> list[dict]:
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (vals >= lo) & (vals < hi)
        n = int(m.sum())
        out.append({"lo": lo, "hi": hi, "n": n, "rate": float(hit[m].mean()) if n else None})
    return out


def choose(table: list[dict], ref: float, higher_better: bool, old: float) -> float:
    """Walk the bins from the worst end: the limit is the edge of the first judged bin (``n ≥ MIN_N``) whose rate
    is within ``DROP`` of the reference (bins beyond it are accepted, bins before it refused). When every bin
    beyond that edge is too small to judge (no drop seen, none ruled out), the previous limit ``old`` is kept if it
    lies there: a limit is not tightened without evidence."""
    order = table if higher_better else table[::-1]
    for k, b in enumerate(order):
        if b["n"] >= MIN_N and b["rate"] >= ref - DROP:
            edge = b["lo"] if higher_better else b["hi"]
            unjudged = all(x["n"] < MIN_N for x in order[:k])
            if unjudged and k > 0:
                return min(edge, old) if higher_better else max(edge, old)
            return edge
    return order[-1]["hi"] if higher_better else order[-1]["lo"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reuse", action="store_true", help=f"reuse {FACES.name} (skip detection and embedding)")
    a = ap.parse_args()
    f = dict(np.load(FACES)) if a.reuse and FACES.is_file() else collect()
    dev_idx, dev_gen, dev_imp = scores(f, "dev")
    ho_idx, ho_gen, _ = scores(f, "heldout")
    thr = float(np.quantile(dev_imp, 1.0 - FMR))
    dev_hit, ho_hit = dev_gen >= thr, ho_gen >= thr
    ref = float(dev_hit[f["variant"][dev_idx] == "orig"].mean())
    limits: dict[str, float] = {}
    curves: dict[str, dict] = {}
    keep_dev = np.ones(len(dev_idx), bool)
    keep_ho = np.ones(len(ho_idx), bool)
    for m in ("height_px", "blur_var", "yaw_ratio"):
        dv, hv = f[m][dev_idx], f[m][ho_idx]
        t_dev = rate_table(dv[keep_dev], dev_hit[keep_dev], BINS[m])
        t_ho = rate_table(hv[keep_ho], ho_hit[keep_ho], BINS[m])
        lim = choose(t_dev, ref, HIGHER_IS_BETTER[m], OLD[m])
        limits[m] = lim
        curves[m] = {"dev": t_dev, "heldout": t_ho, "limit": lim, "old_limit": OLD[m]}
        keep_dev &= (dv >= lim) if HIGHER_IS_BETTER[m] else (dv <= lim)
        keep_ho &= (hv >= lim) if HIGHER_IS_BETTER[m] else (hv <= lim)

    def passes(idx: np.ndarray, lim: dict[str, float]) -> np.ndarray:
        return (
            (f["height_px"][idx] >= lim["height_px"])
            & (f["blur_var"][idx] >= lim["blur_var"])
            & (f["yaw_ratio"][idx] <= lim["yaw_ratio"])
        )

    report = {}
    for name, lim in (("chosen", limits), ("old", OLD)):
        for split, idx, hit in (("dev", dev_idx, dev_hit), ("heldout", ho_idx, ho_hit)):
            ok = passes(idx, lim)
            orig = f["variant"][idx] == "orig"
            report[f"{name}/{split}"] = {
                "limits": lim,
                "accepted_share_all_versions": float(ok.mean()),
                "accepted_share_original_photos": float(ok[orig].mean()),
                "genuine_match_rate_accepted": float(hit[ok].mean()) if ok.any() else None,
                "genuine_match_rate_refused": float(hit[~ok].mean()) if (~ok).any() else None,
                "refused": int((~ok).sum()),
                "probes": int(len(idx)),
            }
    print(
        f"threshold at FMR {FMR:g} (development impostor comparisons): cosine {thr:.4f}; "
        f"reference genuine-match rate (original development photos): {ref:.3f}"
    )
    for m, c in curves.items():
        print(f"\n{m}: chosen limit {c['limit']:g} (was {c['old_limit']:g})")
        print(f"  {'bin':>16} {'dev n':>6} {'dev rate':>9} {'held-out n':>11} {'held-out rate':>14}")
        for bd, bh in zip(c["dev"], c["heldout"], strict=True):
            rd = "-" if bd["rate"] is None else f"{bd['rate']:.3f}"
            rh = "-" if bh["rate"] is None else f"{bh['rate']:.3f}"
            print(f"  {bd['lo']:>7g}–{bd['hi']:<8g} {bd['n']:>6} {rd:>9} {bh['n']:>11} {rh:>14}")
    print(
        f"\n{'limits':8} {'split':8} {'accepted (orig)':>16} {'accepted (all)':>15} "
        f"{'match acc.':>11} {'match ref.':>11}"
    )
    for k, r in report.items():
        name, split = k.split("/")
        ma = "-" if r["genuine_match_rate_accepted"] is None else f"{r['genuine_match_rate_accepted']:.3f}"
        mr = "-" if r["genuine_match_rate_refused"] is None else f"{r['genuine_match_rate_refused']:.3f}"
        print(
            f"{name:8} {split:8} {r['accepted_share_original_photos']:>16.3f} "
            f"{r['accepted_share_all_versions']:>15.3f} {ma:>11} {mr:>11}"
        )
    out = {
        "threshold": thr,
        "fmr": FMR,
        "reference_rate": ref,
        "drop_points": DROP,
        "min_n": MIN_N,
        "limits": limits,
        "curves": curves,
        "report": report,
        "data": {
            "dev": "AT&T s1-s20, knn examples, LFW fold-1 people at even positions",
            "heldout": "LFW fold-1 people at odd positions",
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quality_bins.json").write_text(json.dumps(out, indent=2))
    plot(curves, ref)
    print(f"json: {RESULTS / 'quality_bins.json'}\nplot: {ROOT / 'docs' / 'accuracy' / 'quality_bins.png'}")


def plot(curves: dict[str, dict], ref: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {
        "height_px": "face height (px)",
        "blur_var": "sharpness (Laplacian variance)",
        "yaw_ratio": "yaw ratio (nose offset / eye distance)",
    }
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (m, c) in zip(axes, curves.items(), strict=True):
        for split, style in (("dev", "o-"), ("heldout", "s--")):
            xs = [i for i, b in enumerate(c[split]) if b["n"] >= MIN_N]
            ax.plot(xs, [c[split][i]["rate"] for i in xs], style, label=f"{split} (bins with ≥{MIN_N})")
        labels = [f"{b['lo']:g}" for b in c["dev"]]
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=45, fontsize=7)
        ax.axhline(ref - DROP, color="grey", lw=0.8, ls=":", label=f"reference − {DROP:g}")
        edges = [b["lo"] for b in c["dev"]]
        for lim, col, lab in ((c["limit"], "red", "chosen limit"), (c["old_limit"], "black", "old limit")):
            pos = np.interp(lim, edges, range(len(edges))) if lim <= edges[-1] else len(edges) - 1
            ax.axvline(pos, color=col, lw=1, ls="-" if col == "red" else "--", label=f"{lab} {lim:g}")
        ax.set_title(titles[m])
        ax.set_xlabel("bin lower edge")
        ax.set_ylabel("genuine-match rate at FMR 1e-3")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out = ROOT / "docs" / "accuracy" / "quality_bins.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    main()
