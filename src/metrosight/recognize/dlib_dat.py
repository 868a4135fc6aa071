"""Reader for dlib's DNN serialisation format (the ``.dat`` files written by ``dlib::serialize(net)``).

dlib writes a network as nested objects, outermost first::

    add_loss_layer   := int version(1), loss details, subnet
    add_layer        := int version(1|2), subnet, layer details, bool×3, tensor x_grad, tensor cached_output,
                        [tensor params_grad if version 2]
    add_layer(input) := int version(2|3), input layer, layer details, bool×3, tensor x_grad, tensor cached_output,
                        tensor grad_final, [uint sample_expansion_factor if version 3]
    add_tag_layer    := int version(1), subnet
    add_skip_layer   := int version(1), subnet

Each layer's details start with a string that names the layer and its serialisation version (``"con_4"``,
``"affine_"``, ``"bn_con2"``, ``"relu_"``, ...). Primitive encodings (dlib/serialize.h, dlib/float_details.h,
dlib/dnn/tensor.h):

- integers: one control byte (bit 7: negative; bits 0-3: number of bytes that follow, 1..8; bits 4-6 zero), then the
  magnitude as little-endian bytes;
- ``bool``: the ASCII byte ``'1'`` or ``'0'``; ``char``/``uint8``: one raw byte;
- ``float``/``double``: int64 mantissa then int16 exponent, each as an integer above; the value is
  ``mantissa * 2**exponent`` (exponent 32000/32001/32002 mean +inf/-inf/NaN);
- strings: length (integer) then the raw bytes;
- ``std::vector``: length (integer) then the elements;
- tensors: int version, then ``num_samples, k, nr, nc``; version 2 stores the values as raw little-endian
  float32, version 1 as one dlib float each;
- alias tensors (views into a layer's parameter tensor): int version(1), ``num_samples, k, nr, nc``.

The format is not fully self-describing: a tag layer and a skip layer serialise identically, and neither records
its id, so the reader returns both as :class:`TagOrSkip` markers in stream order; which is which must come from the
known network definition (see :mod:`metrosight.recognize.embedder_onnx` for dlib's face ResNet). An ``add_layer`` of
version 1 (dlib before 19.0) is indistinguishable from a tag layer and is not supported. ``repeat<>`` layers are not
supported (the face ResNet and the MMOD face detector do not use them).

:func:`read_dlib_net` returns a :class:`DlibNet`: the loss layer (or ``None``), the input layer, and the
computational layers in *forward* order (the layer applied to the input first). All weights are float32 numpy
arrays. bzip2-compressed files (as dlib-models distributes them) are decompressed transparently.
"""

from __future__ import annotations

import bz2
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# Largest string dlib layer/version names have; a string length above this is treated as corruption.
_MAX_NAME_LEN = 256


class DlibFormatError(ValueError):
    """The byte stream is not a dlib DNN serialisation this reader understands.

    Attributes:
        offset: byte offset in the (decompressed) stream where the problem was found.
        value: the offending value (a tag string, a version number, a byte), if any.
    """

    def __init__(self, message: str, *, offset: int, value: object = None) -> None:
        super().__init__(f"{message} (at byte {offset}; value {value!r})")
        self.offset = offset
        self.value = value


class DlibTruncatedError(DlibFormatError):
    """The stream ended before the object being read was complete."""


class DlibUnknownLayerError(DlibFormatError):
    """A layer, loss or input tag that this reader does not know (``value`` is the tag string)."""


# ---------------------------------------------------------------------------------------------------------------
# Returned structure
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Conv:
    """``con_`` (tags ``con_`` .. ``con_6``): 2-D cross-correlation.

    Attributes:
        weight: ``(num_filters, k_in, nr, nc)`` float32, same layout as ONNX ``Conv`` (OIHW).
        bias: ``(num_filters,)`` float32, or ``None`` when the layer has no bias.
        stride: ``(stride_y, stride_x)``.
        padding: ``(padding_y, padding_x)``, zero padding on each side.
        use_relu: ``con_6`` only: a ReLU fused after the convolution.
    """

    tag: str
    weight: np.ndarray
    bias: np.ndarray | None
    stride: tuple[int, int]
    padding: tuple[int, int]
    use_relu: bool = False

    @property
    def num_filters(self) -> int:
        return int(self.weight.shape[0])


@dataclass(frozen=True, slots=True)
class FullyConnected:
    """``fc_2``: ``out = flatten(x) @ weight + bias`` with ``x`` flattened in ``(k, nr, nc)`` order.

    Attributes:
        weight: ``(num_inputs, num_outputs)`` float32 (dlib's layout: inputs × outputs).
        bias: ``(num_outputs,)`` float32, or ``None`` (``fc_no_bias``).
    """

    tag: str
    weight: np.ndarray
    bias: np.ndarray | None


@dataclass(frozen=True, slots=True)
class Affine:
    """``affine_``/``affine_2``: ``out = gamma * x + beta``.

    Attributes:
        gamma: ``(k,)`` per channel in conv mode; ``(k, nr, nc)`` per element in fc mode.
        beta: same shape as ``gamma``.
        mode: ``"conv"`` or ``"fc"``.
        disabled: ``affine_2`` only: the layer is an identity.
    """

    tag: str
    gamma: np.ndarray
    beta: np.ndarray
    mode: str
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class BatchNorm:
    """``bn_con2``/``bn_fc2``: batch normalisation with running statistics (inference uses the running ones).

    Attributes:
        gamma, beta, running_mean, running_var: ``(k,)`` in conv mode, ``(k, nr, nc)`` in fc mode.
        eps: added to the variance.
        mode: ``"conv"`` or ``"fc"``.
    """

    tag: str
    gamma: np.ndarray
    beta: np.ndarray
    running_mean: np.ndarray
    running_var: np.ndarray
    eps: float
    mode: str

    def as_affine(self) -> Affine:
        """The equivalent :class:`Affine`, computed in float32 as dlib's ``affine_(const bn_&)`` does."""
        g = (self.gamma / np.sqrt(self.running_var + np.float32(self.eps))).astype(np.float32)
        b = (self.beta - g * self.running_mean).astype(np.float32)
        return Affine(tag=self.tag, gamma=g, beta=b, mode=self.mode)


@dataclass(frozen=True, slots=True)
class Relu:
    """``relu_``."""

    tag: str = "relu_"


@dataclass(frozen=True, slots=True)
class AddPrev:
    """``add_prev_``: adds the output of a tagged earlier layer (the tag id is not serialised).

    dlib's addition zero-pads the smaller operand at the end of each dimension (channels, rows, cols).
    """

    tag: str = "add_prev_"


@dataclass(frozen=True, slots=True)
class Pool:
    """``max_pool_2``/``avg_pool_2`` (and their padding-less ``_`` versions).

    Attributes:
        kind: ``"max"`` or ``"avg"``.
        window: ``(nr, nc)``; ``(0, 0)`` means the whole input (``avg_pool_everything``).
        stride: ``(stride_y, stride_x)``.
        padding: ``(padding_y, padding_x)``.
    """

    tag: str
    kind: str
    window: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True, slots=True)
class TagOrSkip:
    """A ``tagN`` or ``skipN`` layer: the stream does not say which, nor N."""

    tag: str = "tag_or_skip"


@dataclass(frozen=True, slots=True)
class Simple:
    """A parameterless layer recognised by name only (e.g. ``sig_``, ``htan_``, ``dropout_`` at inference)."""

    tag: str


Layer = Conv | FullyConnected | Affine | BatchNorm | Relu | AddPrev | Pool | TagOrSkip | Simple


@dataclass(frozen=True, slots=True)
class InputRgbImageSized:
    """``input_rgb_image_sized<NR, NC>``: tensor = ``(pixel - avg) / 256`` per channel, planes in R, G, B order.

    Attributes:
        avg_rgb: the means subtracted from red, green, blue (float32 values as dlib stores them).
        size: ``(nr, nc)`` of the images the net accepts.
    """

    tag: str
    avg_rgb: tuple[float, float, float]
    size: tuple[int, int]


@dataclass(frozen=True, slots=True)
class InputRgbImagePyramid:
    """``input_rgb_image_pyramid<PYR>``: ``(pixel - avg) / 256`` on a tiled image pyramid.

    Attributes:
        avg_rgb: the means subtracted from red, green, blue.
        pyramid_padding: pixels between pyramid levels in the tiled image (dlib assumes 10 for the old tag).
        pyramid_outer_padding: pixels around the tiled image (dlib assumes 11 for the old tag).
    """

    tag: str
    avg_rgb: tuple[float, float, float]
    pyramid_padding: int
    pyramid_outer_padding: int


@dataclass(frozen=True, slots=True)
class InputRgbImage:
    """``input_rgb_image``: ``(pixel - avg) / 256`` on an image of any size."""

    tag: str
    avg_rgb: tuple[float, float, float]


InputLayer = InputRgbImageSized | InputRgbImagePyramid | InputRgbImage


@dataclass(frozen=True, slots=True)
class LossMetric:
    """``loss_metric_`` / ``loss_metric_2``: metric learning; the net's output is the descriptor.

    Attributes:
        margin: the training margin.
        dist_thresh: the distance threshold (0.6 for the face ResNet).
    """

    tag: str
    margin: float
    dist_thresh: float


@dataclass(frozen=True, slots=True)
class DetectorWindow:
    """One MMOD sliding window: ``width`` × ``height`` pixels, with a class ``label`` ('' when unlabelled)."""

    width: int
    height: int
    label: str = ""


@dataclass(frozen=True, slots=True)
class BoxOverlap:
    """dlib's ``test_box_overlap``: boxes overlap when IoU > ``iou_thresh`` or one covers > ``percent_covered``."""

    iou_thresh: float
    percent_covered_thresh: float


@dataclass(frozen=True, slots=True)
class LossMmod:
    """``loss_mmod_``: max-margin object detection. The net's output has one channel per detector window
    (five per window with bounding-box regression).

    Attributes:
        options_version: version of the serialised ``mmod_options`` (1..4).
        detector_windows: the sliding windows.
        overlaps_nms: overlap test used for non-maximum suppression.
        overlaps_ignore: overlap test for ignore boxes.
        assume_image_pyramid: dlib's ``use_image_pyramid`` enum (1 = yes, default before version 3).
        use_bounding_box_regression, bbr_lambda: version 4 fields (defaults False, 100 before).
    """

    tag: str
    options_version: int
    detector_windows: tuple[DetectorWindow, ...]
    loss_per_false_alarm: float
    loss_per_missed_target: float
    truth_match_iou_threshold: float
    overlaps_nms: BoxOverlap
    overlaps_ignore: BoxOverlap
    assume_image_pyramid: int = 1
    use_bounding_box_regression: bool = False
    bbr_lambda: float = 100.0


LossLayer = LossMetric | LossMmod


@dataclass(frozen=True, slots=True)
class DlibNet:
    """A parsed dlib network.

    Attributes:
        loss: the loss layer, or ``None`` for a network serialised without one.
        input: the input layer.
        layers: computational and structural layers in forward order: ``layers[0]`` is applied to the input
            tensor, ``layers[-1]`` produces the output the loss layer reads.
    """

    loss: LossLayer | None
    input: InputLayer
    layers: tuple[Layer, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        """One line per layer, input first, for logs and debugging."""
        lines = [f"input {self.input.tag}"]
        for i, layer in enumerate(self.layers):
            extra = ""
            if isinstance(layer, Conv):
                extra = f" {tuple(layer.weight.shape)} stride={layer.stride} pad={layer.padding}"
            elif isinstance(layer, Pool):
                extra = f" {layer.kind} {layer.window} stride={layer.stride} pad={layer.padding}"
            elif isinstance(layer, FullyConnected):
                extra = f" {tuple(layer.weight.shape)} bias={layer.bias is not None}"
            elif isinstance(layer, (Affine, BatchNorm)):
                extra = f" {layer.mode} {tuple(layer.gamma.shape)}"
            lines.append(f"{i:4d} {layer.tag}{extra}")
        lines.append(f"loss {self.loss.tag if self.loss is not None else None}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Primitive decoding
# ---------------------------------------------------------------------------------------------------------------


class _Stream:
    """A cursor over bytes with dlib's primitive decoders."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def _need(self, n: int, what: str) -> None:
        if self.pos + n > len(self.data):
            raise DlibTruncatedError(
                f"stream ended while reading {what}: needed {n} bytes, {len(self.data) - self.pos} left",
                offset=self.pos,
                value=len(self.data),
            )

    def read_bytes(self, n: int, what: str) -> bytes:
        self._need(n, what)
        out = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return out

    def read_int(self, what: str = "integer", *, signed: bool = True) -> int:
        start = self.pos
        self._need(1, what)
        ctrl = self.data[self.pos]
        size = ctrl & 0x0F
        if ctrl & 0x70 or size == 0 or size > 8:
            raise DlibFormatError(f"bad integer control byte while reading {what}", offset=start, value=ctrl)
        if ctrl & 0x80 and not signed:
            raise DlibFormatError(f"negative value for unsigned {what}", offset=start, value=ctrl)
        self.pos += 1
        raw = self.read_bytes(size, what)
        value = int.from_bytes(raw, "little", signed=False)
        return -value if ctrl & 0x80 else value

    def peek_int(self) -> int | None:
        """The next integer without consuming it, or ``None`` if the next bytes are not a valid integer."""
        saved = self.pos
        try:
            return self.read_int()
        except DlibFormatError:
            return None
        finally:
            self.pos = saved

    def read_float(self, what: str = "float") -> float:
        start = self.pos
        self._need(1, what)
        if self.data[self.pos] & 0x70:
            # dlib's pre-2013 ASCII float format; no DNN file uses it.
            raise DlibFormatError(
                f"ASCII float encoding is not supported ({what})", offset=start, value=self.data[self.pos]
            )
        mantissa = self.read_int(what)
        exponent = self.read_int(what)
        if not -32768 <= exponent <= 32767:
            raise DlibFormatError(f"float exponent out of int16 range ({what})", offset=start, value=exponent)
        if exponent == 32000:
            return math.inf
        if exponent == 32001:
            return -math.inf
        if exponent == 32002:
            return math.nan
        return math.ldexp(float(mantissa), exponent)

    def read_bool(self, what: str = "bool") -> bool:
        start = self.pos
        b = self.read_bytes(1, what)[0]
        if b == ord("1"):
            return True
        if b == ord("0"):
            return False
        raise DlibFormatError(f"bad bool byte while reading {what}", offset=start, value=b)

    def read_u8(self, what: str = "uint8") -> int:
        return self.read_bytes(1, what)[0]

    def read_string(self, what: str = "string") -> str:
        start = self.pos
        n = self.read_int(what, signed=False)
        if n > _MAX_NAME_LEN and what.endswith("tag"):
            raise DlibFormatError(f"implausible length for {what}", offset=start, value=n)
        raw = self.read_bytes(n, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DlibFormatError(f"non-text bytes in {what}", offset=start, value=raw[:32]) from exc

    def peek_is_name(self) -> bool:
        """Whether a layer/input/loss name string starts here (versions are 1..3; names are 4+ chars)."""
        saved = self.pos
        try:
            n = self.read_int(signed=False)
            if not 4 <= n <= _MAX_NAME_LEN or self.pos + n > len(self.data):
                return False
            raw = bytes(self.data[self.pos : self.pos + n])
            return all(c == 0x5F or 0x30 <= c <= 0x39 or 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A for c in raw)
        except DlibFormatError:
            return False
        finally:
            self.pos = saved

    def read_tensor(self, what: str = "tensor") -> np.ndarray:
        """A (resizable_)tensor as a ``(num_samples, k, nr, nc)`` float32 array."""
        start = self.pos
        version = self.read_int(f"{what} version")
        dims = [self.read_int(f"{what} dims", signed=False) for _ in range(4)]
        count = dims[0] * dims[1] * dims[2] * dims[3]
        if version == 2:
            self._need(4 * count, f"{what} data")
            arr = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).astype(np.float32)
            self.pos += 4 * count
        elif version == 1:
            arr = np.array([self.read_float(f"{what} data") for _ in range(count)], dtype=np.float32)
        else:
            raise DlibFormatError(f"unknown {what} version", offset=start, value=version)
        return arr.reshape(dims)

    def read_alias(self, what: str = "alias_tensor") -> tuple[int, int, int, int]:
        start = self.pos
        version = self.read_int(f"{what} version")
        if version != 1:
            raise DlibFormatError(f"unknown {what} version", offset=start, value=version)
        n, k, nr, nc = (self.read_int(f"{what} dims", signed=False) for _ in range(4))
        return (n, k, nr, nc)


def _view(params: np.ndarray, shape: tuple[int, int, int, int], offset: int, what: str, pos: int) -> np.ndarray:
    flat = params.reshape(-1)
    size = shape[0] * shape[1] * shape[2] * shape[3]
    if offset + size > flat.size:
        raise DlibFormatError(
            f"{what} alias {shape} at {offset} exceeds parameter tensor of {flat.size}", offset=pos, value=shape
        )
    return flat[offset : offset + size].reshape(shape).copy()


# ---------------------------------------------------------------------------------------------------------------
# Layer details
# ---------------------------------------------------------------------------------------------------------------


def _read_conv(s: _Stream, tag: str) -> Conv:
    pos = s.pos
    params = s.read_tensor("con_ params")
    num_filters = s.read_int("con_ num_filters")
    nr = s.read_int("con_ nr")
    nc = s.read_int("con_ nc")
    stride = (s.read_int("con_ stride_y"), s.read_int("con_ stride_x"))
    if tag == "con_":
        # The oldest con_ had no padding fields: dlib then padded only stride-1 convolutions, by half the size.
        padding = (nr // 2 if stride[0] == 1 else 0, nc // 2 if stride[1] == 1 else 0)
    else:
        padding = (s.read_int("con_ padding_y"), s.read_int("con_ padding_x"))
    filters = s.read_alias("con_ filters")
    biases = s.read_alias("con_ biases")
    if tag != "con_":
        for name in (
            "learning_rate_multiplier",
            "weight_decay_multiplier",
            "bias_learning_rate_multiplier",
            "bias_weight_decay_multiplier",
        ):
            s.read_float(f"con_ {name}")
    use_bias = True
    use_relu = False
    if tag in ("con_5", "con_6"):
        use_bias = s.read_bool("con_ use_bias")
    if tag == "con_6":
        use_relu = s.read_bool("con_ use_relu")
    # The filters alias is (num_filters, k_in, nr, nc), the biases alias (1, num_filters), after the filters.
    if filters[0] != num_filters or filters[2:] != (nr, nc):
        raise DlibFormatError(
            "con_ filter shape disagrees with num_filters/nr/nc", offset=pos, value=(filters, num_filters, nr, nc)
        )
    weight = _view(params, filters, 0, "con_ filters", pos)
    bias = None
    if use_bias:
        if biases[0] * biases[1] * biases[2] * biases[3] != num_filters:
            raise DlibFormatError("con_ bias count disagrees with num_filters", offset=pos, value=biases)
        bias = _view(params, biases, weight.size, "con_ biases", pos).reshape(num_filters)
    return Conv(tag=tag, weight=weight, bias=bias, stride=stride, padding=padding, use_relu=use_relu)


def _read_fc(s: _Stream, tag: str) -> FullyConnected:
    pos = s.pos
    num_outputs = s.read_int("fc_ num_outputs", signed=False)
    num_inputs = s.read_int("fc_ num_inputs", signed=False)
    params = s.read_tensor("fc_ params")
    weights = s.read_alias("fc_ weights")
    biases = s.read_alias("fc_ biases")
    bias_mode = s.read_int("fc_ bias_mode")
    for name in (
        "learning_rate_multiplier",
        "weight_decay_multiplier",
        "bias_learning_rate_multiplier",
        "bias_weight_decay_multiplier",
    ):
        s.read_float(f"fc_ {name}")
    if bias_mode not in (0, 1):
        raise DlibFormatError("unknown fc_ bias mode", offset=pos, value=bias_mode)
    w = _view(params, weights, 0, "fc_ weights", pos).reshape(num_inputs, num_outputs)
    bias = None
    if bias_mode == 0:  # FC_HAS_BIAS
        bias = _view(params, biases, w.size, "fc_ biases", pos).reshape(num_outputs)
    return FullyConnected(tag=tag, weight=w, bias=bias)


def _mode_name(mode: int, pos: int) -> str:
    if mode == 0:
        return "conv"
    if mode == 1:
        return "fc"
    raise DlibFormatError("unknown layer mode", offset=pos, value=mode)


def _gamma_shape(alias: tuple[int, int, int, int], mode: str) -> tuple[int, ...]:
    return (alias[1],) if mode == "conv" else (alias[1], alias[2], alias[3])


def _read_affine(s: _Stream, tag: str) -> Affine:
    pos = s.pos
    params = s.read_tensor("affine_ params")
    gamma = s.read_alias("affine_ gamma")
    beta = s.read_alias("affine_ beta")
    mode = _mode_name(s.read_int("affine_ mode"), pos)
    disabled = s.read_bool("affine_ disabled") if tag == "affine_2" else False
    gsize = gamma[0] * gamma[1] * gamma[2] * gamma[3]
    g = _view(params, gamma, 0, "affine_ gamma", pos).reshape(_gamma_shape(gamma, mode))
    b = _view(params, beta, gsize, "affine_ beta", pos).reshape(_gamma_shape(beta, mode))
    return Affine(tag=tag, gamma=g, beta=b, mode=mode, disabled=disabled)


def _read_bn(s: _Stream, tag: str) -> BatchNorm:
    pos = s.pos
    mode = "conv" if tag == "bn_con2" else "fc"
    params = s.read_tensor("bn_ params")
    gamma = s.read_alias("bn_ gamma")
    beta = s.read_alias("bn_ beta")
    s.read_tensor("bn_ means")
    s.read_tensor("bn_ invstds")
    running_mean = s.read_tensor("bn_ running_means")
    running_var = s.read_tensor("bn_ running_variances")
    s.read_int("bn_ num_updates", signed=False)
    s.read_int("bn_ running_stats_window_size", signed=False)
    for name in (
        "learning_rate_multiplier",
        "weight_decay_multiplier",
        "bias_learning_rate_multiplier",
        "bias_weight_decay_multiplier",
    ):
        s.read_float(f"bn_ {name}")
    eps = s.read_float("bn_ eps")
    shape = _gamma_shape(gamma, mode)
    gsize = gamma[0] * gamma[1] * gamma[2] * gamma[3]
    return BatchNorm(
        tag=tag,
        gamma=_view(params, gamma, 0, "bn_ gamma", pos).reshape(shape),
        beta=_view(params, beta, gsize, "bn_ beta", pos).reshape(shape),
        running_mean=running_mean.reshape(shape),
        running_var=running_var.reshape(shape),
        eps=eps,
        mode=mode,
    )


def _read_pool(s: _Stream, tag: str) -> Pool:
    kind = "max" if tag.startswith("max") else "avg"
    nr = s.read_int(f"{tag} nr")
    nc = s.read_int(f"{tag} nc")
    stride = (s.read_int(f"{tag} stride_y"), s.read_int(f"{tag} stride_x"))
    if tag.endswith("_2"):
        padding = (s.read_int(f"{tag} padding_y"), s.read_int(f"{tag} padding_x"))
    else:
        padding = (0, 0)
    return Pool(tag=tag, kind=kind, window=(nr, nc), stride=stride, padding=padding)


_SIMPLE_LAYERS = {"sig_", "htan_", "softmax_", "softmax_all_", "mish_", "gelu_", "clipped_relu_", "elu_"}


def _read_layer_details(s: _Stream) -> Layer:
    pos = s.pos
    tag = s.read_string("layer tag")
    if tag in ("con_", "con_4", "con_5", "con_6"):
        return _read_conv(s, tag)
    if tag == "fc_2":
        return _read_fc(s, tag)
    if tag in ("affine_", "affine_2"):
        return _read_affine(s, tag)
    if tag in ("bn_con2", "bn_fc2"):
        return _read_bn(s, tag)
    if tag == "relu_":
        return Relu()
    if tag == "add_prev_":
        return AddPrev()
    if tag in ("max_pool_", "max_pool_2", "avg_pool_", "avg_pool_2"):
        return _read_pool(s, tag)
    if tag in _SIMPLE_LAYERS:
        return Simple(tag=tag)
    raise DlibUnknownLayerError("unknown layer tag", offset=pos, value=tag)


def _read_avg_rgb(s: _Stream, tag: str) -> tuple[float, float, float]:
    return (s.read_float(f"{tag} avg_red"), s.read_float(f"{tag} avg_green"), s.read_float(f"{tag} avg_blue"))


def _read_input(s: _Stream) -> InputLayer:
    pos = s.pos
    tag = s.read_string("input tag")
    if tag == "input_rgb_image_sized":
        avg = _read_avg_rgb(s, tag)
        nr = s.read_int(f"{tag} nr", signed=False)
        nc = s.read_int(f"{tag} nc", signed=False)
        return InputRgbImageSized(tag=tag, avg_rgb=avg, size=(nr, nc))
    if tag in ("input_rgb_image_pyramid", "input_rgb_image_pyramid2"):
        avg = _read_avg_rgb(s, tag)
        pad, outer = 10, 11  # what dlib assumes for the old tag, which did not store them
        if tag.endswith("2"):
            pad = s.read_int(f"{tag} pyramid_padding", signed=False)
            outer = s.read_int(f"{tag} pyramid_outer_padding", signed=False)
        return InputRgbImagePyramid(tag=tag, avg_rgb=avg, pyramid_padding=pad, pyramid_outer_padding=outer)
    if tag == "input_rgb_image":
        return InputRgbImage(tag=tag, avg_rgb=_read_avg_rgb(s, tag))
    raise DlibUnknownLayerError("unknown input layer tag", offset=pos, value=tag)


def _read_box_overlap(s: _Stream) -> BoxOverlap:
    return BoxOverlap(
        iou_thresh=s.read_float("test_box_overlap iou"),
        percent_covered_thresh=s.read_float("test_box_overlap percent_covered"),
    )


def _read_mmod_options(s: _Stream, tag: str) -> LossMmod:
    pos = s.pos
    version = s.read_int("mmod_options version")
    if not 1 <= version <= 4:
        raise DlibFormatError("unknown mmod_options version", offset=pos, value=version)
    windows: list[DetectorWindow] = []
    if version == 1:
        windows.append(
            DetectorWindow(
                width=s.read_int("detector_width", signed=False), height=s.read_int("detector_height", signed=False)
            )
        )
    else:
        count = s.read_int("detector_windows size", signed=False)
        for _ in range(count):
            wpos = s.pos
            wver = s.read_int("detector_window version")
            if wver not in (1, 2):
                raise DlibFormatError("unknown detector_window_details version", offset=wpos, value=wver)
            w = s.read_int("detector window width", signed=False)
            h = s.read_int("detector window height", signed=False)
            label = s.read_string("detector window label") if wver == 2 else ""
            windows.append(DetectorWindow(width=w, height=h, label=label))
    lfa = s.read_float("loss_per_false_alarm")
    lmt = s.read_float("loss_per_missed_target")
    iou = s.read_float("truth_match_iou_threshold")
    nms = _read_box_overlap(s)
    ignore = _read_box_overlap(s)
    assume_pyr = 1
    use_bbr = False
    bbr_lambda = 100.0
    if version >= 3:
        assume_pyr = s.read_u8("assume_image_pyramid")
    if version >= 4:
        use_bbr = s.read_bool("use_bounding_box_regression")
        bbr_lambda = s.read_float("bbr_lambda")
    return LossMmod(
        tag=tag,
        options_version=version,
        detector_windows=tuple(windows),
        loss_per_false_alarm=lfa,
        loss_per_missed_target=lmt,
        truth_match_iou_threshold=iou,
        overlaps_nms=nms,
        overlaps_ignore=ignore,
        assume_image_pyramid=assume_pyr,
        use_bounding_box_regression=use_bbr,
        bbr_lambda=bbr_lambda,
    )


def _read_loss(s: _Stream) -> LossLayer:
    pos = s.pos
    tag = s.read_string("loss tag")
    if tag == "loss_metric_":
        return LossMetric(tag=tag, margin=0.1, dist_thresh=0.75)  # dlib's hard-coded values for version 1
    if tag == "loss_metric_2":
        return LossMetric(
            tag=tag, margin=s.read_float("loss_metric margin"), dist_thresh=s.read_float("loss_metric dist_thresh")
        )
    if tag == "loss_mmod_":
        return _read_mmod_options(s, tag)
    raise DlibUnknownLayerError("unknown loss layer tag", offset=pos, value=tag)


def _skip_layer_state(s: _Stream, *, input_level: bool, version: int) -> None:
    """The bookkeeping an ``add_layer`` writes after its details (flags and training buffers)."""
    for name in ("this_layer_setup_called", "gradient_input_is_stale", "get_output_and_gradient_input_disabled"):
        s.read_bool(name)
    s.read_tensor("x_grad")
    s.read_tensor("cached_output")
    if input_level:
        s.read_tensor("grad_final")
        if version >= 3:
            s.read_int("sample_expansion_factor", signed=False)
    else:
        s.read_tensor("params_grad")


# ---------------------------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------------------------


def parse_dlib_net(data: bytes) -> DlibNet:
    """Parse a dlib DNN serialisation from bytes (bzip2-compressed or not).

    Args:
        data: the file's bytes.

    Returns:
        The parsed network (see the module docstring).

    Raises:
        DlibTruncatedError: the stream ends early.
        DlibUnknownLayerError: a layer, input or loss tag this reader does not know.
        DlibFormatError: any other inconsistency (bad versions, bad encodings, trailing bytes).
    """
    if data[:3] == b"BZh":
        try:
            data = bz2.decompress(data)
        except (OSError, ValueError) as exc:
            raise DlibFormatError("bad bzip2 stream", offset=0, value=str(exc)) from exc
    s = _Stream(data)
    loss: LossLayer | None = None

    pos = s.pos
    version = s.read_int("top-level version")
    if version == 1 and s.peek_is_name():
        saved = s.pos
        tag = s.read_string("loss tag")
        s.pos = saved
        if tag.startswith("loss_"):
            loss = _read_loss(s)
            pos = s.pos
            version = s.read_int("add_layer version")

    # Descend through the nested subnetworks (outermost first) until the input layer.
    stack: list[int] = []  # versions of the enclosing objects, outermost first (1 = tag/skip, 2 = add_layer)
    while not s.peek_is_name():
        if version == 1:
            stack.append(1)
        elif version == 2:
            stack.append(2)
        else:
            raise DlibFormatError("unexpected layer version", offset=pos, value=version)
        pos = s.pos
        version = s.read_int("add_layer version")
    if version not in (2, 3):
        raise DlibFormatError("unexpected version of the input-level add_layer", offset=pos, value=version)
    input_layer = _read_input(s)

    layers: list[Layer] = [_read_layer_details(s)]
    _skip_layer_state(s, input_level=True, version=version)
    # Unwind: innermost enclosing object first, which is the next layer in forward order.
    for v in reversed(stack):
        if v == 1:
            layers.append(TagOrSkip())
        else:
            layers.append(_read_layer_details(s))
            _skip_layer_state(s, input_level=False, version=v)
    if s.pos != len(s.data):
        raise DlibFormatError("trailing bytes after the network", offset=s.pos, value=len(s.data) - s.pos)
    logger.debug(
        "parsed dlib net: %d layers, input %s, loss %s", len(layers), input_layer.tag, loss.tag if loss else None
    )
    return DlibNet(loss=loss, input=input_layer, layers=tuple(layers))


def read_dlib_net(path: str | Path) -> DlibNet:
    """Read and parse a dlib DNN ``.dat`` file (see :func:`parse_dlib_net`)."""
    p = Path(path)
    logger.debug("reading dlib net %s", p)
    return parse_dlib_net(p.read_bytes())
