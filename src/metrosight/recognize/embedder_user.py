"""A user-supplied ONNX face-descriptor model, by path: any network that maps a face crop to a vector.

metrosight ships dlib's ResNet (128-D); an installation may bring its own descriptor model instead (an ArcFace-style
ONNX file, say). This backend feeds it the aligned chips every embedder gets (dlib's ``get_face_chip(size=150,
padding=0.25)``), cut to their central ``crop`` fraction, resized to the model's ``input_size``, in its channel order
and layout, and normalised as ``(pixel - mean) / std`` when the model takes floats (uint8 models get the pixels).

What the rest of the system needs follows from the file itself:

- the descriptor size is the last dimension of the model's output shape (it must be fixed);
- the model id stored with every template is ``onnx-user:`` and the first 32 hex digits of the file's SHA-256, so a
  gallery enrolled under another model (dlib's, or another file) is never compared with this one's descriptors:
  the runtime refuses to match against it and says so.

The file is read and checked when the backend is built (a missing file, a model whose input does not fit the
configured size or layout, or an output without a fixed size is refused then, with the file named); the inference
session opens on the first :meth:`UserOnnxEmbedder.embed`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metrosight.core.derived import file_sha256
from metrosight.core.onnx_session import InferenceOptions, Session, open_session
from metrosight.recognize.embedder import EmbedderError, check_chips

MODEL_ID_PREFIX = "onnx-user:"
CHIP_SIZE = 150
_FLOAT = 1  # onnx TensorProto.FLOAT
_UINT8 = 2  # onnx TensorProto.UINT8


def user_model_id(path: Path) -> str:
    """The model id of an ONNX file: ``onnx-user:`` and the first 32 hex digits of its SHA-256."""
    return MODEL_ID_PREFIX + file_sha256(path)[:32]


def _fixed(dims: Sequence[Any]) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]


class UserOnnxEmbedder:
    """A user-supplied ONNX descriptor model (see the module docstring).

    Args:
        model_path: the ``.onnx`` file.
        input_size: side of the square input the model takes, pixels.
        crop: central fraction of the 150-pixel chip given to the model (1: the whole chip).
        channels: ``"rgb"`` or ``"bgr"``, the model's channel order.
        layout: ``"nchw"`` or ``"nhwc"``, the model's input layout.
        mean: per channel (in the model's order), subtracted from 0–255 pixels for a float input.
        std: per channel, dividing after the mean for a float input.
        output: name of the descriptor output; ``None`` for the model's first.
        inference: runtime, providers, threads and batch size (:mod:`metrosight.core.onnx_session`).

    Attributes:
        model_id: ``onnx-user:<sha256 prefix>`` of the file.
        dim: descriptor size, from the model's output shape.

    Raises:
        EmbedderError: the file is missing or unreadable, or its input or output does not fit the settings.
    """

    name = "onnx-user"

    def __init__(
        self,
        model_path: str | Path,
        input_size: int = 112,
        crop: float = 1.0,
        channels: str = "rgb",
        layout: str = "nchw",
        mean: Sequence[float] = (127.5, 127.5, 127.5),
        std: Sequence[float] = (128.0, 128.0, 128.0),
        output: str | None = None,
        inference: InferenceOptions | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise EmbedderError(f"embedder model not found: {self.model_path} (recognition.embedder.model_path)")
        if channels not in ("rgb", "bgr") or layout not in ("nchw", "nhwc") or not 0.2 < crop <= 1.0:
            raise EmbedderError(f"bad embedder settings: channels {channels!r}, layout {layout!r}, crop {crop}")
        self.input_size, self.crop, self.channels, self.layout = int(input_size), float(crop), channels, layout
        self.mean = np.asarray(mean, np.float32).reshape(3)
        self.std = np.asarray(std, np.float32).reshape(3)
        if np.any(self.std == 0):
            raise EmbedderError(f"embedder std must not be 0, got {list(std)}")
        self.inference = inference or InferenceOptions()
        self.model_id = user_model_id(self.model_path)
        self._input, self._float_input, self.output, self.dim = self._inspect(output)
        self._session: Session | None = None
        self._lock = threading.Lock()

    def _inspect(self, output: str | None) -> tuple[str, bool, str, int]:
        """``(input name, takes floats, output name, descriptor size)`` read from the file."""
        import onnx  # lazy: only a user model needs it here

        try:
            graph = onnx.load(str(self.model_path), load_external_data=False).graph
        except Exception as exc:  # onnx raises DecodeError, OSError, ...
            raise EmbedderError(f"{self.model_path}: not an ONNX model ({exc})") from None
        inits = {t.name for t in graph.initializer}
        inputs = [i for i in graph.input if i.name not in inits]
        if len(inputs) != 1:
            raise EmbedderError(f"{self.model_path}: a descriptor model takes one input, this one {len(inputs)}")
        tin = inputs[0].type.tensor_type
        s = self.input_size
        want = [None, 3, s, s] if self.layout == "nchw" else [None, s, s, 3]
        have = _fixed(tin.shape.dim)
        if len(have) != 4 or any(h is not None and h != w for h, w in zip(have[1:], want[1:], strict=True)):
            raise EmbedderError(
                f"{self.model_path}: input shape {have} does not fit layout {self.layout} at input_size {s} "
                f"(expected {['N', *want[1:]]})"
            )
        if tin.elem_type not in (_FLOAT, _UINT8):
            raise EmbedderError(f"{self.model_path}: input must be float32 or uint8 (ONNX type {tin.elem_type})")
        outs = {o.name: o for o in graph.output}
        name = output or graph.output[0].name
        if name not in outs:
            raise EmbedderError(f"{self.model_path}: no output {name!r} (it has {', '.join(outs)})")
        dims = _fixed(outs[name].type.tensor_type.shape.dim)
        if len(dims) != 2 or not dims[1]:
            raise EmbedderError(
                f"{self.model_path}: output {name!r} must be (N, D) with a fixed descriptor size D, got {dims}"
            )
        return inputs[0].name, tin.elem_type == _FLOAT, name, int(dims[1])

    def _get_session(self) -> Session:
        with self._lock:
            if self._session is None:
                try:
                    self._session = open_session(self.model_path, self.inference)
                except Exception as exc:  # the runtime's own exception types
                    raise EmbedderError(f"cannot load embedder model {self.model_path}: {exc}") from exc
            return self._session

    def prepare(self, chips: np.ndarray) -> np.ndarray:
        """The model's input for aligned chips ``(N, 150, 150, 3)`` uint8 RGB: cropped, resized, reordered and
        normalised as configured; ``(N, 3, S, S)`` or ``(N, S, S, 3)``, float32 or uint8."""
        import cv2  # lazy: OpenCV only where images are resized

        chips = check_chips(chips, CHIP_SIZE)
        side = round(CHIP_SIZE * self.crop)
        o = (CHIP_SIZE - side) // 2
        s = self.input_size
        if side == s:  # the model takes the chip's own size: no resampling
            x = chips[:, o : o + side, o : o + side]
        else:
            interp = cv2.INTER_AREA if s < side else cv2.INTER_LINEAR
            x = np.stack([cv2.resize(c[o : o + side, o : o + side], (s, s), interpolation=interp) for c in chips])
        if self.channels == "bgr":
            x = x[..., ::-1]
        if self._float_input:
            x = (x.astype(np.float32) - self.mean) / self.std
        if self.layout == "nchw":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x)

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Descriptors ``(N, dim)`` float32 of aligned chips ``(N, 150, 150, 3)`` uint8 RGB, in batches of at most
        ``inference.max_batch`` (one inference call each).

        Raises:
            ChipShapeError: chips of the wrong shape or type. EmbedderError: the model fails to load or run.
        """
        chips = check_chips(chips, CHIP_SIZE)
        if len(chips) == 0:
            return np.zeros((0, self.dim), np.float32)
        session = self._get_session()
        step = self.inference.max_batch
        parts = []
        for i in range(0, len(chips), step):
            try:
                (out,) = session.run([self.output], {self._input: self.prepare(chips[i : i + step])})
            except Exception as exc:  # the runtime's own exception types
                raise EmbedderError(f"embedder model {self.model_path} failed to run: {exc}") from exc
            parts.append(np.asarray(out, np.float32).reshape(-1, self.dim))
        return np.ascontiguousarray(np.concatenate(parts))
