"""CPU cost of a crowd photo through the identification path, with and without ``photos.jitter``.

Builds photos of N faces tiled from LFW (the first photo of the first N people, cropped to the face and scaled to
110 px cells), then times ``faces_in_photo`` (what ``identify`` and ``POST /api/identify`` run on each photo) in
CPU seconds with ``photos.jitter`` off and on. A photo with more than ``MAX_JITTERED_FACES`` usable faces is
embedded from one alignment a face, so its cost stays that of ``photos.jitter: false``.

Run: PYTHONPATH=src python bench/jitter_cost.py   → table on stdout, JSON in bench/results/jitter_cost.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LFW = ROOT.parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"
CELL = 110


def tiled(n: int) -> np.ndarray:
    from PIL import Image

    files = sorted(LFW.glob("*/*_0001.jpg"))[:n]
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    canvas = np.full((rows * CELL, cols * CELL, 3), 128, np.uint8)
    for i, f in enumerate(files):
        face = Image.open(f).convert("RGB").crop((60, 60, 190, 190)).resize((CELL, CELL))
        r, c = divmod(i, cols)
        canvas[r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL] = np.asarray(face)
    return canvas


def main() -> None:
    from metrosight.config.home import Home
    from metrosight.config.model import Settings
    from metrosight.detect.registry import face_detector_for
    from metrosight.recognize.photo import faces_in_photo
    from metrosight.recognize.registry import embedder_for

    home = Home.resolve(None)
    rows = []
    for n in (1, 10, 11, 100, 200):
        image = tiled(n)
        for jitter in (False, True):
            s = Settings.model_validate({"photos": {"jitter": jitter}})
            det = face_detector_for(s, home.cache / "models")
            emb = embedder_for(s, home.cache / "models")
            p = s.photos
            faces_in_photo(image[:CELL, :CELL], det, emb, p.min_face_px, p.min_blur_var, p.max_yaw_ratio, jitter)
            t0 = time.process_time()
            usable, _ = faces_in_photo(image, det, emb, p.min_face_px, p.min_blur_var, p.max_yaw_ratio, jitter)
            cpu = time.process_time() - t0
            rows.append({"faces": n, "usable": len(usable), "jitter": jitter, "cpu_s": round(cpu, 2)})
            print(f"{n:4} faces ({len(usable):3} usable)  photos.jitter {str(jitter):5}  CPU {cpu:6.2f} s", flush=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "jitter_cost.json").write_text(json.dumps(rows, indent=2))
    print(f"json: {out / 'jitter_cost.json'}")


if __name__ == "__main__":
    main()
