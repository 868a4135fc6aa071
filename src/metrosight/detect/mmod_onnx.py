"""dlib's CNN face detector (MMOD) on ONNX Runtime: the candidate issue 3 named, measured against the default.

``mmod_human_face_detector.dat`` (in ``face_recognition_models``, the same serialisation as the face ResNet) is a
small fully convolutional network: three 5×5 stride-2 convolutions (16, 32, 32 filters), three 5×5 convolutions of
45 filters, each followed by batch norm and ReLU, and a 9×9 convolution to one score channel. Trained with
max-margin object detection on an 80×80 sliding window, it scores every position of an image pyramid (each level
5/6 of the one before): a positive score at output cell ``o`` is a face centred on input pixel ``8·o + 14`` of that
level, 80 pixels square. dlib runs it at ~6 s a 720p frame on one core; here the same weights (read with
:mod:`metrosight.core.dlib_dat`, batch norms folded into the convolutions) run as one ONNX graph per process,
built in memory at first use (nothing is cached or downloaded).

The pyramid levels are run one by one instead of tiled into one image as dlib does, and resized with OpenCV's area
filter instead of dlib's ``pyramid_down<6>``; boxes therefore differ from dlib's by a pixel or two and scores
slightly (see the parity test). Faces smaller than 80 pixels need ``upsample`` (the image doubled first), as with
dlib's ``cnn_face_detection_model_v1(img, 1)``.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from metrosight.core.dlib_dat import (
    Affine,
    BatchNorm,
    Conv,
    DlibFormatError,
    InputRgbImagePyramid,
    LossMmod,
    Relu,
    read_dlib_net,
)
from metrosight.core.onnx_session import InferenceOptions, open_session
from metrosight.core.types import Box, Detection
from metrosight.detect.base import DetectorError, check_image, clipped_detection, nms_boxes
from metrosight.detect.landmarks import FivePointLandmarker

logger = logging.getLogger(__name__)

_PYRAMID_STEP = 5.0 / 6.0  # dlib's pyramid_down<6>


def default_model_path() -> Path:
    """``mmod_human_face_detector.dat`` in the installed ``face_recognition_models`` package."""
    try:
        import face_recognition_models  # the dlib model files' package: only when its weights are needed
    except ImportError as exc:
        raise DetectorError("dlib's CNN face detector needs the PyPI package face_recognition_models") from exc
    return Path(face_recognition_models.cnn_face_detector_model_location())


def build_mmod_onnx(path: Path) -> tuple[bytes, tuple[float, float, float], int, int, int]:
    """An ONNX graph of the MMOD network in ``path``, any input size.

    Returns:
        ``(model bytes, avg_rgb, window side, output stride, output offset)``: the input is
        ``(pixel - avg) / 256`` per RGB plane, ``(1, 3, H, W)`` float32; output cell ``o`` is centred on input pixel
        ``stride · o + offset``.

    Raises:
        DetectorError: the file is not a single-window MMOD network of convolutions, batch norms and ReLUs.
    """
    import onnx  # onnx: heavy, only when a model graph is built or read
    from onnx import TensorProto, helper, numpy_helper  # onnx: heavy, only when a model graph is built or read

    try:
        net = read_dlib_net(path)
    except (OSError, DlibFormatError) as exc:
        raise DetectorError(f"cannot read dlib MMOD model {path}: {exc}") from exc
    if not isinstance(net.loss, LossMmod) or not isinstance(net.input, InputRgbImagePyramid):
        raise DetectorError(f"{path} is not a dlib MMOD detector (loss {net.loss!r:.40}, input {net.input.tag})")
    windows = net.loss.detector_windows
    if len(windows) != 1 or windows[0].width != windows[0].height:
        raise DetectorError(f"{path}: only one square detector window is supported, got {windows}")

    nodes: list[Any] = []
    inits: list[Any] = []
    cur, stride, offset = "x", 1, 0
    layers = list(net.layers)
    i = 0
    while i < len(layers):
        layer = layers[i]
        if not isinstance(layer, Conv):
            raise DetectorError(f"{path}: unsupported layer {layer.tag} at position {i}")
        w = layer.weight.astype(np.float64)
        b = np.zeros(w.shape[0]) if layer.bias is None else layer.bias.astype(np.float64)
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(nxt, BatchNorm | Affine):
            aff = nxt.as_affine() if isinstance(nxt, BatchNorm) else nxt
            w = w * aff.gamma.astype(np.float64)[:, None, None, None]
            b = b * aff.gamma + aff.beta
            i += 1
        k = int(w.shape[2])
        (sy, sx), (py, px) = layer.stride, layer.padding
        if sy != sx or py != px or w.shape[2] != w.shape[3]:
            raise DetectorError(f"{path}: only square kernels, strides and paddings are supported ({layer.tag})")
        # dlib maps an output position to the input as p * stride + kernel // 2 - padding
        offset = offset + stride * (k // 2 - py)
        stride *= sy
        n = len(nodes)
        inits += [
            numpy_helper.from_array(w.astype(np.float32), f"w{n}"),
            numpy_helper.from_array(b.astype(np.float32), f"b{n}"),
        ]
        out = f"c{n}"
        nodes.append(
            helper.make_node(
                "Conv", [cur, f"w{n}", f"b{n}"], [out], kernel_shape=[k, k], strides=[sy, sx], pads=[py, px, py, px]
            )
        )
        cur = out
        i += 1
        if i < len(layers) and isinstance(layers[i], Relu):
            nodes.append(helper.make_node("Relu", [cur], [f"r{n}"]))
            cur = f"r{n}"
            i += 1
    nodes.append(helper.make_node("Identity", [cur], ["score"]))
    graph = helper.make_graph(
        nodes,
        "dlib_mmod",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [1, 1, "grid_h", "grid_w"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model.SerializeToString(), net.input.avg_rgb, int(windows[0].width), stride, offset


class MmodOnnxDetector:
    """dlib's CNN (MMOD) face detector on ONNX Runtime.

    Args:
        upsample: image doublings before detection (0 finds faces from ~80 px, 1 from ~40 px at 4× the cost).
        score_threshold: minimum MMOD score (dlib's default adjust_threshold is 0).
        landmarks: also compute dlib 5-point landmarks for each face.
        model_path: an MMOD ``.dat``; ``None`` for ``face_recognition_models``'s.
        threads: ONNX Runtime intra-op threads (when ``inference`` is not given).
        inference: runtime, providers, threads and batch size (:mod:`metrosight.core.onnx_session`).
    """

    name = "mmod"
    scales_input = False  # give it frames downscaled to detection.max_width

    def __init__(
        self,
        upsample: int = 0,
        score_threshold: float = 0.0,
        landmarks: bool = True,
        model_path: str | Path | None = None,
        threads: int = 1,
        inference: InferenceOptions | None = None,
    ) -> None:
        if not 0 <= upsample <= 2:
            raise DetectorError(f"upsample must be 0, 1 or 2, got {upsample}")
        self.upsample = int(upsample)
        self.score_threshold = float(score_threshold)
        self.inference = inference or InferenceOptions(threads=int(threads))
        self.threads = self.inference.threads
        self._model_path = Path(model_path) if model_path is not None else None
        if self._model_path is not None and not self._model_path.is_file():
            raise DetectorError(f"dlib MMOD model not found: {self._model_path}")
        self._landmarker = FivePointLandmarker() if landmarks else None
        self._net: tuple[Any, np.ndarray, int, int, int] | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[Any, np.ndarray, int, int, int]:
        with self._lock:
            if self._net is None:
                path = self._model_path or default_model_path()
                model, avg, window, stride, offset = build_mmod_onnx(path)
                try:
                    sess = open_session(model, self.inference)
                except Exception as exc:  # onnxruntime's own exception types
                    raise DetectorError(f"cannot load dlib MMOD model {path}: {exc}") from exc
                self._net = (sess, np.asarray(avg, np.float32).reshape(3, 1, 1), window, stride, offset)
        return self._net

    def levels(self, h: int, w: int, window: int) -> list[float]:
        """Scales of the pyramid levels for an ``h`` × ``w`` frame (after upsampling), largest first: each 5/6 of
        the one before, down to the last level the window still fits in."""
        s, out = float(2**self.upsample), []
        while min(h, w) * s >= window:
            out.append(s)
            s *= _PYRAMID_STEP
        return out

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in ``image`` (``(H, W, 3)`` uint8 RGB); see :class:`~metrosight.detect.base.FaceDetector`."""
        import cv2  # OpenCV: heavy, loaded on first use

        image = check_image(image)
        h, w = image.shape[:2]
        sess, avg, window, stride, offset = self._load()
        boxes, scores = [], []
        for s in self.levels(h, w, window):
            lw, lh = max(1, round(w * s)), max(1, round(h * s))
            level = cv2.resize(image, (lw, lh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
            x = ((level.transpose(2, 0, 1).astype(np.float32) - avg) / 256.0)[None]
            try:
                (score,) = sess.run(["score"], {"x": x})
            except Exception as exc:  # onnxruntime's own exception types
                raise DetectorError(f"dlib MMOD failed to run on a {lw}x{lh} level: {exc}") from exc
            ys, xs = np.nonzero(score[0, 0] > self.score_threshold)
            if ys.size == 0:
                continue
            cx, cy = (stride * xs + offset) / s, (stride * ys + offset) / s
            half = window / 2.0 / s
            boxes.append(np.stack([cx - half, cy - half, cx + half, cy + half], axis=1))
            scores.append(score[0, 0, ys, xs])
        if not boxes:
            return []
        allb = np.concatenate(boxes).astype(np.float32)
        alls = np.concatenate(scores).astype(np.float32)
        keep = nms_boxes(allb, alls, 0.3383)  # the model's own NMS overlap (IoU)
        out = []
        for k in keep:
            x1, y1, x2, y2 = (float(v) for v in allb[k])
            det = clipped_detection(image, Box(x1, y1, x2, y2), float(alls[k]), self._landmarker)
            if det is not None:
                out.append(det)
        return out
