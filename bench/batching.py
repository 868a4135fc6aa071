"""Batching across a worker's cameras: CPU per camera-second, one frame at a time against batched, in one run.

N cameras (1, 2, 4, 8) play the same clip in one frame loop (:class:`~metrosight.pipeline.loop.FrameLoop`, the loop
every worker runs), first one camera's frame at a time (``inference.batch_cameras: false``, today's behaviour),
then batched (one detector call for every camera's frame of a round, one embedder call for all their faces). The
clips: the crowd clip (``crowd``: 1920×1080, 25 fps, 4.2 s, many frontal faces, nobody enrolled: an HD camera's
load) and the Hamilton clip (``hamilton``: 640×360, 9.2 s, Lin-Manuel Miranda on stage then the audience; he is on
the watchlist, so there are alerts to compare), and ``mixed`` (half the cameras on each: frames of two sizes in a
round, detected in one call per size). The recognition settings are the reference load of ``bench/node.py``
(every usable face of a track embedded, up to 32 a track), at ``--fps`` analysed frames a second.

The figure is CPU time (``time.process_time``: this process, all its threads) per camera-second of video — the
figure least disturbed by other work on a shared machine; wall time is not reported. Frames are decoded once before
the clock starts and shared by the cameras (decoding costs the same in both modes and is measured elsewhere: see
``bench/node.py``), so the figure is the pipeline's: detection, tracking, alignment, quality, embedding, matching.
Each camera's alerts are compared between the two modes (they must be the same).

    python bench/batching.py [--clips crowd,hamilton,mixed] [--cameras 1,2,4,8] [--fps 6] [--repeat 2]
                             [--out bench/results/batching.json]
    python bench/batching.py --show bench/results/batching.json       # the table of a results file

Nothing is tuned here (the batch size is ``inference.max_batch``, 32 by default); a GPU would gain more from
bigger batches than a CPU core: no GPU was available when the README's figures were taken.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# BLAS/OpenMP pinned to one thread (as a node worker) before numpy and onnxruntime are imported (in main)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def data_root(arg: str | None) -> Path:
    return Path(arg or os.environ.get("METROSIGHT_DATA") or REPO.parent / "shared" / "data")


def decode(path: Path, fps: float) -> tuple[list[Any], float]:
    """The frames due at ``fps`` and the clip's length in seconds (media time of the last frame + one frame)."""
    from metrosight.ingest.source import VideoSource, parse_source

    video = VideoSource(parse_source(str(path)), "decode", fps, 10.0)
    frames = list(video.frames())
    step = 1.0 / (video.fps or 25.0)
    return frames, frames[-1].ts + step


class Outbox:
    """A camera's alerts (what is compared between the modes)."""

    def __init__(self) -> None:
        self.alerts: list[tuple[str, int, float, float, int]] = []

    def alert(self, a: Any, frame_wall: float | None) -> None:
        self.alerts.append((a.subject, a.track_id, a.first_seen, a.last_seen, a.samples))

    def alert_update(self, u: Any) -> None:
        pass

    def event(self, e: Any) -> None:
        pass

    def event_update(self, u: Any) -> None:
        pass

    def state(self, s: Any) -> None:
        pass

    def stats(self, s: Any) -> None:
        pass

    def snapshot(self, s: Any) -> None:
        pass


class Host:
    def between_rounds(self) -> bool:
        return True

    def after_frame(self, cam: Any, cap: Any) -> None:
        pass

    def ended(self, cam: Any) -> None:
        pass

    def idle(self) -> None:
        pass


class Calls:
    """The shared detector and embedder, counting their calls (the figure batching lowers)."""

    def __init__(self, detector: Any, embedder: Any) -> None:
        self.detector, self.embedder = detector, embedder
        self.detect_calls = self.embed_calls = 0
        outer = self

        class Det:
            name, scales_input = detector.name, detector.scales_input

            def detect(self, image: Any) -> Any:
                outer.detect_calls += 1
                return detector.detect(image)

            def detect_batch(self, images: Any) -> Any:
                outer.detect_calls += 1
                return detector.detect_batch(images)

        class Emb:
            name, model_id, dim = embedder.name, embedder.model_id, embedder.dim

            def embed(self, chips: Any) -> Any:
                outer.embed_calls += 1
                return embedder.embed(chips)

        self.det, self.emb = Det(), Emb()


def run_mode(rt: Any, clips: list[tuple[list[Any], float]], batch: bool) -> dict:
    """Every camera (one clip each) to its end in one frame loop; CPU seconds, calls, stage times and alerts."""
    from metrosight.core.types import Frame
    from metrosight.pipeline.loop import FrameLoop, IteratorFeed, LoopCamera
    from metrosight.pipeline.outbox import CameraOutputs

    models = rt.services.models
    calls = Calls(models.detector, models.embedder)
    loop = FrameLoop(Host(), batch=batch)
    boxes = []
    for n, (frames, _) in enumerate(clips):
        cid = f"cam{n}"
        mine = [Frame(image=f.image, ts=f.ts, index=f.index, camera_id=cid) for f in frames]
        box = Outbox()
        outputs = CameraOutputs(box)
        proc = rt.processor(cid, None, outputs, scope="bench").processor
        proc.detector, proc.embedder = calls.det, calls.emb
        loop.add(LoopCamera(cid, None, IteratorFeed(lambda _s, fr=mine: iter(fr)), proc, outputs))
        boxes.append(box)
    cpu0 = time.process_time()
    loop.run()
    cpu = time.process_time() - cpu0
    media = sum(span for _, span in clips)
    stats = [c.processor.camera_stats for c in loop.cameras]
    frames = sum(s.frames for s in stats)
    stage = {k: sum(s.stage_seconds.get(k, 0.0) for s in stats) for k in ("detect", "track", "align", "embed", "match")}
    return {
        "cpu_seconds": round(cpu, 3),
        "cpu_per_camera_second": round(cpu / media, 4),
        "frames": frames,
        "faces": sum(s.faces for s in stats),
        "embedded": sum(s.embedded for s in stats),
        "detect_calls": calls.detect_calls,
        "embed_calls": calls.embed_calls,
        "wall_ms_per_frame": {k: round(1000.0 * v / max(1, frames), 2) for k, v in stage.items()},
        "alerts": [b.alerts for b in boxes],
    }


def show(rows: list[dict], fps: float, console: Any) -> None:
    """Print the rows of a run (or of a results file) as a table."""
    from rich.table import Table

    table = Table(title=f"CPU seconds per camera-second of video, {fps:g} analysed fps (decode excluded)")
    columns = ("clip", "N", "unbatched", "batched", "ratio", "detect calls", "embed calls", "faces", "same alerts")
    for col in columns:
        table.add_column(col, justify="right")
    for r in rows:
        u, b = r["unbatched"], r["batched"]
        table.add_row(
            r["clip"],
            str(r["cameras"]),
            f"{u['cpu_per_camera_second']:.3f}",
            f"{b['cpu_per_camera_second']:.3f}",
            f"{r['ratio']:.3f}",
            f"{u['detect_calls']} → {b['detect_calls']}",
            f"{u['embed_calls']} → {b['embed_calls']}",
            f"{b['faces']} ({b['embedded']} embedded)",
            "yes" if r["same_alerts"] else "NO",
        )
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", default="crowd,hamilton,mixed")
    ap.add_argument("--cameras", default="1,2,4,8")
    ap.add_argument("--fps", type=float, default=6.0, help="analysed frames a second (the issue's measure: 6)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each mode (the lowest CPU time is kept)")
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "batching.json"))
    ap.add_argument("--show", default=None, help="print the table of a results file and exit")
    args = ap.parse_args()

    import cv2
    from rich.console import Console

    console = Console(width=150)
    if args.show:
        saved = json.loads(Path(args.show).read_text())
        show(saved["rows"], saved["meta"]["fps"], console)
        return

    from metrosight.config.home import Home
    from metrosight.config.model import Settings
    from metrosight.config.operating_points import REFERENCE_LOAD
    from metrosight.pipeline.runtime import Runtime
    from tests.integration.helpers import bench_home

    cv2.setNumThreads(1)  # as a node worker
    root = data_root(args.data)
    ex = root / "face_recognition_examples" / "examples"
    paths = {
        "crowd": root / "facenet_pytorch_samples" / "examples" / "video.mp4",
        "hamilton": ex / "short_hamilton_clip.mp4",
    }
    with tempfile.TemporaryDirectory() as tmp:
        home = bench_home(Path(tmp), ex)
        settings = Settings.model_validate(
            {**{k: dict(v) for k, v in REFERENCE_LOAD.items()}, "alerts": {"episode_window_s": 0}}
        )
        rt = Runtime.open(Home(home), settings)
        rt.warm_up()
        decoded = {name: decode(p, args.fps) for name, p in paths.items()}
        rows = []
        for clip in args.clips.split(","):
            for n in (int(x) for x in args.cameras.split(",")):
                if clip == "mixed":
                    if n < 2:
                        continue
                    clips = [decoded["crowd" if i % 2 == 0 else "hamilton"] for i in range(n)]
                else:
                    clips = [decoded[clip]] * n
                result: dict[str, Any] = {"clip": clip, "cameras": n}
                runs: dict[str, list[dict]] = {"unbatched": [], "batched": []}
                for k in range(args.repeat):  # the modes alternate, each first in turn: drift hits both alike
                    for mode in ("unbatched", "batched") if k % 2 == 0 else ("batched", "unbatched"):
                        runs[mode].append(run_mode(rt, clips, mode == "batched"))
                for mode, done in runs.items():
                    result[mode] = min(done, key=lambda r: r["cpu_seconds"])
                u, b = result["unbatched"], result["batched"]
                result["ratio"] = round(b["cpu_per_camera_second"] / u["cpu_per_camera_second"], 3)
                result["same_alerts"] = u["alerts"] == b["alerts"]
                rows.append(result)
                console.print(
                    f"{clip} N={n}: {u['cpu_per_camera_second']:.3f} → {b['cpu_per_camera_second']:.3f} "
                    f"(×{result['ratio']:.3f}), same alerts: {result['same_alerts']}"
                )

    show(rows, args.fps, console)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for r in rows:
        for mode in ("unbatched", "batched"):
            r[mode]["alerts"] = [len(cam) for cam in r[mode]["alerts"]]  # alerts per camera
    meta = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_1m": os.getloadavg()[0],
        "fps": args.fps,
        "repeat": args.repeat,
        "measure": "time.process_time (CPU of this process) per camera-second of video, the lowest of --repeat runs "
        "of each mode; decode excluded; wall_ms_per_frame: stage wall times (inflated on a shared machine)",
        "gpu": "none available: CPU only (CenterFace and the dlib ResNet on ONNX Runtime, one thread)",
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    console.print(f"written {out}")


if __name__ == "__main__":
    main()
