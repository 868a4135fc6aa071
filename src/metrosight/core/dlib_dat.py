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
from pathlib import Path
from typing import Final

from metrosight.core.dlib_layers import (
    AddPrev,
    Affine,
    BatchNorm,
    BoxOverlap,
    Conv,
    DetectorWindow,
    DlibFormatError,
    DlibNet,
    DlibTruncatedError,
    DlibUnknownLayerError,
    FullyConnected,
    InputLayer,
    InputRgbImage,
    InputRgbImagePyramid,
    InputRgbImageSized,
    Layer,
    LossLayer,
    LossMetric,
    LossMmod,
    Pool,
    Relu,
    Simple,
    TagOrSkip,
)
from metrosight.core.dlib_stream import DlibStream, view_params

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------------
# Layer details
# ---------------------------------------------------------------------------------------------------------------


def _read_conv(s: DlibStream, tag: str) -> Conv:
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
    weight = view_params(params, filters, 0, "con_ filters", pos)
    bias = None
    if use_bias:
        if biases[0] * biases[1] * biases[2] * biases[3] != num_filters:
            raise DlibFormatError("con_ bias count disagrees with num_filters", offset=pos, value=biases)
        bias = view_params(params, biases, weight.size, "con_ biases", pos).reshape(num_filters)
    return Conv(tag=tag, weight=weight, bias=bias, stride=stride, padding=padding, use_relu=use_relu)


def _read_fc(s: DlibStream, tag: str) -> FullyConnected:
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
    w = view_params(params, weights, 0, "fc_ weights", pos).reshape(num_inputs, num_outputs)
    bias = None
    if bias_mode == 0:  # FC_HAS_BIAS
        bias = view_params(params, biases, w.size, "fc_ biases", pos).reshape(num_outputs)
    return FullyConnected(tag=tag, weight=w, bias=bias)


def _mode_name(mode: int, pos: int) -> str:
    if mode == 0:
        return "conv"
    if mode == 1:
        return "fc"
    raise DlibFormatError("unknown layer mode", offset=pos, value=mode)


def _gamma_shape(alias: tuple[int, int, int, int], mode: str) -> tuple[int, ...]:
    return (alias[1],) if mode == "conv" else (alias[1], alias[2], alias[3])


def _read_affine(s: DlibStream, tag: str) -> Affine:
    pos = s.pos
    params = s.read_tensor("affine_ params")
    gamma = s.read_alias("affine_ gamma")
    beta = s.read_alias("affine_ beta")
    mode = _mode_name(s.read_int("affine_ mode"), pos)
    disabled = s.read_bool("affine_ disabled") if tag == "affine_2" else False
    gsize = gamma[0] * gamma[1] * gamma[2] * gamma[3]
    g = view_params(params, gamma, 0, "affine_ gamma", pos).reshape(_gamma_shape(gamma, mode))
    b = view_params(params, beta, gsize, "affine_ beta", pos).reshape(_gamma_shape(beta, mode))
    return Affine(tag=tag, gamma=g, beta=b, mode=mode, disabled=disabled)


def _read_bn(s: DlibStream, tag: str) -> BatchNorm:
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
        gamma=view_params(params, gamma, 0, "bn_ gamma", pos).reshape(shape),
        beta=view_params(params, beta, gsize, "bn_ beta", pos).reshape(shape),
        running_mean=running_mean.reshape(shape),
        running_var=running_var.reshape(shape),
        eps=eps,
        mode=mode,
    )


def _read_pool(s: DlibStream, tag: str) -> Pool:
    kind = "max" if tag.startswith("max") else "avg"
    nr = s.read_int(f"{tag} nr")
    nc = s.read_int(f"{tag} nc")
    stride = (s.read_int(f"{tag} stride_y"), s.read_int(f"{tag} stride_x"))
    padding = (s.read_int(f"{tag} padding_y"), s.read_int(f"{tag} padding_x")) if tag.endswith("_2") else (0, 0)
    return Pool(tag=tag, kind=kind, window=(nr, nc), stride=stride, padding=padding)


_SIMPLE_LAYERS: Final = frozenset(
    {"sig_", "htan_", "softmax_", "softmax_all_", "mish_", "gelu_", "clipped_relu_", "elu_"}
)


def _read_layer_details(s: DlibStream) -> Layer:
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


def _read_avg_rgb(s: DlibStream, tag: str) -> tuple[float, float, float]:
    return (s.read_float(f"{tag} avg_red"), s.read_float(f"{tag} avg_green"), s.read_float(f"{tag} avg_blue"))


def _read_input(s: DlibStream) -> InputLayer:
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


def _read_box_overlap(s: DlibStream) -> BoxOverlap:
    return BoxOverlap(
        iou_thresh=s.read_float("test_box_overlap iou"),
        percent_covered_thresh=s.read_float("test_box_overlap percent_covered"),
    )


def _read_mmod_options(s: DlibStream, tag: str) -> LossMmod:
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


def _read_loss(s: DlibStream) -> LossLayer:
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


def _skip_layer_state(s: DlibStream, *, input_level: bool, version: int) -> None:
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
    s = DlibStream(data)
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


__all__ = [
    "AddPrev",
    "Affine",
    "BatchNorm",
    "BoxOverlap",
    "Conv",
    "DetectorWindow",
    "DlibFormatError",
    "DlibNet",
    "DlibTruncatedError",
    "DlibUnknownLayerError",
    "FullyConnected",
    "InputLayer",
    "InputRgbImage",
    "InputRgbImagePyramid",
    "InputRgbImageSized",
    "Layer",
    "LossLayer",
    "LossMetric",
    "LossMmod",
    "Pool",
    "Relu",
    "Simple",
    "TagOrSkip",
    "parse_dlib_net",
    "read_dlib_net",
]
