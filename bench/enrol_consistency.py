"""How far apart two enrolment photos of one person can fall: the bound below which one entry's photos are refused
as "clearly another person" (:data:`metrosight.recognize.consistency.OTHER_PERSON_BELOW`).

    python bench/enrol_consistency.py

Data: LFW fold 1 (807 photos of 435 people). Every photo goes through enrolment's own face step
(:func:`metrosight.recognize.photo.enrolment_face` with the default detector, embedder, mirror fusion and photo
limits); photos enrolment refuses are left out (they would never be compared). Pairs: every two photos of one person
(genuine) and every two photos of different people (impostor) among the photos kept, plus the 300 + 300 labelled
pairs of ``pairs.txt``. Split: people at even positions in name order *choose* the bound; people at odd
positions *report* it (genuine pairs refused, impostor pairs caught). A few hundred genuine pairs cannot show a
0.1 % tail by counting, so the bound is the lower of the counted one and the 0.1 % quantile of a log-normal
fitted to the choosing half's genuine distances (1 − cosine). An impostor pair is in a split when both people are.

Prints a table and writes ``bench/results/enrol_consistency.json``.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
GENUINE_REFUSED_AT_MOST = 0.001


def _descriptors(lfw: Path) -> tuple[dict[str, np.ndarray], int]:
    from metrosight.config.model import Settings
    from metrosight.ingest.images import read_photo
    from metrosight.recognize.photo import PhotoRefused, enrolment_face
    from metrosight.recognize.registry import embedder_for
    from metrosight.services.models import make_face_detector

    s = Settings()
    det, emb = make_face_detector(s), embedder_for(s, RESULTS / "models")
    out: dict[str, np.ndarray] = {}
    refused = 0
    for path in sorted(lfw.glob("*/*.jpg")):
        try:
            f = enrolment_face(
                read_photo(path).image,
                det,
                emb,
                s.photos.min_face_px,
                s.photos.min_blur_var,
                None,
                s.photos.max_yaw_ratio,
            )
        except PhotoRefused:
            refused += 1
            continue
        d = np.asarray(f.descriptor, dtype=np.float64)
        out[f"{path.parent.name}/{path.name}"] = d / np.linalg.norm(d)
    return out, refused


def _pairs(desc: dict[str, np.ndarray], people: set[str]) -> tuple[np.ndarray, np.ndarray]:
    keys = sorted(k for k in desc if k.split("/")[0] in people)
    gen, imp = [], []
    for a, b in itertools.combinations(keys, 2):
        c = float(desc[a] @ desc[b])
        (gen if a.split("/")[0] == b.split("/")[0] else imp).append(c)
    return np.array(gen), np.array(imp)


def _labelled(desc: dict[str, np.ndarray], lfw: Path, people: set[str]) -> tuple[np.ndarray, np.ndarray]:
    gen, imp = [], []
    lines = (lfw.parent / "pairs.txt").read_text().split("\n")[1:]
    for line in lines:
        f = line.split()
        if len(f) == 3:
            a, b = f"{f[0]}/{f[0]}_{int(f[1]):04d}.jpg", f"{f[0]}/{f[0]}_{int(f[2]):04d}.jpg"
            into, who = gen, {f[0]}
        elif len(f) == 4:
            a, b = f"{f[0]}/{f[0]}_{int(f[1]):04d}.jpg", f"{f[2]}/{f[2]}_{int(f[3]):04d}.jpg"
            into, who = imp, {f[0], f[2]}
        else:
            continue
        if who <= people and a in desc and b in desc:
            into.append(float(desc[a] @ desc[b]))
    return np.array(gen), np.array(imp)


def _empirical(genuine: np.ndarray) -> float:
    """The highest bound (0.01 steps) under which at most 0.1 % of ``genuine`` fall."""
    for t in np.arange(1.0, -1.0, -0.01):
        if np.mean(genuine < t) <= GENUINE_REFUSED_AT_MOST:
            return round(float(t), 2)
    return -1.0


def _fitted(genuine: np.ndarray) -> float:
    """The 0.1 % quantile of a log-normal fitted to ``1 − cosine`` of ``genuine`` (a few hundred pairs cannot show a
    0.1 % tail by counting; the distance of two photos of one person is right-skewed, so its log is fitted)."""
    z = 3.090232  # standard normal quantile of 0.999
    d = np.log(np.maximum(1.0 - genuine, 1e-6))
    return float(1.0 - np.exp(d.mean() + z * d.std(ddof=1)))


def _choose(genuine: np.ndarray) -> tuple[float, float, float]:
    """The bound: the lower of the empirical and the fitted 0.1 % quantile, rounded down to 0.01 (cautious for
    genuine photos: refusing one only costs the operator a retry, but it should be rare)."""
    emp, fit = _empirical(genuine), _fitted(genuine)
    return math.floor(min(emp, fit) * 100) / 100, emp, fit


def main() -> None:
    lfw = DATA / "lfw" / "lfw-deepfunneled"
    t0 = time.time()
    desc, refused = _descriptors(lfw)
    people = sorted(p.name for p in lfw.iterdir() if p.is_dir())
    split = {"choose": set(people[0::2]), "report": set(people[1::2])}
    rows = {}
    for name, who in split.items():
        g, i = _pairs(desc, who)
        lg, li = _labelled(desc, lfw, who)
        rows[name] = {"all": (g, i), "pairs.txt": (lg, li)}
    bound, emp, fit = _choose(rows["choose"]["all"][0])
    result: dict[str, object] = {
        "data": "LFW fold 1 (lfw-deepfunneled, 807 photos)",
        "photos_refused_by_enrolment": refused,
        "photos_kept": len(desc),
        "rule": f"highest cosine (0.01 steps) below which at most {GENUINE_REFUSED_AT_MOST:.1%} of the choose split's "
        "genuine pairs fall",
        "bound": bound,
        "empirical_choice": emp,
        "fitted_0.1%_quantile": fit,
        "seconds": round(time.time() - t0, 1),
        "splits": {},
    }
    print(
        f"photos kept {len(desc)}, refused by enrolment {refused}; bound chosen on 'choose': {bound:.2f} "
        f"(empirical {emp:.2f}, log-normal-fit 0.1% quantile {fit:.3f})"
    )
    print(f"{'split':8} {'pairs':10} {'genuine':>8} {'gen<bound':>10} {'min gen':>8} {'impostor':>9} {'imp<bound':>10}")
    for name, sets in rows.items():
        out = {}
        for kind, (g, i) in sets.items():
            out[kind] = {
                "genuine": len(g),
                "genuine_refused": int(np.sum(g < bound)),
                "genuine_refused_share": float(np.mean(g < bound)) if len(g) else None,
                "genuine_min": float(g.min()) if len(g) else None,
                "genuine_p01": float(np.quantile(g, 0.001)) if len(g) else None,
                "impostor": len(i),
                "impostor_caught": int(np.sum(i < bound)),
                "impostor_caught_share": float(np.mean(i < bound)) if len(i) else None,
                "impostor_median": float(np.median(i)) if len(i) else None,
                "genuine_quantiles": {q: float(np.quantile(g, float(q))) for q in ("0.01", "0.05", "0.5")},
                "impostor_quantiles": {q: float(np.quantile(i, float(q))) for q in ("0.5", "0.9", "0.99")},
            }
            o = out[kind]
            print(
                f"{name:8} {kind:10} {o['genuine']:>8} {o['genuine_refused']:>4} ({o['genuine_refused_share']:.2%}) "
                f"{o['genuine_min']:>8.3f} {o['impostor']:>9} {o['impostor_caught_share']:>10.1%}"
            )
        result["splits"][name] = out  # type: ignore[index]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "enrol_consistency.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {RESULTS / 'enrol_consistency.json'}")


if __name__ == "__main__":
    main()
