"""What checking resumed face tracks costs, and how the same person scores in it (``pipeline/continuity.py``).

Runs the camera pipeline at 6 analysed frames a second on the crowd, Hamilton and Intel clips, with a watchlist of
one random descriptor (nothing matches, so every track stays unalerted and is recognised as usual), at the default
recognition settings and at the reference load (every usable face embedded), and counts the faces embedded for the
check, the tracks split, and the cosine of each checked face against its track's fused template. These clips have
no identity switch at 6 fps (``bench/tracking.py``), so every check here is the same person: a split is a false
split. The bound (0.87) was chosen on LFW fold 1 (``bench/enrol_consistency.py``), not on these clips.

    python bench/continuity.py [--data DIR] [--out bench/results/continuity.json]

Times are CPU time of this process (``time.process_time``), not wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLIPS = {
    "crowd": "facenet_pytorch_samples/examples/video.mp4",
    "hamilton": "@src/metrosight/sample/short_hamilton_clip.mp4",
    "intel": "intel_sample_videos/one-by-one-person-detection.mp4",
}
LOADS: dict[str, dict[str, Any]] = {
    "default": {},
    "reference": {"max_samples": 32, "min_quality": 0.0, "min_blur_var": 0.0},
}


def run(video: Path, load: dict[str, Any], cosines: list[float]) -> dict[str, Any]:
    """One clip at 6 fps; ``cosines`` collects each check's cosine."""
    from metrosight.config.model import Settings
    from metrosight.core.types import Category
    from metrosight.ingest.source import VideoSource, parse_source
    from metrosight.pipeline.camera import CameraPipeline
    from metrosight.recognize.gallery import Gallery, GalleryEntry, Matcher
    from metrosight.recognize.registry import embedder_for
    from metrosight.services.models import make_face_detector

    settings = Settings.model_validate({"ingest": {"analysis_fps": 6.0}, "recognition": load})
    det, emb = make_face_detector(settings), embedder_for(settings, REPO / "bench" / "results" / "models")
    nobody = np.random.default_rng(0).normal(size=128).astype(np.float32)
    gallery = Gallery([GalleryEntry(1, "nobody", "wl", Category.WANTED, nobody)])
    pipe = CameraPipeline(settings, det, emb, Matcher(gallery, 0.999), lambda _a: None, lambda _u: None)
    t0 = time.process_time()
    for frame in VideoSource(parse_source(str(video)), "bench", 6.0).frames():
        pipe.process(frame)
    pipe.finish()
    s = pipe.stats
    return {
        "frames": s.frames,
        "tracks": s.tracks,
        "embedded": s.embedded,
        "checked": s.resumes_checked,
        "split": s.splits,
        "cosines": sorted(round(c, 3) for c in cosines),
        "cpu_s": round(time.process_time() - t0, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "continuity.json"))
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    import metrosight.pipeline.continuity as continuity

    cosines: list[float] = []
    same = continuity.same_person

    def recorded(desc: np.ndarray, template: np.ndarray, bound: float = continuity.OTHER_PERSON_BELOW) -> bool:
        d, t = desc / np.linalg.norm(desc), template / np.linalg.norm(template)
        cosines.append(float(d @ t))
        return same(desc, template, bound)

    continuity.same_person = recorded  # type: ignore[assignment]  # measure what check_resumed compares
    rows = []
    for name, rel in CLIPS.items():
        video = REPO / rel[1:] if rel.startswith("@") else Path(args.data) / rel
        for load_name, load in LOADS.items():
            cosines.clear()
            rows.append({"clip": name, "load": load_name, **run(video, load, cosines)})
    table = Table(title=f"resumed-track checks at 6 fps (bound {continuity.OTHER_PERSON_BELOW}; CPU time)")
    for col in ("clip", "load", "frames", "tracks", "embedded", "checked", "split", "cosines", "cpu s"):
        table.add_column(col)
    for r in rows:
        shown = f"{r['cosines'][0]:.3f}–{r['cosines'][-1]:.3f}" if r["cosines"] else "-"
        table.add_row(
            r["clip"], r["load"], str(r["frames"]), str(r["tracks"]), str(r["embedded"]), str(r["checked"]),
            str(r["split"]), shown, f"{r['cpu_s']:.1f}",
        )  # fmt: skip
    Console(width=160).print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "time": "CPU (process_time)"}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
