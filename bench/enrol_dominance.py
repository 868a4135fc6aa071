"""Which face of an enrolment photo is the subject's: how often :func:`metrosight.recognize.photo.dominant_face`
takes a face, and how often it takes the wrong one, on real photos with other people in them.

    python bench/enrol_dominance.py

Data: LFW fold 1 (807 news photos, 153 of them with two or more faces found). LFW photos are centred on their
subject, so the face nearest the centre is the subject's (the truth here). The people at even positions in name
order chose :data:`~metrosight.recognize.photo.DOMINANCE_RATIO` (the ratios swept below); the people at odd positions
report it. Faces are found as enrolment finds them (the configured detector, dlib 5-point landmarks, the cut-by-edge
check). The old rule (any second face at least half as tall as the largest refuses the photo) is shown for
comparison. A refusal here is not a lost person: the operator is shown the numbered faces and chooses one.

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


def main() -> None:
    from metrosight.config.model import Settings
    from metrosight.ingest.images import read_photo
    from metrosight.recognize import photo as ph
    from metrosight.recognize.quality import cut_by_edge
    from metrosight.services.models import make_face_detector

    det = make_face_detector(Settings())
    lfw = DATA / "lfw" / "lfw-deepfunneled"
    people = sorted(p.name for p in lfw.iterdir() if p.is_dir())
    half = {p: ("dev" if i % 2 == 0 else "heldout") for i, p in enumerate(people)}
    photos = []
    for path in sorted(lfw.glob("*/*.jpg")):
        img = read_photo(path).image
        h, w = img.shape[:2]
        faces = [d for d in det.detect(img) if d.landmarks is not None]
        photos.append(
            (
                path,
                half[path.parent.name],
                (w, h),
                [d.box for d in faces],
                [cut_by_edge(d.box, d.landmarks, (w, h)) is not None for d in faces],
            )
        )

    def truth(size, boxes):  # type: ignore[no-untyped-def]
        cx, cy = size[0] / 2, size[1] / 2
        return min(range(len(boxes)), key=lambda i: math.hypot(boxes[i].center[0] - cx, boxes[i].center[1] - cy))

    def measure(rule):  # type: ignore[no-untyped-def]
        out = {}
        for split in ("dev", "heldout"):
            sel = [p for p in photos if p[1] == split]
            multi = [p for p in sel if len(p[3]) > 1]
            taken = wrong = 0
            for _, _, size, boxes, cut in multi:
                k = rule(boxes, cut, size)
                if k is not None:
                    taken += 1
                    wrong += k != truth(size, boxes)
            out[split] = {
                "photos": len(sel),
                "several_faces": len(multi),
                "taken": taken,
                "wrong": wrong,
                "refused": len(multi) - taken,
                "refused_share_of_photos": (len(multi) - taken) / len(sel),
            }
        return out

    def old_rule(boxes, cut, size):  # type: ignore[no-untyped-def]
        big = max(b.height for b in boxes)
        near = [i for i, b in enumerate(boxes) if b.height >= 0.5 * big]
        return near[0] if len(near) == 1 else None

    def size_only(boxes, cut, size):  # type: ignore[no-untyped-def]
        """The size part of the rule alone (no "further from the centre" condition): LFW photos are centred on
        their subject by construction, so the centre condition is an unusually good cue here; the ratio is chosen
        so that size alone picks no wrong face on the development people."""
        whole = [i for i in range(len(boxes)) if not cut[i]]
        if not whole:
            return None
        s = max(whole, key=lambda i: boxes[i].height)
        others = [boxes[i].height / boxes[s].height for i in whole if i != s]
        return s if all(r < ph.DOMINANCE_RATIO for r in others) else None

    rows = {"old rule (2nd face ≥ 0.5 × largest refuses)": measure(old_rule)}
    chosen = ph.DOMINANCE_RATIO
    for r in (0.6, 0.7, 0.8, 0.9, 1.01):
        ph.DOMINANCE_RATIO = r
        rows[f"dominance ratio {r:g}{' (shipped)' if r == chosen else ''}"] = measure(ph.dominant_face)
        rows[f"  size alone, ratio {r:g}"] = measure(size_only)
    ph.DOMINANCE_RATIO = chosen
    print(f"{'rule':46} {'split':8} {'photos':>6} {'≥2 faces':>8} {'taken':>6} {'wrong':>6} {'refused':>8}")
    for name, r in rows.items():
        for split, v in r.items():
            print(
                f"{name:46} {split:8} {v['photos']:>6} {v['several_faces']:>8} {v['taken']:>6} {v['wrong']:>6} "
                f"{v['refused']:>4} ({100 * v['refused_share_of_photos']:.1f}%)"
            )
    res = ROOT / "bench" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "enrol_dominance.json").write_text(json.dumps({"rows": rows, "shipped_ratio": chosen}, indent=2))
    print(f"json: {res / 'enrol_dominance.json'}")


if __name__ == "__main__":
    main()
