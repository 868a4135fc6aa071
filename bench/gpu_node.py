"""HD cameras per node with one GPU at the reference load, measured end to end in real time.

N worker processes share the node's GPU (each its own CUDA context, time-sliced; no MPS). Each worker serves C
simulated cameras: every camera decodes the real 1080p crowd clip (``crowd_1080p.mp4`` in the export folder, looped)
at 25 frames/s, detects faces in 6 of them a second (``CenterFaceDetector.detect_batch`` over the worker's C cameras,
one batch a round) and computes 15 descriptors a second, each twice (``recognition.flip``; one
``UserOnnxEmbedder.embed`` call a round). Models are metrosight's own backends through ``inference.runtime: torch``,
loaded as bench/gpu.py loads them. Faces embedded are the export's real aligned chips: landmarks and alignment need
dlib, which the GPU machine lacks, so their host cost is not in these figures.

Rounds are paced by the wall clock (one every 1/6 s). A setting holds when every worker completes ≥ 97% of its due
rounds before the run's end + 0.5 s and ends less than 0.5 s behind; latency is round due → last descriptor of the
round (decode, detection, embedding), the alert-latency proxy (p95 reported; target ≤ 0.5 s). For each N the
per-worker capacity is first estimated unpaced, then confirmed paced. Decode modes: ``all`` (every frame decoded on
one thread and converted, as a camera does today), ``grab`` (frames not due decoded but not converted:
``cv2.VideoCapture.grab``), ``none`` (frames replayed, no video decoding: stands for decoding off the host CPU, e.g.
NVDEC, which OpenCV's pip build cannot use, so it is not measured). Skipping non-reference frames is not possible
through OpenCV and is not measured. Cores busy are the workers' CPU time over the wall time (CUDA's spin-waits in).

    # on the GPU machine (run bench/gpu.py --export first here; onnx2torch carried as a wheel):
    PYTHONPATH=src python3 bench/gpu_node.py --models .gpu
    # a check of the script on the CPU:
    PYTHONPATH=src python bench/gpu_node.py --quick --device cpu --runtime onnxruntime

Prints a table and writes JSON to $OUT/gpu_node.json when OUT is set, else bench/results/gpu_node.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
from gpu import (
    ANALYSIS_FPS,
    FACES_PER_CAMERA,
    PASSES_PER_FACE,
    REPO,
    inference_options,
    load_detector,
    load_embedder,
    load_faces,
)

FPS = ANALYSIS_FPS[0]  # the analysis rate: 6 detected frames a second per camera
CLIP_FPS = 25.0  # frames a camera delivers (and decodes) a second
MIN_DONE = 0.97  # share of due rounds a worker must complete
LATENCY_TARGET_S = 0.5
MAX_LAG_S = LATENCY_TARGET_S  # how far behind the schedule a worker may end


@dataclass(frozen=True)
class Config:
    """What every worker needs to load (picklable: sent to spawned processes)."""

    models: Path
    clip: Path | None
    device: str
    runtime: str


def open_clip(clip: Path) -> Any:
    """The clip opened for decoding on one thread (OpenCV's FFmpeg otherwise starts a thread per core per camera)."""
    import cv2

    return cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])


# -- worker process -------------------------------------------------------------------------------------------------
class Camera:
    """One simulated camera: the clip looped, decoded at 25 frames/s, one frame handed over per round."""

    def __init__(self, clip: Path | None, frames: list[np.ndarray], index: int, decode: str) -> None:
        import cv2

        self.cv2, self.clip, self.frames, self.decode, self.index = cv2, clip, frames, decode, index
        self.due = 0.0  # frames delivered but not yet decoded
        self.cap: Any = None
        if clip is not None and decode != "none":
            self.cap = open_clip(clip)
            for _ in range(index % 8):  # cameras out of phase with each other
                self.cap.grab()

    def _next(self, convert: bool) -> np.ndarray | None:
        assert self.clip is not None
        ok = self.cap.read()[1] if convert else self.cap.grab()
        if ok is False or ok is None:
            self.cap.release()
            self.cap = open_clip(self.clip)
            ok = self.cap.read()[1] if convert else self.cap.grab()
        return ok if convert else None

    def frame(self) -> np.ndarray:
        """The frame analysed this round (RGB), after decoding the 25/6 frames the camera delivered since the last."""
        if self.cap is None:
            self.index += 1
            return self.frames[self.index % len(self.frames)]
        self.due += CLIP_FPS / FPS
        n, self.due = int(self.due), self.due - int(self.due)
        for _ in range(max(n, 1) - 1):
            self._next(convert=self.decode == "all")
        bgr = self._next(convert=True)
        assert bgr is not None
        return self.cv2.cvtColor(bgr, self.cv2.COLOR_BGR2RGB)


@dataclass
class Worker:
    """A worker's models and cameras; :meth:`run` serves them for a while and returns its figures."""

    cfg: Config
    det: Any = None
    emb: Any = None
    chips: np.ndarray = field(default_factory=lambda: np.zeros((0, 150, 150, 3), np.uint8))
    frames: list[np.ndarray] = field(default_factory=list)
    cams: list[Camera] = field(default_factory=list)
    faces_due: float = 0.0
    decode: str = "all"  # "all", "grab" or "none" (frames replayed from faces.npz, no video decoding)

    def load(self) -> None:
        options = inference_options(self.cfg.device, self.cfg.runtime)
        self.det = load_detector(self.cfg.models, replace(options, max_batch=64))
        self.emb = load_embedder(self.cfg.models, replace(options, max_batch=256))
        self.chips, self.frames = load_faces(self.cfg.models)

    def cameras(self, n: int, decode: str) -> None:
        """Serve ``n`` cameras decoding as ``decode`` says; warm the models up at this batch size (cuDNN picks
        kernels per shape)."""
        if decode != self.decode:
            self.cams, self.decode = [], decode
        while len(self.cams) < n:
            self.cams.append(Camera(self.cfg.clip, self.frames, len(self.cams), decode))
        del self.cams[n:]
        for _ in range(3):
            self.round()

    def round(self) -> tuple[float, float, float, int]:
        """One analysis round of every camera: ``(decode s, detect s, embed s, faces embedded)``."""
        t0 = time.perf_counter()
        frames = [c.frame() for c in self.cams]
        t1 = time.perf_counter()
        self.det.detect_batch(frames)
        t2 = time.perf_counter()
        self.faces_due += FACES_PER_CAMERA / FPS * len(self.cams)
        n, self.faces_due = int(self.faces_due), self.faces_due - int(self.faces_due)
        if n:
            chips = self.chips[np.arange(n) % len(self.chips)]
            self.emb.embed(np.concatenate([chips, chips[:, :, ::-1]]) if PASSES_PER_FACE == 2 else chips)
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2, n

    def run(self, start: float, seconds: float, paced: bool) -> dict[str, Any]:
        """Rounds every 1/FPS s from ``start`` (wall clock) for ``seconds``; unpaced: back to back."""
        while time.time() < start:
            time.sleep(min(0.01, max(0.0, start - time.time())))
        cpu0, t0 = time.process_time(), time.perf_counter()
        due_n = int(seconds * FPS)
        lat: list[float] = []
        parts = np.zeros(3)
        faces = 0
        while True:
            now = time.perf_counter() - t0
            k = len(lat)
            if (paced and k >= due_n) or now >= seconds * (1.5 if paced else 1.0):
                break
            due = k / FPS if paced else now
            if paced and now < due:
                time.sleep(due - now)
            *p, n = self.round()
            parts += p
            faces += n
            lat.append(time.perf_counter() - t0 - due)
        wall = time.perf_counter() - t0
        return {
            "rounds": len(lat),
            "due": due_n if paced else len(lat),
            "done_in_time": sum(1 for i in range(len(lat)) if i / FPS + lat[i] <= seconds + MAX_LAG_S),
            "end_lag_s": lat[-1] if lat else 0.0,
            "latencies": lat,
            "cpu_s": time.process_time() - cpu0,
            "wall_s": wall,
            "decode_s": parts[0],
            "detect_s": parts[1],
            "embed_s": parts[2],
            "faces": faces,
        }


def worker_main(cfg: Config, conn: Connection) -> None:
    """A worker process: load, then answer ``("cameras", n, decode)``, ``("run", start, seconds, paced)`` and
    ``("stop",)``."""
    import cv2

    cv2.setNumThreads(1)
    if cfg.runtime == "torch":
        import torch

        torch.set_num_threads(1)
        torch.backends.cudnn.benchmark = True
    w = Worker(cfg)
    try:
        w.load()
        w.cameras(1, "none")
        conn.send(("ready",))
        while (msg := conn.recv())[0] != "stop":
            if msg[0] == "cameras":
                w.cameras(int(msg[1]), str(msg[2]))
                conn.send(("ready",))
            else:
                conn.send(("done", w.run(float(msg[1]), float(msg[2]), bool(msg[3]))))
    except Exception as exc:  # reported to the parent, which prints it in one line
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


# -- the node -------------------------------------------------------------------------------------------------------
class GpuMeter:
    """GPU utilisation (%) sampled with nvidia-smi every 0.5 s while running; ``None`` where there is none."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuMeter:
        if shutil.which("nvidia-smi"):
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self) -> None:
        cmd = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
        while not self._stop.wait(0.5):
            try:
                self.samples.append(float(subprocess.run(cmd, capture_output=True, text=True).stdout.split()[0]))
            except (ValueError, IndexError, OSError):
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def mean(self) -> float | None:
        return round(float(np.mean(self.samples)), 1) if self.samples else None


class Node:
    """N worker processes, started once; each setting changes the cameras per worker."""

    def __init__(self, cfg: Config, workers: int) -> None:
        ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
        self.conns: list[Connection] = []
        self.procs = []
        t0 = time.perf_counter()
        for _ in range(workers):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=worker_main, args=(cfg, child), daemon=True)
            p.start()
            self.conns.append(parent)
            self.procs.append(p)
        self.answers()
        self.start_s = time.perf_counter() - t0

    def answers(self) -> list[Any]:
        out = []
        for c in self.conns:
            try:
                msg = c.recv()
            except EOFError:
                raise SystemExit("a worker process died (out of memory?): try fewer workers or cameras") from None
            if msg[0] == "error":
                raise SystemExit(f"a worker failed: {msg[1]}")
            out.append(msg[-1])
        return out

    def run(self, cameras: int, decode: str, seconds: float, paced: bool) -> dict[str, Any]:
        """Every worker serving ``cameras`` (decoding as ``decode`` says) for ``seconds``; the node's figures."""
        for c in self.conns:
            c.send(("cameras", cameras, decode))
        self.answers()
        start = time.time() + 0.5
        for c in self.conns:
            c.send(("run", start, seconds, paced))
        with GpuMeter() as gpu:
            res = self.answers()
        return {"decode": decode} | node_figures(res, len(self.conns), cameras, paced, gpu.mean())

    def close(self) -> None:
        for c in self.conns:
            c.send(("stop",))
        for p in self.procs:
            p.join(timeout=10)


def node_figures(res: list[dict[str, Any]], workers: int, cameras: int, paced: bool, gpu: float | None) -> dict:
    """One setting's row: cameras, whether it held, latency, cores, GPU utilisation, where the time went."""
    lat = np.concatenate([r["latencies"] for r in res]) if res else np.zeros(1)
    wall = max(r["wall_s"] for r in res)
    rounds_per_s = sum(r["rounds"] for r in res) / wall
    held = all(r["done_in_time"] >= MIN_DONE * r["due"] and r["end_lag_s"] < MAX_LAG_S for r in res)
    busy = sum(r["decode_s"] + r["detect_s"] + r["embed_s"] for r in res) or 1.0
    return {
        "workers": workers,
        "cameras_per_worker": cameras,
        "cameras": workers * cameras,
        "paced": paced,
        "held": bool(held) if paced else None,
        "analysed_fps_per_camera": round(rounds_per_s / workers, 2),
        "faces_per_s_per_camera": round(sum(r["faces"] for r in res) / wall / (workers * cameras), 2),
        "latency_p50_s": round(float(np.percentile(lat, 50)), 3),
        "latency_p95_s": round(float(np.percentile(lat, 95)), 3),
        "cores_used": round(sum(r["cpu_s"] for r in res) / wall, 2),  # workers' CPU time, CUDA's spin-waits in
        "gpu_util_pct": gpu,
        "share": {k: round(sum(r[f"{k}_s"] for r in res) / busy, 3) for k in ("decode", "detect", "embed")},
    }


def capacity(node: Node, decode: str, args: argparse.Namespace, deadline: float, log: list[dict[str, Any]]) -> int:
    """Largest cameras per worker that held paced: estimate unpaced at ``args.probe`` cameras, then confirm paced
    at 0.85× the estimate, going up (1.0×, 1.2×) while it holds or down (0.6×, 0.4×) until it does."""
    if time.perf_counter() + args.calib + 2 * args.seconds > deadline:
        print(f"(time budget spent: decode {decode} not tried)")
        return 0
    est = node.run(args.probe, decode, args.calib, paced=False)
    log.append(est)
    print_row(est)
    per_worker = est["analysed_fps_per_camera"] * args.probe / FPS  # cameras a worker sustains, unpaced
    best, failed = 0, 10**9
    for frac in (0.85, 1.0, 1.2, 0.6, 0.4):
        c = max(1, int(per_worker * frac))
        if c <= best or c >= failed:
            continue
        if time.perf_counter() + 1.5 * args.seconds + 10 > deadline:
            print(f"(time budget spent: {c} cameras a worker not tried)")
            break
        row = node.run(c, decode, args.seconds, paced=True)
        log.append(row)
        print_row(row)
        if row["held"]:
            best = c
        else:
            failed = c
            if best:
                break
    return best


def decode_cost(clip: Path | None, frames: int = 60) -> dict[str, Any]:
    """Host ms a 1080p frame of the clip costs with OpenCV (one thread): read + RGB, and grab (no conversion)."""
    if clip is None:
        return {"clip": None}
    import cv2

    cv2.setNumThreads(1)
    out: dict[str, Any] = {"clip": clip.name}
    for mode in ("read", "grab"):
        cap = open_clip(clip)
        cap.grab()
        t0, n = time.process_time(), 0
        for _ in range(frames):
            if mode == "read":
                ok, bgr = cap.read()
                ok = ok and cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) is not None
            else:
                ok = cap.grab()
            n += bool(ok)
        cap.release()
        out[f"{mode}_ms_per_frame"] = round((time.process_time() - t0) * 1000 / max(n, 1), 2)
    out["cores_per_camera_all_frames"] = round(CLIP_FPS * out["read_ms_per_frame"] / 1000, 3)
    out["cores_per_camera_grab_skipped"] = round(
        (FPS * out["read_ms_per_frame"] + (CLIP_FPS - FPS) * out["grab_ms_per_frame"]) / 1000, 3
    )
    return out


def print_row(r: dict[str, Any]) -> None:
    held = {True: "yes", False: "NO", None: "(unpaced)"}[r["held"]]
    print(
        f"{r['decode']:>4} {r['workers']:>3} {r['cameras_per_worker']:>5} {r['cameras']:>6} {held:>9} "
        f"{r['analysed_fps_per_camera']:>7} "
        f"{r['faces_per_s_per_camera']:>7} {r['latency_p95_s']:>7} {r['cores_used']:>6} {r['gpu_util_pct']!s:>5} "
        f"{r['share']['decode']:>6} {r['share']['detect']:>6} {r['share']['embed']:>6}",
        flush=True,
    )


HEADER = "dec    N  C/wk  cams      held  fps/cam faces/s  p95 s  cores  gpu%  dec  det  emb (share of busy time)"


def sweep(cfg: Config, args: argparse.Namespace) -> dict[str, Any]:
    """Each worker count of ``args.workers`` and decode mode of ``args.decode``, within ``args.budget`` seconds: the
    largest cameras that held."""
    t0 = time.perf_counter()
    deadline = t0 + args.budget
    log: list[dict[str, Any]] = []
    best: dict[str, dict[str, Any]] = {}
    print(HEADER, flush=True)
    for n in args.workers:
        if log and time.perf_counter() + 60 > deadline:  # the first worker count always runs
            print(f"(time budget spent: {n} workers not tried)")
            break
        node = Node(cfg, n)
        print(f"  {n} workers started in {node.start_s:.1f} s", flush=True)
        try:
            for decode in args.decode:
                c = capacity(node, decode, args, deadline, log)
                print(f"  -> decode {decode}, {n} workers: {n * c} cameras held", flush=True)
                rows = [
                    r
                    for r in log
                    if r["held"] and (r["workers"], r["cameras_per_worker"], r["decode"]) == (n, c, decode)
                ]
                if rows and rows[0]["cameras"] > best.get(decode, {}).get("cameras", 0):
                    best[decode] = rows[0]
        finally:
            node.close()
    return {"settings": log, "best": best, "sweep_s": round(time.perf_counter() - t0, 1)}


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=REPO / ".gpu", help="the folder bench/gpu.py --export wrote")
    ap.add_argument("--clip", type=Path, help="1080p clip each camera decodes (default: MODELS/crowd_1080p.mp4)")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--runtime", choices=("torch", "onnxruntime"), default="torch")
    ap.add_argument("--decode", nargs="+", choices=("all", "grab", "none"), default=["all", "none"], help="see above")
    ap.add_argument("--workers", type=int, nargs="+", default=[14, 8], help="worker counts to sweep")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each paced run")
    ap.add_argument("--calib", type=float, default=5.0, help="length of the unpaced estimate")
    ap.add_argument("--probe", type=int, default=24, help="cameras per worker of the unpaced estimate")
    ap.add_argument("--budget", type=float, default=250.0, help="seconds the sweep may take (no run starts past it)")
    ap.add_argument("--quick", action="store_true", help="a tiny sweep (a CPU check of the script)")
    args = ap.parse_args()
    if args.quick:
        args.workers, args.seconds, args.calib, args.probe = [1, 2], 3.0, 1.5, 2
    return args


def main() -> int:
    args = parse()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread a worker: the workers are the parallelism
    clip = args.clip or args.models / "crowd_1080p.mp4"
    if set(args.decode) != {"none"} and not clip.is_file():
        raise SystemExit(f"no clip at {clip}: copy the 1080p crowd clip there, pass --clip, or use --decode none")
    if not (args.models / "faces.npz").is_file():
        raise SystemExit(f"no export in {args.models}: run bench/gpu.py --export {args.models} first")
    cfg = Config(args.models, clip if clip.is_file() else None, args.device, args.runtime)
    t0 = time.perf_counter()
    res: dict[str, Any] = {
        "device": args.device,
        "runtime": args.runtime,
        "host_cores": os.cpu_count(),
        "reference_load": {"analysed_fps": FPS, "faces_per_s": FACES_PER_CAMERA, "passes_per_face": PASSES_PER_FACE},
        "decode_modes": {
            "all": "every frame of the 25 fps stream decoded (one thread per camera) and converted to RGB",
            "grab": "frames not due decoded but not converted (cv2 grab); non-reference skipping not measurable",
            "none": "no video decoding (frames replayed): stands for decoding off the host CPU (NVDEC), not measured",
        },
        "criterion": f"paced; every worker ≥{MIN_DONE:.0%} of due rounds and <{MAX_LAG_S:g} s behind at the end",
        "not_included": "landmarks and alignment (dlib, absent on the GPU machine): faces are pre-aligned chips",
        "decode_cost": decode_cost(cfg.clip),
    }
    print(f"decode cost (1 thread): {res['decode_cost']}", flush=True)
    res.update(sweep(cfg, args))
    res["seconds"] = round(time.perf_counter() - t0, 1)
    for decode, b in res["best"].items():
        print(
            f"HD cameras per node with one GPU, decode {decode}: {b['cameras']} ({b['workers']} workers × "
            f"{b['cameras_per_worker']}), p95 latency {b['latency_p95_s']} s (target ≤ {LATENCY_TARGET_S}), "
            f"{b['cores_used']} cores busy, GPU {b['gpu_util_pct']}%"
        )
    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / (
        "gpu_node.json" if args.device == "cuda" and not args.quick else f"gpu_node-{args.device}-check.json"
    )
    out.write_text(json.dumps(res, indent=2))
    print(f"{out} ({res['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
