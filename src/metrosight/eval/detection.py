"""Face-detection accuracy: ground-truth loaders and scoring (pure functions, no models).

Ground truth comes from dlib's imglab XML (``training.xml``/``testing.xml`` of dlib's ``examples/faces``) and from
FDDB fold files (ellipses, converted to their axis-aligned bounding boxes). Detections are matched to ground truth
greedily in descending score order at an IoU threshold (0.4 by default, loose enough for the different box
conventions of different detectors). Boxes marked ``ignore='1'`` count neither as faces to find nor, when a
detection lands on one, as false positives.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from metrosight.core.types import Box


class GroundTruthError(ValueError):
    """A ground-truth file is missing or malformed."""


@dataclass(frozen=True, slots=True)
class GroundTruthImage:
    """The labelled faces of one image.

    Attributes:
        path: image file.
        boxes: faces a detector should find, in image pixels.
        ignore: faces that are neither required nor penalised (e.g. tiny or truncated).
    """

    path: Path
    boxes: tuple[Box, ...]
    ignore: tuple[Box, ...] = ()


@dataclass(frozen=True, slots=True)
class ImageResult:
    """How the detections of one image matched its ground truth.

    Attributes:
        scores: score of each detection, sorted in descending order.
        matched: for each detection (same order), ``1`` true positive, ``0`` false positive, ``-1`` ignored
            (matched an ``ignore`` box).
        n_gt: number of non-ignored ground-truth faces.
    """

    scores: np.ndarray
    matched: np.ndarray
    n_gt: int


@dataclass(frozen=True, slots=True)
class DetectionScore:
    """Summary of a detector over a dataset at one score threshold.

    Attributes:
        n_images: images scored.
        n_gt: ground-truth faces (not ignored).
        tp: faces found (IoU >= threshold with a detection).
        fp: detections that matched no face and no ignored box.
        recall: ``tp / n_gt``.
        precision: ``tp / (tp + fp)`` (1.0 when there were no detections).
    """

    n_images: int
    n_gt: int
    tp: int
    fp: int
    recall: float
    precision: float

    @property
    def missed(self) -> int:
        return self.n_gt - self.tp


@dataclass(frozen=True, slots=True)
class RocPoint:
    """One point of a discrete ROC: all detections with score >= ``threshold``."""

    threshold: float
    tp: int
    fp: int
    recall: float


@dataclass(slots=True)
class _Acc:
    scores: list[np.ndarray] = field(default_factory=list)
    matched: list[np.ndarray] = field(default_factory=list)
    n_gt: int = 0
    n_images: int = 0


def _int_attr(el: ET.Element, name: str, where: str) -> int:
    value = el.get(name)
    if value is None:
        raise GroundTruthError(f"{where}: <{el.tag}> has no attribute {name!r}")
    try:
        return int(float(value))
    except ValueError as exc:
        raise GroundTruthError(f"{where}: <{el.tag}> {name}={value!r} is not a number") from exc


def load_dlib_xml(path: str | Path) -> list[GroundTruthImage]:
    """Load an imglab/dlib dataset XML (``<image file=...><box top left width height [ignore='1']/>``).

    Args:
        path: the XML file; image paths in it are relative to its folder.

    Returns:
        One entry an ``<image>``, boxes as ``Box(left, top, left + width, top + height)``.

    Raises:
        GroundTruthError: when the file is missing or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise GroundTruthError(f"dlib dataset XML not found: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise GroundTruthError(f"{path}: not valid XML ({exc})") from exc
    out: list[GroundTruthImage] = []
    for img in root.iter("image"):
        file = img.get("file")
        if not file:
            raise GroundTruthError(f"{path}: <image> without a file attribute")
        boxes: list[Box] = []
        ignore: list[Box] = []
        for b in img.findall("box"):
            top, left = _int_attr(b, "top", str(path)), _int_attr(b, "left", str(path))
            width, height = _int_attr(b, "width", str(path)), _int_attr(b, "height", str(path))
            box = Box(float(left), float(top), float(left + width), float(top + height))
            (ignore if b.get("ignore", "0") not in ("0", "", "false") else boxes).append(box)
        out.append(GroundTruthImage(path.parent / file, tuple(boxes), tuple(ignore)))
    return out


def ellipse_to_box(major_radius: float, minor_radius: float, angle: float, cx: float, cy: float) -> Box:
    """Axis-aligned bounding box of an FDDB ellipse.

    Args:
        major_radius: semi-axis along ``angle``, pixels.
        minor_radius: the other semi-axis, pixels.
        angle: angle of the major axis from the x axis, radians.
        cx: centre x, pixels.
        cy: centre y, pixels.

    Returns:
        The tightest box holding the ellipse.
    """
    c, s = math.cos(angle), math.sin(angle)
    hx = math.sqrt((major_radius * c) ** 2 + (minor_radius * s) ** 2)
    hy = math.sqrt((major_radius * s) ** 2 + (minor_radius * c) ** 2)
    return Box(cx - hx, cy - hy, cx + hx, cy + hy)


def load_fddb_fold(
    ellipse_file: str | Path, pics_dir: str | Path, *, skip_missing: bool = True
) -> list[GroundTruthImage]:
    """Load an FDDB ``FDDB-fold-NN-ellipseList.txt``.

    Args:
        ellipse_file: the ellipse list (image path, face count, one ``ra rb theta cx cy 1`` line a face).
        pics_dir: the ``originalPics`` folder; image ``p`` is ``pics_dir/p.jpg``.
        skip_missing: leave out images whose file does not exist (else keep them; the caller must cope).

    Returns:
        One entry an image, faces as the bounding boxes of their ellipses (see :func:`ellipse_to_box`).

    Raises:
        GroundTruthError: when the file is missing or malformed.
    """
    ellipse_file, pics_dir = Path(ellipse_file), Path(pics_dir)
    if not ellipse_file.is_file():
        raise GroundTruthError(f"FDDB ellipse list not found: {ellipse_file}")
    lines = [ln.strip() for ln in ellipse_file.read_text().splitlines() if ln.strip()]
    out: list[GroundTruthImage] = []
    i = 0
    while i < len(lines):
        name = lines[i]
        try:
            n = int(lines[i + 1])
            rows = [[float(v) for v in lines[i + 2 + k].split()[:5]] for k in range(n)]
        except (IndexError, ValueError) as exc:
            raise GroundTruthError(f"{ellipse_file}: malformed entry for {name!r} near line {i + 1}") from exc
        if any(len(r) != 5 for r in rows):
            raise GroundTruthError(f"{ellipse_file}: ellipse of {name!r} needs 5 numbers")
        i += 2 + n
        img_path = pics_dir / f"{name}.jpg"
        if skip_missing and not img_path.is_file():
            continue
        out.append(GroundTruthImage(img_path, tuple(ellipse_to_box(*r) for r in rows)))
    return out


def _iou_matrix(a: Sequence[Box], b: Sequence[Box]) -> np.ndarray:
    if not a or not b:
        return np.zeros((len(a), len(b)), dtype=np.float64)
    A = np.array([x.as_tuple() for x in a], dtype=np.float64)
    B = np.array([x.as_tuple() for x in b], dtype=np.float64)
    ix = np.clip(np.minimum(A[:, None, 2], B[None, :, 2]) - np.maximum(A[:, None, 0], B[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(A[:, None, 3], B[None, :, 3]) - np.maximum(A[:, None, 1], B[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = np.clip(A[:, 2] - A[:, 0], 0, None) * np.clip(A[:, 3] - A[:, 1], 0, None)
    area_b = np.clip(B[:, 2] - B[:, 0], 0, None) * np.clip(B[:, 3] - B[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def match_image(
    boxes: Sequence[Box],
    scores: Sequence[float],
    gt: GroundTruthImage,
    iou_threshold: float = 0.4,
) -> ImageResult:
    """Greedily match one image's detections to its ground truth.

    Detections are taken in descending score order; each takes the still-unmatched face it overlaps most
    (IoU >= ``iou_threshold``). One that finds none but overlaps an ignored box that much is ignored; any other
    is a false positive.

    Args:
        boxes: detected boxes, image pixels.
        scores: their scores (same length).
        gt: the image's ground truth.
        iou_threshold: minimum IoU for a match.

    Returns:
        The per-detection outcome, in descending score order.
    """
    if len(boxes) != len(scores):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    sorted_boxes = [boxes[i] for i in order]
    iou = _iou_matrix(sorted_boxes, gt.boxes)
    iou_ign = _iou_matrix(sorted_boxes, gt.ignore)
    taken = np.zeros(len(gt.boxes), dtype=bool)
    matched = np.zeros(len(sorted_boxes), dtype=np.int8)
    for d in range(len(sorted_boxes)):
        if len(gt.boxes):
            cand = np.where(taken, -1.0, iou[d])
            j = int(np.argmax(cand))
            if cand[j] >= iou_threshold:
                taken[j] = True
                matched[d] = 1
                continue
        if len(gt.ignore) and float(iou_ign[d].max()) >= iou_threshold:
            matched[d] = -1
    return ImageResult(scores=np.asarray(scores, dtype=np.float64)[order], matched=matched, n_gt=len(gt.boxes))


def summarize(results: Iterable[ImageResult], threshold: float = -math.inf) -> DetectionScore:
    """Recall, precision and false positives over many images, keeping detections with score >= ``threshold``."""
    n_gt = n_images = tp = fp = 0
    for r in results:
        n_images += 1
        n_gt += r.n_gt
        keep = r.scores >= threshold
        tp += int(np.sum(r.matched[keep] == 1))
        fp += int(np.sum(r.matched[keep] == 0))
    recall = tp / n_gt if n_gt else 1.0
    precision = tp / (tp + fp) if tp + fp else 1.0
    return DetectionScore(n_images, n_gt, tp, fp, recall, precision)


def roc_points(results: Iterable[ImageResult]) -> list[RocPoint]:
    """Discrete ROC (FDDB style): one point at each distinct detection score, from highest to lowest.

    Greedy matching in score order makes a detection's outcome independent of lower-scored detections, so
    thresholding the matched list gives the same result as re-matching at each threshold.
    """
    results = list(results)
    n_gt = sum(r.n_gt for r in results)
    if not results:
        return []
    scores = np.concatenate([r.scores for r in results]) if results else np.zeros(0)
    matched = np.concatenate([r.matched for r in results]) if results else np.zeros(0, dtype=np.int8)
    order = np.argsort(-scores, kind="stable")
    scores, matched = scores[order], matched[order]
    tp_cum = np.cumsum(matched == 1)
    fp_cum = np.cumsum(matched == 0)
    points: list[RocPoint] = []
    for k in range(len(scores)):
        if k + 1 < len(scores) and scores[k + 1] == scores[k]:
            continue
        tp, fp = int(tp_cum[k]), int(fp_cum[k])
        points.append(RocPoint(float(scores[k]), tp, fp, tp / n_gt if n_gt else 1.0))
    return points


def evaluate(
    detections: Sequence[tuple[Sequence[Box], Sequence[float]]],
    ground_truth: Sequence[GroundTruthImage],
    iou_threshold: float = 0.4,
) -> list[ImageResult]:
    """Match each image's ``(boxes, scores)`` to its ground truth (same order); see :func:`match_image`."""
    if len(detections) != len(ground_truth):
        raise ValueError(f"{len(detections)} detection lists for {len(ground_truth)} images")
    return [match_image(b, s, gt, iou_threshold) for (b, s), gt in zip(detections, ground_truth, strict=True)]
