"""Face tracks at low analysis rates: today's overlap tracker (``tracking.face_tracker: iou``, no scene-cut allowance)
against the Kalman tracker (the defaults), measured in the same run.

Part 1, tracks: for each shared clip with faces, the real camera pipeline (no watchlist, so nothing is embedded) runs
at every frame, 12 and 6 analysed frames a second (``ingest.analysis_fps``; the real frame selection) with each
tracker. The face detector runs once per decoded frame and its faces are given to every run (the detector does not
depend on the tracker). Reported: tracks started, and against the same tracker's every-frame run taken as the
reference (a detection belongs to the reference track that held it): **switches** (extra reference tracks held by
one low-rate track: a merge or an identity swap) and **splits** (extra low-rate tracks holding one reference track:
fragmentation). CPU milliseconds per analysed frame of cut check + tracking (``time.process_time``).

Part 2, recognition: the whole pipeline (``metrosight run``'s runtime, a watchlist of the four face_recognition
example portraits, approved by a second user) on the Hamilton clip and the crowd clip at the same rates with each
tracker: faces embedded, alerts and who was alerted.

    python bench/tracking.py [--data DIR] [--out bench/results/tracking.json] [--clips crowd,hamilton,intel]
                             [--no-recognition]

Settings were chosen on the crowd clip (tracker) and the Hamilton clip (scene-cut allowance); the other clips report.
Times are CPU time of this process on one core, not wall time.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RATES: tuple[float | None, ...] = (None, 12.0, 6.0)


def _today_tracking() -> dict[str, Any]:
    """The tracking switches of the ``today`` operating point (``config/operating_points.py``)."""
    from metrosight.config.operating_points import SWITCHES

    return {s.path.removeprefix("tracking."): s.today for s in SWITCHES if s.path.startswith("tracking.")}


TRACKERS: dict[str, dict[str, Any]] = {"iou (today)": _today_tracking(), "kalman (new)": {}}
#: clip name -> (path under the data folder, or under the repository for the bundled sample; role)
CLIPS: dict[str, tuple[str, str]] = {
    "crowd": ("facenet_pytorch_samples/examples/video.mp4", "tracker settings chosen here"),
    "hamilton": ("@src/metrosight/sample/short_hamilton_clip.mp4", "reported; cut allowance chosen here"),
    "intel": ("intel_sample_videos/one-by-one-person-detection.mp4", "reported"),
    "people_counter": ("people_counter_clips/example_01.mp4", "reported"),
    "mot20": ("mot20_clip/MOT20-05-raw_even_shorter.mp4", "reported"),
}


def data_root(arg: str | None) -> Path:
    return Path(arg or os.environ.get("METROSIGHT_DATA") or REPO.parent / "shared" / "data")


def clip_path(name: str, data: Path) -> Path:
    rel = CLIPS[name][0]
    return REPO / rel[1:] if rel.startswith("@") else data / rel


def rate_label(fps: float | None) -> str:
    return "every frame" if fps is None else f"{fps:g} fps"


def track_run(video: Path, over: dict[str, Any], fps: float | None, models: Any, cache: dict) -> dict[str, Any]:
    """One pipeline run without a watchlist: {tracks, frames, cpu_ms, owner: {(frame, box): track id}}."""
    from metrosight.config.model import Settings
    from metrosight.ingest.source import VideoSource, parse_source
    from metrosight.pipeline.camera import CameraPipeline
    from metrosight.recognize.gallery import Gallery, Matcher

    settings = Settings.model_validate({"tracking": over, "ingest": {"analysis_fps": fps}})
    det, emb = models
    pipe = CameraPipeline(settings, det, emb, Matcher(Gallery([]), 0.95), lambda _a: None, lambda _u: None)
    owner: dict[tuple[int, tuple[float, ...]], int] = {}
    cpu = 0.0
    for frame in VideoSource(parse_source(str(video)), "bench", fps).frames():
        request = pipe.prepare(frame)
        found = cache.get(frame.index)
        if found is None:
            found = cache[frame.index] = [det.detect(a.image) for a in request.areas]
        t0 = time.process_time()
        pending = pipe.after_detection(request, found)
        pipe.after_embedding(pending, np.zeros((0, emb.dim), np.float32))
        cpu += time.process_time() - t0
        for t in pending.active:
            if t.detection is not None:
                owner[(frame.index, t.detection.box.as_tuple())] = t.track_id
    pipe.finish()
    s = pipe.stats
    return {
        "tracks": s.tracks,
        "frames": s.frames,
        "faces": s.faces,
        "cpu_ms": 1000 * cpu / max(1, s.frames),
        "owner": owner,
    }


def compare(reference: dict, run: dict) -> tuple[int, int]:
    """(switches, splits) of ``run`` against ``reference`` (see the module docstring)."""
    refs_of: dict[int, set[int]] = {}
    runs_of: dict[int, set[int]] = {}
    for key, tid in run.items():
        ref = reference.get(key)
        if ref is None:
            continue
        refs_of.setdefault(tid, set()).add(ref)
        runs_of.setdefault(ref, set()).add(tid)
    return sum(len(v) - 1 for v in refs_of.values()), sum(len(v) - 1 for v in runs_of.values())


def tracks_part(names: list[str], data: Path) -> list[dict[str, Any]]:
    from metrosight.config.model import Settings
    from metrosight.recognize.registry import embedder_for
    from metrosight.services.models import make_face_detector

    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        models = (make_face_detector(settings), embedder_for(settings, Path(tmp)))
        rows = []
        for name in names:
            video = clip_path(name, data)
            if not video.exists():
                print(f"skipped {name}: {video} missing", file=sys.stderr)
                continue
            cache: dict = {}
            for label, over in TRACKERS.items():
                reference: dict = {}
                for fps in RATES:
                    r = track_run(video, over, fps, models, cache)
                    if fps is None:
                        reference, base = r["owner"], r["tracks"]
                    switches, splits = compare(reference, r["owner"])
                    rows.append(
                        {
                            "clip": name,
                            "role": CLIPS[name][1],
                            "tracker": label,
                            "rate": rate_label(fps),
                            "frames": r["frames"],
                            "faces": r["faces"],
                            "tracks": r["tracks"],
                            "vs_every_frame": round(r["tracks"] / base - 1, 3) if base else None,
                            "switches": switches,
                            "splits": splits,
                            "track_cpu_ms_per_frame": round(r["cpu_ms"], 3),
                        }
                    )
    return rows


def recognition_part(data: Path) -> list[dict[str, Any]]:
    from metrosight.config.home import Home
    from metrosight.config.model import Settings
    from metrosight.eval.speed import bench_watchlist
    from metrosight.pipeline.runtime import Runtime
    from metrosight.services.suite import Services

    ex = data / "face_recognition_examples" / "examples"
    gallery = [
        ("Lin-Manuel Miranda", ex / "lin-manuel-miranda.png"),
        ("Alex Lacamoire", ex / "alex-lacamoire.png"),
        ("Barack Obama", ex / "obama.jpg"),
        ("Joe Biden", ex / "biden.jpg"),
    ]
    rows = []
    for name in ("hamilton", "crowd"):
        video = clip_path(name, data)
        for label, over in TRACKERS.items():
            for fps in RATES:
                with tempfile.TemporaryDirectory() as tmp:
                    settings = Settings.model_validate({"tracking": over, "ingest": {"analysis_fps": fps}})
                    svc = Services.open(Home(Path(tmp)), settings)
                    bench_watchlist(svc, "bench", gallery)
                    subjects: list[str] = []

                    def note(alert: Any, *_crop: Any, seen: list[str] = subjects) -> None:
                        seen.append(alert.subject)

                    t0 = time.process_time()
                    report = Runtime(svc).run(str(video), "bench", on_alert=note)
                    cpu = time.process_time() - t0
                    s = report.stats
                    rows.append(
                        {
                            "clip": name,
                            "tracker": label,
                            "rate": rate_label(fps),
                            "frames": s.frames,
                            "tracks": s.tracks,
                            "embedded": s.embedded,
                            "resumes_checked": s.resumes_checked,
                            "resume_splits": s.splits,
                            "sightings": s.alerts,
                            "alerts": report.episodes,
                            "alerted": sorted(set(subjects)),
                            "cpu_s": round(cpu, 2),
                        }
                    )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "tracking.json"))
    ap.add_argument("--clips", default=",".join(CLIPS), help=f"comma-separated, of {', '.join(CLIPS)}")
    ap.add_argument("--no-recognition", action="store_true", help="skip part 2 (whole pipeline with a watchlist)")
    args = ap.parse_args()
    names = [n for n in args.clips.split(",") if n]
    unknown = [n for n in names if n not in CLIPS]
    if unknown:
        print(f"error: unknown clip {unknown[0]!r}: choose from {', '.join(CLIPS)}", file=sys.stderr)
        return 2
    data = data_root(args.data)

    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    rows = tracks_part(names, data)
    table = Table(title="face tracks by analysis rate (tracker settings chosen on crowd; others report)")
    cols = ("clip", "tracker", "rate", "frames", "faces", "tracks", "vs every frame", "switches", "splits", "ms/f")
    for col in cols:
        table.add_column(col, justify="left" if col in ("clip", "tracker", "rate") else "right")
    for r in rows:
        vs = "" if r["vs_every_frame"] is None else f"{100 * r['vs_every_frame']:+.0f}%"
        table.add_row(
            r["clip"], r["tracker"], r["rate"], str(r["frames"]), str(r["faces"]), str(r["tracks"]), vs,
            str(r["switches"]), str(r["splits"]), f"{r['track_cpu_ms_per_frame']:.2f}",
        )  # fmt: skip
    console.print(table)
    rec: list[dict[str, Any]] = []
    if not args.no_recognition:
        rec = recognition_part(data)
        t2 = Table(title="recognition (four-portrait watchlist)")
        cols2 = ("clip", "tracker", "rate", "frames", "tracks", "embedded", "checked", "split", "sightings", "alerts")
        cols2 += ("alerted", "cpu s")
        for col in cols2:
            t2.add_column(col, justify="left" if col in ("clip", "tracker", "rate", "alerted") else "right")
        for r in rec:
            t2.add_row(
                r["clip"], r["tracker"], r["rate"], str(r["frames"]), str(r["tracks"]), str(r["embedded"]),
                str(r["resumes_checked"]), str(r["resume_splits"]), str(r["sightings"]), str(r["alerts"]),
                ", ".join(r["alerted"]) or "-", f"{r['cpu_s']:.1f}",
            )  # fmt: skip
        console.print(t2)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"tracks": rows, "recognition": rec, "time": "CPU (process_time)"}, indent=2))
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
