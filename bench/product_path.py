"""Must-show 1 of issue 17: the product path on LFW fold 1, through the product's own commands.

Protocol: gallery = the first photo of every LFW fold-1 person with 2+ photos, enrolled with the real
``metrosight enroll --from-dir`` by one user and approved by a second; mated searches = those persons' other photos;
non-mated searches = the one-photo people; every search through ``metrosight identify --json`` (photos batched into
one invocation, so the models load once) at the shipped defaults, then again with ``recognition.target_fpir: 0.01``
(the achieved rate should follow the target). The face_recognition package's method (dlib HOG + ResNet, tolerance
0.6; ``pip install --no-deps face_recognition`` or ``.[bench]``) runs on the same searches in the same run.

Which data chose what: the shipped offline settings (floor, prior tail, ambiguity margin) were chosen by
``bench/fpir_dev.py`` on the development fold (att_faces, dlib_johns, LFW fold-1 people whose sha1(name) is even);
the figures below are given for all of fold 1 and separately for the *report* half (sha1(name) odd, never used to
choose anything). The threshold itself is computed by the product from its own gallery at run time.

Run: PYTHONPATH=src python bench/product_path.py   → table on stdout, JSON in bench/results/product_path.json
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LFW = ROOT.parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"
CACHE = Path(os.environ.get("METROSIGHT_BENCH_CACHE", "/tmp/metrosight-fpir-cache"))
AUTH = ["--legal-basis", "bench", "--authority", "bench", "--reference", "B-1", "--expires", "30d"]


def half(name: str) -> str:
    return "dev" if int(hashlib.sha1(name.encode()).hexdigest(), 16) % 2 == 0 else "report"


def pw(user: str) -> str:
    return "Bp-" + hashlib.sha256(f"metrosight bench user {user}".encode()).hexdigest()[:20]


def cli(home: Path, *args: str, user: str | None = None, stdin: str | None = None, config: Path | None = None):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    env.pop("METROSIGHT_TOKEN", None)
    # the bench measures recognition, not sign-in: the admin and approvers here work without a second factor
    env["METROSIGHT__TOTP__REQUIRED_ROLES"] = "[]"
    if user:
        env["METROSIGHT_PASSWORD"] = pw(user)
    argv = [sys.executable, "-c", "from metrosight.cli import entrypoint; entrypoint()", "--home", str(home)]
    if config is not None:
        argv += ["--config", str(config)]
    argv += (["--as", user] if user else []) + list(args)
    r = subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True)
    if r.returncode != 0 and not (r.returncode == 2 and args[0] == "identify"):
        raise SystemExit(f"{' '.join(args[:3])} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return r


def searches(out: str) -> dict[str, list[dict]]:
    res = {}
    for line in out.splitlines():
        if line.startswith("{"):
            o = json.loads(line)
            res[Path(o["photo"]).name] = [f for f in o["faces"] if f.get("subject")]
    return res


class FaceRecognitionPackage:
    """The face_recognition package as its users call it: ``face_locations`` (HOG, upsample 1), then
    ``face_encodings`` (5-point landmarks, one jitter) of the photo's subject face (largest, most central)."""

    name = "face_recognition-package"
    tag = "hog1"

    def encode(self, image, path, label):  # type: ignore[no-untyped-def]
        import face_recognition

        from metrosight.core.types import Box, Detection
        from metrosight.eval.extract import FaceRecord, subject_face

        image = np.ascontiguousarray(image)
        locs = face_recognition.face_locations(image, number_of_times_to_upsample=1)
        dets = [Detection(Box(float(le), float(t), float(r), float(b)), 1.0, None) for t, r, b, le in locs]
        h, w = image.shape[:2]
        chosen = subject_face(dets, w, h)
        if chosen is None:
            return FaceRecord(path, label, None, problem="no face found")
        enc = face_recognition.face_encodings(image, [locs[dets.index(chosen)]], num_jitters=1)
        return FaceRecord(path, label, np.asarray(enc[0], np.float32))


def main() -> None:
    people: dict[str, list[Path]] = {}
    for d in sorted(LFW.iterdir()):
        if d.is_dir():
            people[d.name] = sorted(d.glob("*.jpg"))
    gallery = {k: v[0] for k, v in people.items() if len(v) >= 2}
    mated = [(k, p) for k, v in people.items() if len(v) >= 2 for p in v[1:]]
    nonmated = [(k, v[0]) for k, v in people.items() if len(v) == 1]
    name_of = {k: k.replace("_", " ") for k in people}

    work = Path(tempfile.mkdtemp(prefix="metrosight-bench-"))
    home = work / "home"
    gdir = work / "gallery"
    for k, p in gallery.items():
        (gdir / name_of[k]).mkdir(parents=True)
        (gdir / name_of[k] / p.name).symlink_to(p.resolve())
    t0 = time.time()
    cli(
        home,
        "user",
        "add",
        "ada",
        "-r",
        "admin",
        "-r",
        "approver",
        "-r",
        "operator",
        "-r",
        "auditor",
        stdin=f"{pw('ada')}\n{pw('ada')}\n",
    )
    cli(home, "user", "add", "bob", "-r", "approver", "-r", "operator", user="ada", stdin=f"{pw('bob')}\n{pw('bob')}\n")
    cli(home, "watchlist", "create", "wanted", "--category", "wanted", user="ada")
    r = cli(home, "enroll", "-w", "wanted", *AUTH, "--from-dir", str(gdir), user="ada")
    refused = {}
    for line in r.stdout.splitlines():
        if line.startswith("refused ") and not line.startswith("refused person "):  # per photo, not the summary
            path, _, reason = line[len("refused ") :].partition(": ")
            where = Path(path)  # a photo (its folder names the person), or the person's folder itself
            refused[where.name if where.is_dir() else where.parent.name] = reason
    enrolled = {name_of[k] for k in gallery if name_of[k] not in refused}
    cli(home, "watchlist", "approve", "wanted", "--all-pending", user="bob")
    t_enrol = time.time() - t0

    photos = [p for _, p in mated] + [p for _, p in nonmated]
    figures: dict[str, dict] = {}
    cfg = work / "loose.yaml"
    cfg.write_text("recognition:\n  target_fpir: 0.01\n")
    for label, config in (("defaults (target_fpir 0.003)", None), ("target_fpir 0.01", cfg)):
        t1 = time.time()
        r = cli(home, "identify", "--json", *map(str, photos), user="bob", config=config)
        figures[label] = {"results": searches(r.stdout), "seconds": time.time() - t1}

    # rank-1 and the face_recognition baseline on the same searches (descriptors of the same photos)
    from metrosight.eval.extract import encode_all

    base = encode_all(
        [(p, k) for k, p in gallery.items()] + [(p, k) for k, p in mated + nonmated], FaceRecognitionPackage(), CACHE
    )
    bg = {r.label: r.descriptor for r in base[: len(gallery)] if r.descriptor is not None}
    g_names = list(bg)
    G = np.stack([bg[k] for k in g_names])

    def baseline(items):  # type: ignore[no-untyped-def]
        recs = base[len(gallery) :]
        lookup = {str(r.path): r for r in recs}
        out = []
        for _, p in items:
            rec = lookup[str(p)]
            if rec.descriptor is None:
                out.append((None, None))
                continue
            d = np.linalg.norm(G - rec.descriptor, axis=1)
            j = int(d.argmin())
            out.append((g_names[j], float(d[j])))
        return out

    b_m, b_n = baseline(mated), baseline(nonmated)
    report: dict[str, object] = {
        "protocol": __doc__.split("\n\n")[1],
        "settings_chosen_on": "bench/fpir_dev.py development fold: att_faces, dlib_johns, LFW fold-1 people with "
        "sha1(name) even",
        "report_half": "LFW fold-1 people with sha1(name) odd (never used to choose settings)",
        "gallery_persons": len(gallery),
        "enrolled": len(enrolled),
        "enrolment_acceptance": len(enrolled) / len(gallery),
        "refused": refused,
        "mated_searches": len(mated),
        "non_mated_searches": len(nonmated),
        "fpir_resolution_all": 1 / len(nonmated),
        "enrol_seconds": t_enrol,
        "runs": {},
    }
    rows = []
    for subset in ("all", "report"):
        keep = (lambda k: True) if subset == "all" else (lambda k: half(k) == "report")  # noqa: E731
        m = [(k, p) for k, p in mated if keep(k)]
        n = [(k, p) for k, p in nonmated if keep(k)]
        for label, f in figures.items():
            res = f["results"]
            fp = sum(1 for _, p in n if res.get(p.name))
            hit = sum(1 for k, p in m if any(x["subject"] == name_of[k] for x in res.get(p.name, [])))
            m_enr = [(k, p) for k, p in m if name_of[k] in enrolled]
            hit_enr = sum(1 for k, p in m_enr if any(x["subject"] == name_of[k] for x in res.get(p.name, [])))
            wrong = sum(1 for k, p in m if res.get(p.name) and not any(x["subject"] == name_of[k] for x in res[p.name]))
            amb = sum(1 for k, p in m if any(x.get("ambiguous") for x in res.get(p.name, [])))
            row = {
                "subset": subset,
                "run": label,
                "mated": len(m),
                "non_mated": len(n),
                "fpir": fp / len(n),
                "false_candidates": fp,
                "fpir_resolution": 1 / len(n),
                "fnir": 1 - hit / len(m),
                "fnir_enrolled": 1 - hit_enr / max(len(m_enr), 1),
                "mated_of_enrolled": len(m_enr),
                "wrong_person": wrong,
                "shown_ambiguous": amb,
                "seconds": round(f["seconds"], 1),
            }
            report["runs"].setdefault(subset, []).append(row)
            rows.append(("metrosight " + label, row))
        bm = [x for (k, _), x in zip(mated, b_m, strict=True) if keep(k)]
        bn = [x for (k, _), x in zip(nonmated, b_n, strict=True) if keep(k)]
        b_rank1 = sum(
            1 for (k, _), (who, _) in zip([x for x in mated if keep(x[0])], bm, strict=True) if who == k
        ) / len(m)
        b_fnir = 1 - sum(
            1 for (k, _), (who, d) in zip([x for x in mated if keep(x[0])], bm, strict=True) if who == k and d <= 0.6
        ) / len(m)
        b_fpir = sum(1 for who, d in bn if who is not None and d <= 0.6) / len(n)
        brow = {
            "subset": subset,
            "run": "face_recognition tolerance 0.6",
            "mated": len(m),
            "non_mated": len(n),
            "fpir": b_fpir,
            "fnir": b_fnir,
            "rank1": b_rank1,
            "fpir_resolution": 1 / len(n),
        }
        report["runs"].setdefault(subset, []).append(brow)
        rows.append(("face_recognition (tolerance 0.6)", brow))

    # metrosight rank-1 over the same searches: the product's own descriptors (eval encoder = identify's path)
    from metrosight.config.home import Home
    from metrosight.config.model import Settings
    from metrosight.eval.calibrate import fused
    from metrosight.eval.extract import metrosight_encoder

    enc = metrosight_encoder(Settings(), Home.resolve(None), flip=True)
    recs = encode_all([(p, k) for k, p in gallery.items()] + [(p, k) for k, p in mated], enc, CACHE)
    g = {
        r.label: fused(r.descriptor[None], r.flipped[None])[0]
        for r in recs[: len(gallery)]
        if r.descriptor is not None and r.label.replace("_", " ") in enrolled
    }
    gn = list(g)
    GM = np.stack([g[k] for k in gn])
    for subset in ("all", "report"):
        ok = tot = ok_e = tot_e = 0
        for r in recs[len(gallery) :]:
            if subset == "report" and half(r.label) != "report":
                continue
            tot += 1
            enr = r.label.replace("_", " ") in enrolled
            tot_e += enr
            if r.descriptor is not None:
                right = gn[int(np.argmax(GM @ fused(r.descriptor[None], r.flipped[None])[0]))] == r.label
                ok += right
                ok_e += right and enr
        for row in report["runs"][subset]:
            if row["run"].startswith("defaults"):
                row["rank1"] = ok / tot
                row["rank1_enrolled"] = ok_e / max(tot_e, 1)

    print(f"enrolment: {len(enrolled)}/{len(gallery)} accepted ({len(enrolled) / len(gallery):.1%}) in {t_enrol:.0f}s")
    print("FNIR and rank-1 over every mated search; in brackets over the searches of persons whose photo was enrolled")
    print(
        f"{'subset':7} {'method':42} {'mated':>5} {'nonm':>5} {'FP':>3} {'FPIR':>7} {'(res.)':>7} {'FNIR':>15} "
        f"{'rank-1':>15}"
    )
    for name, r in rows:
        r1 = f"{r['rank1']:.3f}" if "rank1" in r else ""
        if "rank1_enrolled" in r:
            r1 += f" ({r['rank1_enrolled']:.3f})"
        fn = f"{r['fnir']:.3f}" + (f" ({r['fnir_enrolled']:.3f})" if "fnir_enrolled" in r else "")
        fp = r.get("false_candidates", round(r["fpir"] * r["non_mated"]))
        print(
            f"{r['subset']:7} {name:42} {r['mated']:5} {r['non_mated']:5} {fp:3} {r['fpir']:7.4f} "
            f"{r['fpir_resolution']:7.4f} {fn:>15} {r1:>15}"
        )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "product_path.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"json: {out / 'product_path.json'}")


if __name__ == "__main__":
    main()
