"""Still photos embedded from nine moved alignments (``photos.jitter``) against one: open-set identification on LFW
fold 1, one photo a person (NIST's protocol), and how the impostor and genuine score distributions shift.

    python bench/jitter.py

Protocol: the first photo of each fold-1 person with 2+ photos is enrolled; their other photos are the mated
searches; the one-photo people are the non-mated searches. Faces through the product's photo path (the configured
detector, the photo quality limits, the flip-fused dlib descriptors), with ``photos.jitter`` off and on in the same
run. FNIR at FPIR x takes the threshold from the non-mated searches (the DET convention). The people are split by a
hash of their name (``bench/fpir_dev.py``'s halves): the development half chose to ship jitter (and which moves);
the report half was never used to choose. The impostor and genuine score quantiles are over all pairs of the fold's
photos (a shift there moves every threshold measured on unjittered descriptors: see the floor and prior tail).

Prints a table and writes ``bench/results/jitter.json``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
LFW = ROOT.parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"
CACHE = Path("/tmp/metrosight-fpir-cache")


def half(name: str) -> str:
    return "dev" if int(hashlib.sha1(name.encode()).hexdigest(), 16) % 2 == 0 else "report"


def figures(recs, gallery, mated, nonmated):  # type: ignore[no-untyped-def]
    from metrosight.eval.calibrate import fused

    def desc(r):  # type: ignore[no-untyped-def]
        return None if r.descriptor is None else fused(r.descriptor[None], r.flipped[None])[0]

    ng, nm = len(gallery), len(mated)
    g = [(r.label, desc(r)) for r in recs[:ng] if r.descriptor is not None]
    names = [k for k, _ in g]
    G = np.stack([d for _, d in g])
    out = {}
    for sub in ("all", "dev", "report"):
        keep = (lambda k: True) if sub == "all" else (lambda k, s=sub: half(k) == s)  # noqa: E731
        M = [r for r in recs[ng : ng + nm] if keep(r.label)]
        N = [r for r in recs[ng + nm :] if keep(r.label)]
        nmax = np.sort([float((G @ desc(r)).max()) for r in N if r.descriptor is not None])[::-1]
        hits = []
        for r in M:
            if r.descriptor is None or r.label not in names:
                hits.append((False, -9.0))
                continue
            s = G @ desc(r)
            j = int(np.argmax(s))
            hits.append((names[j] == r.label, float(s[j])))
        row = {"mated": len(M), "non_mated": len(N), "rank1": float(np.mean([ok for ok, _ in hits]))}
        for f in (0.003, 0.01, 0.03):
            allowed = int(np.floor(f * len(N)))
            t = nmax[allowed] + 1e-9 if allowed < len(nmax) else -9.0
            row[f"fnir@{f:g}"] = 1 - sum(ok and v >= t for ok, v in hits) / len(hits)
        out[sub] = row
    return out


def score_quantiles(recs):  # type: ignore[no-untyped-def]
    from metrosight.eval.calibrate import fused

    ok = [r for r in recs if r.descriptor is not None]
    X = np.stack([fused(r.descriptor[None], r.flipped[None])[0] for r in ok])
    P = np.array([r.label for r in ok])
    iu = np.triu_indices(len(ok), 1)
    s = (X @ X.T)[iu]
    same = P[iu[0]] == P[iu[1]]
    imp, gen = s[~same], s[same]
    return {
        "impostor_pairs": int(len(imp)),
        "impostor_q99": float(np.quantile(imp, 0.99)),
        "impostor_q999": float(np.quantile(imp, 0.999)),
        "impostor_q9999": float(np.quantile(imp, 0.9999)),
        "genuine_median": float(np.median(gen)),
        "genuine_q10": float(np.quantile(gen, 0.1)),
    }


def main() -> None:
    from metrosight.config.home import Home
    from metrosight.config.model import Settings
    from metrosight.eval.extract import encode_all, metrosight_encoder

    people = {d.name: sorted(d.glob("*.jpg")) for d in sorted(LFW.iterdir()) if d.is_dir()}
    gallery = {k: v[0] for k, v in people.items() if len(v) >= 2}
    mated = [(k, p) for k, v in people.items() if len(v) >= 2 for p in v[1:]]
    nonmated = [(k, v[0]) for k, v in people.items() if len(v) == 1]
    items = [(p, k) for k, p in gallery.items()] + [(p, k) for k, p in mated] + [(p, k) for k, p in nonmated]
    every = [(p, k) for k, v in people.items() for p in v]
    result: dict[str, object] = {
        "protocol": "LFW fold 1, one photo a person; FNIR at FPIR from the non-mated searches (DET)",
        "chosen_on": "development half (sha1(name) even); report half never used to choose",
        "runs": {},
    }
    rows = []
    for jitter in (False, True):
        settings = Settings.model_validate({"photos": {"jitter": jitter}})
        enc = metrosight_encoder(settings, Home.resolve(None), flip=True)
        recs = encode_all(items, enc, CACHE)
        label = "nine moved alignments (photos.jitter, shipped)" if jitter else "one alignment"
        fig = figures(recs, gallery, mated, nonmated)
        quant = score_quantiles(encode_all(every, enc, CACHE))
        result["runs"][label] = {"figures": fig, "scores": quant}
        rows.append((label, fig, quant))
    print(f"{'method':48} {'half':7} {'rank-1':>7} {'FNIR@0.003':>10} {'@0.01':>7} {'@0.03':>7}")
    for label, fig, _ in rows:
        for sub, r in fig.items():
            print(
                f"{label:48} {sub:7} {r['rank1']:7.3f} {r['fnir@0.003']:10.3f} {r['fnir@0.01']:7.3f} "
                f"{r['fnir@0.03']:7.3f}"
            )
    print(f"{'scores over all fold-1 pairs':48} {'imp q.99':>9} {'q.999':>7} {'q.9999':>7} {'gen median':>10}")
    for label, _, q in rows:
        print(
            f"{label:48} {q['impostor_q99']:9.4f} {q['impostor_q999']:7.4f} {q['impostor_q9999']:7.4f} "
            f"{q['genuine_median']:10.4f}"
        )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "jitter.json").write_text(json.dumps(result, indent=2))
    print(f"json: {out / 'jitter.json'}")


if __name__ == "__main__":
    main()
