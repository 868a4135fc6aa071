"""Peak memory of ``metrosight eval verify`` and ``eval identify`` as the number of photos and pairs grows.

    python bench/eval_memory.py [--copies 10] [--photos 13233] [--skip-identify]

Full LFW (13,233 photos, 6,000 pairs) is not on this machine: only fold 1 (807 photos, 600 pairs) is. So the scale-up
is synthetic: the fold-1 photos are linked again under new person names (``<name>__c<k>``, links, never copies) and
the fold-1 pairs are repeated once per copy as further folds of the pairs file (10 copies: 6,000 pairs), and for
identify the linked tree is cut at ``--photos`` photos (13,233, full LFW's count). Every run is a separate process of
the real CLI measured with ``/usr/bin/time`` (peak resident set size). A photo linked under several names is encoded
once (descriptors are keyed by content), so the scale-up costs the time of fold 1 plus the scoring; its *accuracy*
figures mean nothing (a photo and its own copy are scored as two people) — only the memory is the result here.

Prints a table and writes ``bench/results/eval_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("METROSIGHT_DATA", ROOT.parent / "shared" / "data"))
PY = sys.executable
CLI = "import sys; from metrosight.cli import app; sys.argv[0] = 'metrosight'; app()"


def run(home: Path, args: list[str]) -> dict:
    """Run ``metrosight <args>`` under /usr/bin/time; peak RSS (MiB) and wall seconds."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        t0 = time.perf_counter()
        p = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", tf.name, PY, "-c", CLI, "--home", str(home), *args],
            capture_output=True,
            text=True,
            env=env,
        )
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            sys.exit(f"failed: metrosight {' '.join(args)}\n{p.stderr[-2000:]}")
        kb = int(Path(tf.name).read_text().split()[-1])
    return {"peak_rss_mib": round(kb / 1024, 1), "wall_s": round(wall, 1)}


def link_tree(src: Path, dst: Path, copies: int, limit: int | None = None) -> int:
    """``dst/<person>__c<k>/<person>__c<k>_NNNN.jpg`` links to ``src/<person>/<person>_NNNN.jpg``; photos made."""
    n = 0
    for k in range(copies):
        for person in sorted(p for p in src.iterdir() if p.is_dir()):
            name = f"{person.name}__c{k}"
            for photo in sorted(person.glob("*.jpg")):
                if limit is not None and n >= limit:
                    return n
                d = dst / name
                d.mkdir(parents=True, exist_ok=True)
                (d / photo.name.replace(person.name, name, 1)).symlink_to(photo)
                n += 1
    return n


def repeat_pairs(pairs: Path, dst: Path, copies: int) -> int:
    """Fold-1 pairs once per copy (copy k's pairs name copy k's people): ``copies`` folds."""
    lines = [ln.split() for ln in pairs.read_text().splitlines() if ln.strip()]
    n = int(lines[0][1])
    body = lines[1 : 1 + 2 * n]
    out = [f"{copies}\t{n}"]
    for k in range(copies):
        for row in body:
            if len(row) == 3:
                out.append(f"{row[0]}__c{k}\t{row[1]}\t{row[2]}")
            else:
                out.append(f"{row[0]}__c{k}\t{row[1]}\t{row[2]}__c{k}\t{row[3]}")
    dst.write_text("\n".join(out) + "\n")
    return copies * 2 * n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--copies", type=int, default=10, help="pairs-file copies for verify (10: 6,000 pairs)")
    ap.add_argument("--photos", type=int, default=13233, help="photos for identify (13,233: full LFW's count)")
    ap.add_argument("--skip-identify", action="store_true")
    a = ap.parse_args()
    lfw = DATA / "lfw"
    images, pairs = lfw / "lfw-deepfunneled", lfw / "pairs.txt"
    if not pairs.is_file():
        sys.exit(f"LFW fold 1 not found under {lfw}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="eval-mem-") as tmp:
        t = Path(tmp)
        home, out, cache = t / "home", t / "reports", t / "cache"
        common = ["--cache", str(cache), "--out", str(out)]
        rows.append(
            {
                "run": "verify, LFW fold 1",
                "photos": len(list(images.glob("*/*.jpg"))),
                "pairs": 600,
                **run(
                    home, ["eval", "verify", "--images", str(images), "--pairs", str(pairs), *common, "--name", "v1"]
                ),
            }
        )
        v1 = json.loads((out / "v1.json").read_text())["data"]["verification"]
        rows[-1]["all_pairs"] = (
            v1["metrosight cosine + flips"]["all_pairs"]["impostor"]
            + v1["metrosight cosine + flips"]["all_pairs"]["genuine"]
        )
        big, bpairs = t / "big", t / "pairs-big.txt"
        n_pairs = repeat_pairs(pairs, bpairs, a.copies)
        link_tree(images, big, a.copies)
        rows.append(
            {
                "run": f"verify, fold 1 ×{a.copies} (synthetic)",
                "photos": None,
                "pairs": n_pairs,
                **run(home, ["eval", "verify", "--images", str(big), "--pairs", str(bpairs), *common, "--name", "v10"]),
            }
        )
        v10 = json.loads((out / "v10.json").read_text())["data"]["verification"]["metrosight cosine + flips"]
        rows[-1]["all_pairs"] = v10["all_pairs"]["impostor"] + v10["all_pairs"]["genuine"]
        # photos scored against each other: n (n - 1) / 2 = all pairs
        rows[-1]["photos"] = round((1 + (1 + 8 * rows[-1]["all_pairs"]) ** 0.5) / 2)
        if not a.skip_identify:
            rows.append(
                {
                    "run": "identify, LFW fold 1",
                    "photos": rows[0]["photos"],
                    "pairs": None,
                    **run(home, ["eval", "identify", "--data", str(images), "--no-baseline", *common, "--name", "i1"]),
                }
            )
            ibig = t / "ibig"
            n = link_tree(images, ibig, a.photos // rows[0]["photos"] + 1, a.photos)
            rows.append(
                {
                    "run": f"identify, fold 1 linked to {n} photos (synthetic)",
                    "photos": n,
                    "pairs": None,
                    **run(home, ["eval", "identify", "--data", str(ibig), "--no-baseline", *common, "--name", "i2"]),
                }
            )
    print(f"{'run':48} {'photos':>7} {'pairs':>6} {'all pairs':>11} {'peak RSS MiB':>13} {'wall s':>7}")
    for r in rows:
        print(
            f"{r['run']:48} {r['photos'] or '-':>7} {r['pairs'] or '-':>6} {r.get('all_pairs') or '-':>11} "
            f"{r['peak_rss_mib']:>13} {r['wall_s']:>7}"
        )
    res = ROOT / "bench" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "eval_memory.json").write_text(json.dumps({"rows": rows, "note": __doc__}, indent=2))
    print(f"json: {res / 'eval_memory.json'}")


if __name__ == "__main__":
    main()
