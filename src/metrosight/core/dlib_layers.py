"""The layers of a dlib DNN as :mod:`metrosight.core.dlib_dat` reads them, and the reader's errors.

Weights are float32 numpy arrays; a :class:`DlibNet` holds the loss layer, the input layer and the computational
layers in forward order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
