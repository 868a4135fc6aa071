"""Which face of an enrolment photo is the subject's: how often :func:`metrosight.recognize.photo.dominant_face`
takes a face, and how often it takes the wrong one, on real photos with other people in them.

    python bench/enrol_dominance.py

Data: LFW fold 1 (807 news photos, 153 of them with two or more faces found). Faces are found as enrolment finds
them (the configured detector, dlib 5-point landmarks, the photo checks, the cut-by-edge check). Two truths:

- *identity*: for a person with other photos holding a single face, the subject is the face whose descriptor is
  nearest those photos' mean (cosine ≥ 0.9; 90 of the 153 photos): independent of where the face is;
- *centre*: otherwise the face nearest the photo's centre (LFW photos are centred on their subject). On the 90
  photos with both, the two truths agree on every one — so no rule that trusts the centre can be caught taking a
  wrong face on LFW, and :data:`~metrosight.recognize.photo.CENTRE_MARGIN` is a safety setting, not fitted here
  (the sweep shows what it costs in refusals).

The people at even positions in name order chose :data:`~metrosight.recognize.photo.DOMINANCE_RATIO` (swept below,
with the size condition alone); the people at odd positions report. The old rules are shown for comparison: any
second face at least half as tall as the largest refuses; and the previous rule (the largest whole face, every
other under 0.8 of its height, or under half and further from the centre, without the photo checks). A refusal here
is not a lost person: the operator is shown the numbered faces and chooses one.

Prints a table and writes ``bench/results/enrol_dominance.json``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DATA = ROOT.parent / "shared" / "data"


def previous_rule(boxes, cut, size, usable=None):  # type: ignore[no-untyped-def]
    """The rule shipped before the centre margin and the photo checks counted (for comparison)."""
    whole = [i for i in range(len(boxes)) if not cut[i]]
    if not whole:
        return None
    s = max(whole, key=lambda i: boxes[i].height)
    cx, cy = size[0] / 2, size[1] / 2

    def off(i):  # type: ignore[no-untyped-def]
        return math.hypot(boxes[i].center[0] - cx, boxes[i].center[1] - cy)

    for i in range(len(boxes)):
        if i == s:
            continue
        ratio = boxes[i].height / max(boxes[s].height, 1e-6)
        if cut[i]:
            if ratio >= 2 or (ratio >= 0.8 and off(i) < off(s)):
                return None
            continue
        if ratio >= 0.8 or (ratio >= 0.5 and off(i) < off(s)):
            return None
    return s


def main() -> None:
    import numpy as np

    from metrosight.config.home import Home
    from metrosight.config.model import Settings
    from metrosight.ingest.images import read_photo
    from metrosight.recognize import photo as ph
    from metrosight.recognize.quality import cut_by_edge
    from metrosight.recognize.registry import embedder_for
    from metrosight.services.models import make_face_detector

    settings = Settings()
    lim = settings.photos
    det = make_face_detector(settings)
    emb = embedder_for(settings, Home.resolve(None).cache / "models")
    lfw = DATA / "lfw" / "lfw-deepfunneled"
    people = sorted(p.name for p in lfw.iterdir() if p.is_dir())
    half = {p: ("dev" if i % 2 == 0 else "heldout") for i, p in enumerate(people)}
    photos = []
    for path in sorted(lfw.glob("*/*.jpg")):
        img = read_photo(path).image
        h, w = img.shape[:2]
        faces = ph._assessed(img, det, lim.min_face_px, lim.min_blur_var, lim.max_yaw_ratio)
        desc = emb.embed(np.stack([c for _, c, _ in faces])) if faces else np.zeros((0, 128), np.float32)
        photos.append(
            {
                "person": path.parent.name,
                "split": half[path.parent.name],
                "size": (w, h),
                "boxes": [d.box for d, _, _ in faces],
                "cut": [cut_by_edge(d.box, d.landmarks, (w, h)) is not None for d, _, _ in faces],
                "usable": [q.problem is None for _, _, q in faces],
                "desc": np.asarray(desc, np.float32),
            }
        )

    def unit(v):  # type: ignore[no-untyped-def]
        return v / max(float(np.linalg.norm(v)), 1e-12)

    def centre_truth(p):  # type: ignore[no-untyped-def]
        cx, cy = p["size"][0] / 2, p["size"][1] / 2
        b = p["boxes"]
        return min(range(len(b)), key=lambda i: math.hypot(b[i].center[0] - cx, b[i].center[1] - cy))

    agree = known = 0
    for p in photos:
        if len(p["boxes"]) < 2:
            continue
        refs = [
            unit(o["desc"][0]) for o in photos if o["person"] == p["person"] and o is not p and len(o["boxes"]) == 1
        ]
        sims = [float(unit(d) @ unit(np.mean(refs, axis=0))) for d in p["desc"]] if refs else []
        best = int(np.argmax(sims)) if sims else -1
        p["truth"] = best if sims and sims[best] >= 0.9 else centre_truth(p)
        p["by_identity"] = bool(sims and sims[best] >= 0.9)
        if p["by_identity"]:
            known += 1
            agree += best == centre_truth(p)

    def measure(rule):  # type: ignore[no-untyped-def]
        out = {}
        for split in ("dev", "heldout"):
            sel = [p for p in photos if p["split"] == split]
            multi = [p for p in sel if len(p["boxes"]) > 1]
            taken = wrong = wrong_identity = 0
            for p in multi:
                k = rule(p["boxes"], p["cut"], p["size"], p["usable"])
                if k is not None:
                    taken += 1
                    wrong += k != p["truth"]
                    wrong_identity += p["by_identity"] and k != p["truth"]
            out[split] = {
                "photos": len(sel),
                "several_faces": len(multi),
                "taken": taken,
                "wrong": wrong,
                "wrong_by_identity": wrong_identity,
                "refused": len(multi) - taken,
                "refused_share_of_photos": (len(multi) - taken) / len(sel),
            }
        return out

    def old_rule(boxes, cut, size, usable):  # type: ignore[no-untyped-def]
        big = max(b.height for b in boxes)
        near = [i for i, b in enumerate(boxes) if b.height >= 0.5 * big]
        return near[0] if len(near) == 1 else None

    def size_only(boxes, cut, size, usable):  # type: ignore[no-untyped-def]
        """The size part of the rule alone (no centre condition), as the ratio was chosen."""
        whole = [i for i in range(len(boxes)) if not cut[i]]
        if not whole:
            return None
        s = max(whole, key=lambda i: boxes[i].height)
        others = [boxes[i].height / boxes[s].height for i in whole if i != s]
        return s if all(r < ph.DOMINANCE_RATIO for r in others) else None

    rows = {
        "old rule (2nd face ≥ 0.5 × largest refuses)": measure(old_rule),
        "previous rule (largest whole face, ratio 0.8)": measure(previous_rule),
    }
    chosen_ratio, chosen_margin = ph.DOMINANCE_RATIO, ph.CENTRE_MARGIN
    for r in (0.6, 0.7, 0.8, 0.9, 1.01):
        ph.DOMINANCE_RATIO = r
        rows[f"  size alone, ratio {r:g}{' (shipped)' if r == chosen_ratio else ''}"] = measure(size_only)
    ph.DOMINANCE_RATIO = chosen_ratio
    for m in (0.25, 0.5, 0.75, 1.0):
        ph.CENTRE_MARGIN = m
        rows[f"centre margin {m:g}{' (shipped)' if m == chosen_margin else ''}"] = measure(ph.dominant_face)
    ph.CENTRE_MARGIN = chosen_margin
    rows["shipped, photo checks not counted"] = measure(lambda b, c, s, u: ph.dominant_face(b, c, s))
    print(f"multi-face photos with an identity truth: {known}; the centre truth agrees on {agree}")
    print(
        f"{'rule':48} {'split':8} {'photos':>6} {'≥2 faces':>8} {'taken':>6} {'wrong':>6} {'(by id)':>7} {'refused':>8}"
    )
    for name, r in rows.items():
        for split, v in r.items():
            print(
                f"{name:48} {split:8} {v['photos']:>6} {v['several_faces']:>8} {v['taken']:>6} {v['wrong']:>6} "
                f"{v['wrong_by_identity']:>7} {v['refused']:>4} ({100 * v['refused_share_of_photos']:.1f}%)"
            )
    res = ROOT / "bench" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "enrol_dominance.json").write_text(
        json.dumps(
            {
                "rows": rows,
                "shipped_ratio": chosen_ratio,
                "shipped_centre_margin": chosen_margin,
                "identity_truths": known,
                "centre_agrees_with_identity": agree,
            },
            indent=2,
        )
    )
    print(f"json: {res / 'enrol_dominance.json'}")


if __name__ == "__main__":
    main()
