"""GPU throughput of metrosight's detector and embedder, and HD cameras per GPU at the reference load.

The same ONNX graphs the CPU path runs (CenterFace, dlib's face ResNet as metrosight builds it) through
``inference.runtime: torch`` (:mod:`metrosight.core.torch_session`: onnx2torch converts the graph, PyTorch runs it on
CUDA): a product path, config-selectable, used where onnxruntime-gpu does not fit the machine's CUDA. Figures from
it stand in for ONNX Runtime's CUDA provider, which was not measured.

Two steps, because the GPU machine has neither the model packages nor the shared data:

    # here (weights and real faces written to an ignored folder, nothing committed):
    python bench/gpu.py --export .gpu
    # on the GPU machine (python3 with torch; onnx2torch carried as a wheel, see --help of --export):
    PYTHONPATH=src python3 bench/gpu.py --models .gpu --device cuda

What it measures (each after warm-up, best of the timed repeats, wall time with the device synchronised):

- detector frames/s on 1080p frames of the crowd clip: the network alone (input already on the GPU) and the product
  path (``CenterFaceDetector.detect_batch``: resize on the host, transfer, network, decode), at ``max_width`` 512
  (the default; batches of 1, 8 and 32 frames) and 1920 (full resolution; 1 and 8); the host CPU time a frame costs;
- embedder faces/s on real aligned faces at batches of 1, 8, 32 and 128: the network alone and the product path
  (``UserOnnxEmbedder.embed``: host preparation, transfer, network), with PyTorch's default convolution precision
  (TF32 on Ampere and later) and strict float32;
- parity: cosine of every face's descriptor to ONNX Runtime's on the CPU (must be ≥ 0.999), both precisions;
- HD cameras per GPU at the reference load: every camera detecting at the analysis rate (6 and 18 frames/s: the
  issue's and bench/node.py's) and embedding 15 faces/s, each twice (``recognition.flip``).

Prints a table and writes JSON to $OUT/gpu.json when OUT is set, else bench/results/gpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

FACES_PER_CAMERA = 15.0  # descriptors a second each camera computes at the reference load
PASSES_PER_FACE = 2  # recognition.flip: a face and its mirror image
ANALYSIS_FPS = (6.0, 18.0)  # the low analysis rate and bench/node.py's default
DET_BATCHES = (1, 8, 32)
EMB_BATCHES = (1, 8, 32, 128)
MIN_COSINE = 0.999
CROWD_CLIP = "facenet_pytorch_samples/examples/video.mp4"  # 1080p, 25 fps, 4.2 s (under the shared data)


# -- export (here, with metrosight installed) -----------------------------------------------------------------------
def _crowd_frames(n: int) -> list[np.ndarray]:
    """``n`` 1080p RGB frames of the crowd clip (shared data), else the sample clip scaled to 1080p."""
    import cv2

    shared = REPO.parent / "shared" / "data" / CROWD_CLIP
    src = shared if shared.is_file() else REPO / "src" / "metrosight" / "sample" / "short_hamilton_clip.mp4"
    cap = cv2.VideoCapture(str(src))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 100
    frames = []
    for i in np.linspace(0, total - 1, n).astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
        ok, bgr = cap.read()
        if ok:
            frames.append(cv2.cvtColor(cv2.resize(bgr, (1920, 1080)), cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def export(folder: Path) -> None:
    """Write the models and real faces the GPU run needs into ``folder``."""
    import shutil

    import cv2

    from metrosight.detect.centerface_onnx import CenterFaceDetector, default_model_path
    from metrosight.recognize.align import align
    from metrosight.recognize.embedder_onnx import OnnxResNetEmbedder

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(default_model_path(), folder / "centerface.onnx")
    shutil.copy(OnnxResNetEmbedder(cache_dir=folder / "cache").onnx_path(), folder / "dlib_face_resnet.onnx")
    shutil.rmtree(folder / "cache")
    if (clip := REPO.parent / "shared" / "data" / CROWD_CLIP).is_file():  # 2.4 MB: the real 1080p clip to decode
        shutil.copy(clip, folder / "crowd_1080p.mp4")
    frames = _crowd_frames(24)
    det = CenterFaceDetector()
    chips = [align(f, d.box, d.landmarks) for f in frames for d in det.detect(f) if d.landmarks is not None]
    jpegs = [
        cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])[1] for f in frames[:8]
    ]
    np.savez_compressed(
        folder / "faces.npz",
        chips=np.stack(chips[:128]),
        frames=np.array([j.tobytes() for j in jpegs], dtype=object).astype(bytes),
    )
    sizes = {p.name: p.stat().st_size for p in folder.iterdir()}
    print(f"exported to {folder}: {len(chips[:128])} faces, {len(jpegs)} frames; {sizes}")


# -- loading (shared with bench/gpu_node.py) ------------------------------------------------------------------------
def inference_options(device: str, runtime: str = "torch", max_batch: int = 32) -> Any:
    """metrosight's ``InferenceOptions`` for ``runtime`` on ``device`` (``"cuda"`` or ``"cpu"``)."""
    from metrosight.core.onnx_session import InferenceOptions

    providers = ("cuda",) if device == "cuda" else ("cpu",)
    return InferenceOptions(runtime=runtime, providers=providers, max_batch=max_batch)


def load_detector(models: Path, options: Any, max_width: int = 512) -> Any:
    """The product's ``CenterFaceDetector`` on the exported model (no landmarks: dlib is not on the GPU machine)."""
    from metrosight.detect.centerface_onnx import CenterFaceDetector

    path = models / "centerface.onnx"
    return CenterFaceDetector(max_width=max_width, landmarks=False, model_path=path, inference=options)


def load_embedder(models: Path, options: Any) -> Any:
    """The product's ``UserOnnxEmbedder`` on the exported dlib face ResNet (150×150 NHWC chips)."""
    from metrosight.recognize.embedder_user import UserOnnxEmbedder

    return UserOnnxEmbedder(models / "dlib_face_resnet.onnx", input_size=150, layout="nhwc", inference=options)


def load_faces(models: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(chips (N, 150, 150, 3) uint8 RGB, 1080p RGB frames)`` from the export's faces.npz."""
    import cv2

    data = np.load(models / "faces.npz", allow_pickle=False)
    frames = [cv2.cvtColor(_decoded(b), cv2.COLOR_BGR2RGB) for b in data["frames"]]
    return np.ascontiguousarray(data["chips"]), frames


# -- timing ---------------------------------------------------------------------------------------------------------
def timed(fn: Callable[[], Any], sync: Callable[[], None], budget_s: float, warmup: int = 3) -> float:
    """Best seconds of one call of ``fn`` over repeats filling ``budget_s`` (after ``warmup`` calls)."""
    for _ in range(warmup):
        fn()
    sync()
    best, spent = float("inf"), 0.0
    while spent < budget_s:
        t0 = time.perf_counter()
        fn()
        sync()
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return best


def _decoded(jpeg: bytes) -> np.ndarray:
    import cv2

    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit("faces.npz holds a frame that is not a JPEG: run --export again")
    return img


class Bench:
    """The models on one device, and the figures measured so far."""

    def __init__(self, models: Path, device: str, budget_s: float) -> None:
        import torch

        self.torch, self.device, self.budget = torch, torch.device(device), budget_s
        self.models = models
        self.chips, self.frames = load_faces(models)
        self.options = inference_options(device)
        torch.backends.cudnn.benchmark = True  # fixed shapes per batch size: let cuDNN pick its kernels once
        self.result: dict[str, Any] = {}

    def sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def batch_of(self, items: list[np.ndarray] | np.ndarray, n: int) -> list[np.ndarray]:
        return [items[i % len(items)] for i in range(n)]

    # -- detector ----------------------------------------------------------------------------------------------
    def detector(self, max_width: int, batches: tuple[int, ...]) -> list[dict[str, Any]]:
        from dataclasses import replace

        from metrosight.core.torch_session import TorchSession
        from metrosight.detect.centerface_onnx import prepare_model

        session = TorchSession(prepare_model(self.models / "centerface.onnx"), device=str(self.device))
        det = load_detector(self.models, self.options, max_width)
        rows = []
        for b in batches:
            det.inference = replace(self.options, max_batch=b)  # one loaded model, batches of b frames
            frames = self.batch_of(self.frames, b)
            x, _ = det._network_input(frames[0])
            xs = self.torch.from_numpy(np.stack([x] * b)).to(self.device)
            net_s = timed(partial(session.run_tensors, xs), self.sync, self.budget)
            e2e_s = timed(partial(det.detect_batch, frames), self.sync, self.budget)
            rows.append(
                {
                    "max_width": max_width,
                    "input": f"{x.shape[2]}x{x.shape[1]}",
                    "batch": b,
                    "network_fps": round(b / net_s, 1),
                    "product_fps": round(b / e2e_s, 1),
                    "faces_per_frame": round(sum(len(f) for f in det.detect_batch(frames)) / b, 1),
                    "host_cpu_ms_per_frame": round(self.host_ms(det, frames), 2),
                }
            )
        return rows

    def host_ms(self, det: Any, frames: list[np.ndarray]) -> float:
        """Host CPU milliseconds a frame costs around the network: resize and pad, then decode and NMS."""
        outputs = det._run(np.stack([det._network_input(f)[0] for f in frames]))
        t0 = time.process_time()
        for _ in range(3):
            prepared = [det._network_input(f) for f in frames]
            for j, (f, (_, scale)) in enumerate(zip(frames, prepared, strict=True)):
                det._faces(f, scale, outputs, j)
        return (time.process_time() - t0) * 1000 / (3 * len(frames))

    # -- embedder ----------------------------------------------------------------------------------------------
    def embedder(self, strict_fp32: bool, batches: tuple[int, ...]) -> list[dict[str, Any]]:
        from dataclasses import replace

        from metrosight.core.torch_session import TorchSession

        torch = self.torch
        torch.backends.cudnn.allow_tf32 = not strict_fp32
        torch.backends.cuda.matmul.allow_tf32 = not strict_fp32
        path = self.models / "dlib_face_resnet.onnx"
        session = TorchSession(path, device=str(self.device))
        emb = load_embedder(self.models, self.options)
        rows = []
        for b in batches:
            chips = np.stack(self.batch_of(self.chips, b))
            xs = torch.from_numpy(chips).to(self.device)
            net_s = timed(partial(session.run_tensors, xs), self.sync, self.budget)
            emb.inference = replace(self.options, max_batch=b)  # one loaded model, batches of b faces
            e2e_s = timed(partial(emb.embed, chips), self.sync, self.budget)
            rows.append(
                {
                    "precision": "fp32" if strict_fp32 else "default (tf32 convs)",
                    "batch": b,
                    "network_faces_per_s": round(b / net_s, 1),
                    "product_faces_per_s": round(b / e2e_s, 1),
                }
            )
        return rows

    def parity(self, strict_fp32: bool) -> dict[str, Any]:
        """Cosine of each real face's descriptor on this device to ONNX Runtime's on the CPU."""
        from metrosight.core.onnx_session import cpu_session
        from metrosight.core.torch_session import TorchSession

        self.torch.backends.cudnn.allow_tf32 = not strict_fp32
        self.torch.backends.cuda.matmul.allow_tf32 = not strict_fp32
        path = self.models / "dlib_face_resnet.onnx"
        ref = cpu_session(path).run(["descriptors"], {"chips": self.chips})[0]
        got = TorchSession(path, device=str(self.device)).run(["descriptors"], {"chips": self.chips})[0]
        cos = (ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
        return {
            "precision": "fp32" if strict_fp32 else "default (tf32 convs)",
            "faces": len(cos),
            "min_cosine": round(float(cos.min()), 7),
            "max_abs_diff": float(np.abs(ref - got).max()),
            "ok": bool(cos.min() >= MIN_COSINE),
        }


def cameras_per_gpu(det_fps: float, emb_fps: float) -> dict[str, float]:
    """HD cameras one GPU holds at each analysis rate, from detector frames/s and embedder faces/s."""
    out = {}
    for fps in ANALYSIS_FPS:
        gpu_s = fps / det_fps + FACES_PER_CAMERA * PASSES_PER_FACE / emb_fps  # GPU seconds per camera-second
        out[f"at_{fps:g}_fps"] = round(1.0 / gpu_s, 1)
    return out


def summary(res: dict[str, Any]) -> dict[str, Any]:
    """Best figures and cameras per GPU, for the network alone and the product path."""
    det = [r for r in res["detector"] if r["max_width"] == 512]
    emb = [r for r in res["embedder"] if r["precision"].startswith("default")]
    best = {
        "detector_network_fps": max(r["network_fps"] for r in det),
        "detector_product_fps": max(r["product_fps"] for r in det),
        "embedder_network_faces_per_s": max(r["network_faces_per_s"] for r in emb),
        "embedder_product_faces_per_s": max(r["product_faces_per_s"] for r in emb),
        "host_cpu_ms_per_frame": min(r["host_cpu_ms_per_frame"] for r in det),
    }
    best["cameras_per_gpu_network"] = cameras_per_gpu(
        best["detector_network_fps"], best["embedder_network_faces_per_s"]
    )
    best["cameras_per_gpu_product"] = cameras_per_gpu(
        best["detector_product_fps"], best["embedder_product_faces_per_s"]
    )
    # the host's share: resize, pad, decode and NMS of each detected frame (video decoding not included)
    best["host_cores_per_camera"] = {
        f"at_{fps:g}_fps": round(fps * best["host_cpu_ms_per_frame"] / 1000, 3) for fps in ANALYSIS_FPS
    }
    return best


def print_tables(res: dict[str, Any]) -> None:
    print(f"\n{res['device_name']} — torch {res['torch']}, onnx2torch {res['onnx2torch']}")
    print("\ndetector (CenterFace, 1080p frames)")
    head = ("max_width", "input", "batch", "net fps", "product fps", "faces/fr", "host ms/fr")
    print(" ".join(f"{h:>{w}}" for h, w in zip(head, (9, 10, 5, 9, 11, 8, 10), strict=True)))
    for r in res["detector"]:
        print(
            f"{r['max_width']:>9} {r['input']:>10} {r['batch']:>5} {r['network_fps']:>9} {r['product_fps']:>11} "
            f"{r['faces_per_frame']:>8} {r['host_cpu_ms_per_frame']:>10}"
        )
    print("\nembedder (dlib face ResNet, 150×150 aligned faces)")
    print(f"{'precision':>22} {'batch':>5} {'net faces/s':>11} {'product faces/s':>15}")
    for r in res["embedder"]:
        print(f"{r['precision']:>22} {r['batch']:>5} {r['network_faces_per_s']:>11} {r['product_faces_per_s']:>15}")
    print("\nparity with ONNX Runtime (CPU)")
    for p in res["parity"]:
        print(f"  {p['precision']}: min cosine {p['min_cosine']} over {p['faces']} faces, ok={p['ok']}")
    s = res["summary"]
    print(f"\nHD cameras per GPU at {FACES_PER_CAMERA:g} faces/s each (×{PASSES_PER_FACE} passes):")
    print(f"  GPU-bound (network alone): {s['cameras_per_gpu_network']}")
    print(f"  product path (host resize/decode in the loop, one process): {s['cameras_per_gpu_product']}")
    print(
        f"  host CPU per detected frame: {s['host_cpu_ms_per_frame']} ms (resize, pad, decode, NMS; not video decoding)"
    )
    print(f"  host cores per camera for that: {s['host_cores_per_camera']}")


def run(models: Path, device: str, budget_s: float, quick: bool) -> dict[str, Any]:
    from importlib.metadata import version

    import torch

    det_batches, emb_batches = ((1, 4), (1, 8)) if quick else (DET_BATCHES, EMB_BATCHES)
    b = Bench(models, device, budget_s)
    name = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu"
    res: dict[str, Any] = {
        "device": device,
        "device_name": name,
        "torch": torch.__version__,
        "onnx2torch": version("onnx2torch"),
        "runtime": "inference.runtime torch (onnx2torch), a proxy for ONNX Runtime's CUDA provider",
        "reference_load": {"faces_per_s": FACES_PER_CAMERA, "passes_per_face": PASSES_PER_FACE, "fps": ANALYSIS_FPS},
        "timing": "best of repeats filling the budget after 3 warm-ups, device synchronised; cudnn.benchmark on",
    }
    t0 = time.perf_counter()
    res["parity"] = [b.parity(strict_fp32=False), b.parity(strict_fp32=True)]
    res["detector"] = b.detector(512, det_batches) + ([] if quick else b.detector(1920, det_batches[:2]))
    res["embedder"] = b.embedder(False, emb_batches) + ([] if quick else b.embedder(True, emb_batches))
    res["summary"] = summary(res)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--export", type=Path, help="write the models and faces the GPU run needs into this folder")
    ap.add_argument("--models", type=Path, default=REPO / ".gpu", help="the folder --export wrote")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--budget", type=float, default=1.0, help="seconds of timed repeats per figure")
    ap.add_argument("--quick", action="store_true", help="a small sweep (a CPU check of the script)")
    args = ap.parse_args()
    if args.export:
        export(args.export)
        return 0
    res = run(args.models, args.device, args.budget, args.quick)
    print_tables(res)
    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / ("gpu.json" if args.device == "cuda" and not args.quick else f"gpu-{args.device}-check.json")
    out.write_text(json.dumps(res, indent=2))
    print(f"\n{out} ({res['seconds']} s)")
    return 0 if all(p["ok"] for p in res["parity"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
