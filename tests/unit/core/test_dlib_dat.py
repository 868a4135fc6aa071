"""The dlib DNN reader on small byte streams written by a tiny encoder of dlib's format."""

from __future__ import annotations

import bz2
import math

import numpy as np
import pytest

from metrosight.core.dlib_dat import (
    AddPrev,
    Affine,
    BatchNorm,
    Conv,
    DlibFormatError,
    DlibTruncatedError,
    DlibUnknownLayerError,
    FullyConnected,
    InputRgbImagePyramid,
    InputRgbImageSized,
    LossMetric,
    LossMmod,
    Pool,
    Relu,
    TagOrSkip,
    parse_dlib_net,
)

# ------------------------------------------------------------------------------------------------------------------
# A tiny encoder of dlib's serialisation (dlib/serialize.h, float_details.h, dnn/tensor.h)
# ------------------------------------------------------------------------------------------------------------------


def enc_int(v: int) -> bytes:
    neg = v < 0
    mag = -v if neg else v
    body = mag.to_bytes(max(1, (mag.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if neg else 0)]) + body


def enc_float(v: float, digits: int = 24) -> bytes:
    """dlib's float: int64 mantissa then int16 exponent (digits=24 for float, 53 for double)."""
    if v == math.inf:
        return enc_int(0) + enc_int(32000)
    if v == -math.inf:
        return enc_int(0) + enc_int(32001)
    if math.isnan(v):
        return enc_int(0) + enc_int(32002)
    m, e = math.frexp(v)
    return enc_int(int(m * (1 << digits))) + enc_int(e - digits)


def enc_double(v: float) -> bytes:
    return enc_float(v, 53)


def enc_str(s: str) -> bytes:
    return enc_int(len(s)) + s.encode()


def enc_bool(b: bool) -> bytes:
    return b"1" if b else b"0"


def enc_tensor(a: np.ndarray | None, version: int = 2) -> bytes:
    a = np.zeros((0, 0, 0, 0), np.float32) if a is None else np.asarray(a, np.float32)
    dims = list(a.shape) + [1] * (4 - a.ndim)
    head = enc_int(version) + b"".join(enc_int(d) for d in dims)
    if version == 2:
        return head + a.astype("<f4").tobytes()
    return head + b"".join(enc_float(float(x)) for x in a.reshape(-1))


def enc_alias(*dims: int) -> bytes:
    dims4 = list(dims) + [1] * (4 - len(dims))
    return enc_int(1) + b"".join(enc_int(d) for d in dims4)


def con4(w: np.ndarray, b: np.ndarray, stride: int = 1, pad: int = 0) -> bytes:
    f, k, nr, nc = w.shape
    params = np.concatenate([w.reshape(-1), b]).reshape(-1, 1, 1, 1)
    return (
        enc_str("con_4")
        + enc_tensor(params)
        + enc_int(f)
        + enc_int(nr)
        + enc_int(nc)
        + enc_int(stride)
        + enc_int(stride)
        + enc_int(pad)
        + enc_int(pad)
        + enc_alias(f, k, nr, nc)
        + enc_alias(1, f)
        + enc_double(1)
        + enc_double(1)
        + enc_double(1)
        + enc_double(0)
    )


def affine(gamma: np.ndarray, beta: np.ndarray) -> bytes:
    k = gamma.size
    params = np.concatenate([gamma, beta]).reshape(-1, 1, 1, 1)
    return enc_str("affine_") + enc_tensor(params) + enc_alias(1, k) + enc_alias(1, k) + enc_int(0)


def bn_con2(gamma, beta, mean, var, eps: float) -> bytes:
    k = gamma.size
    params = np.concatenate([gamma, beta]).reshape(-1, 1, 1, 1)
    return (
        enc_str("bn_con2")
        + enc_tensor(params)
        + enc_alias(1, k)
        + enc_alias(1, k)
        + enc_tensor(None)
        + enc_tensor(None)
        + enc_tensor(mean.reshape(1, k))
        + enc_tensor(var.reshape(1, k))
        + enc_int(123456)
        + enc_int(1000)
        + enc_double(1)
        + enc_double(0)
        + enc_double(1)
        + enc_double(1)
        + enc_double(eps)
    )


def fc2(w: np.ndarray) -> bytes:
    n_in, n_out = w.shape
    return (
        enc_str("fc_2")
        + enc_int(n_out)
        + enc_int(n_in)
        + enc_tensor(w.reshape(n_in, n_out, 1, 1))
        + enc_alias(n_in, n_out)
        + enc_alias(0, 0, 0, 0)
        + enc_int(1)
        + enc_double(1)
        + enc_double(1)
        + enc_double(1)
        + enc_double(0)
    )


def pool(kind: str, n: int, stride: int, pad: int = 0) -> bytes:
    return (
        enc_str(f"{kind}_pool_2")
        + enc_int(n)
        + enc_int(n)
        + enc_int(stride)
        + enc_int(stride)
        + enc_int(pad)
        + enc_int(pad)
    )


def state(input_level: bool = False) -> bytes:
    out = enc_bool(True) + enc_bool(True) + enc_bool(False) + enc_tensor(None) + enc_tensor(None) + enc_tensor(None)
    return out + (enc_int(1) if input_level else b"")


def add_layer(sub: bytes, details: bytes) -> bytes:
    return enc_int(2) + sub + details + state()


def tag(sub: bytes) -> bytes:
    return enc_int(1) + sub


def input_sized(details: bytes, size: int = 4) -> bytes:
    inp = enc_str("input_rgb_image_sized") + enc_float(122.782) + enc_float(117.001) + enc_float(104.298)
    inp += enc_int(size) + enc_int(size)
    return enc_int(3) + inp + details + state(input_level=True)


def loss_metric(sub: bytes) -> bytes:
    return enc_int(1) + enc_str("loss_metric_2") + enc_float(0.04) + enc_float(0.6) + sub


RNG = np.random.default_rng(7)
W1 = RNG.standard_normal((2, 3, 3, 3)).astype(np.float32)
B1 = RNG.standard_normal(2).astype(np.float32)
W2 = RNG.standard_normal((2, 2, 3, 3)).astype(np.float32)
B2 = RNG.standard_normal(2).astype(np.float32)
G = np.array([0.5, 2.0], np.float32)
BETA = np.array([-1.0, 0.25], np.float32)
WFC = RNG.standard_normal((2, 3)).astype(np.float32)


def small_net() -> bytes:
    """loss_metric<fc_no_bias<3, avg_pool_everything<add_prev1<affine<con<2,3,3,1,1,tag1<relu<con<2,3,3,1,1,
    input_rgb_image_sized<4>>>>>>>>>>"""
    inner = input_sized(con4(W1, B1, stride=1, pad=1))
    inner = add_layer(inner, enc_str("relu_"))
    inner = tag(inner)
    inner = add_layer(inner, con4(W2, B2, stride=1, pad=1))
    inner = add_layer(inner, affine(G, BETA))
    inner = add_layer(inner, enc_str("add_prev_"))
    inner = add_layer(inner, pool("avg", 0, 1))
    inner = add_layer(inner, fc2(WFC))
    return loss_metric(inner)


# ------------------------------------------------------------------------------------------------------------------


def test_small_net_layers_in_forward_order() -> None:
    net = parse_dlib_net(small_net())
    kinds = [type(la) for la in net.layers]
    assert kinds == [Conv, Relu, TagOrSkip, Conv, Affine, AddPrev, Pool, FullyConnected]
    assert isinstance(net.input, InputRgbImageSized)
    assert net.input.size == (4, 4)
    assert net.input.avg_rgb == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    assert isinstance(net.loss, LossMetric)
    assert net.loss.margin == pytest.approx(0.04) and net.loss.dist_thresh == pytest.approx(0.6)


def test_small_net_weights() -> None:
    net = parse_dlib_net(small_net())
    c1, c2 = net.layers[0], net.layers[3]
    assert isinstance(c1, Conv) and isinstance(c2, Conv)
    np.testing.assert_array_equal(c1.weight, W1)
    np.testing.assert_array_equal(c1.bias, B1)
    assert c1.stride == (1, 1) and c1.padding == (1, 1)
    np.testing.assert_array_equal(c2.weight, W2)
    aff = net.layers[4]
    assert isinstance(aff, Affine) and aff.mode == "conv"
    np.testing.assert_array_equal(aff.gamma, G)
    np.testing.assert_array_equal(aff.beta, BETA)
    gap = net.layers[6]
    assert isinstance(gap, Pool) and gap.kind == "avg" and gap.window == (0, 0)
    fc = net.layers[7]
    assert isinstance(fc, FullyConnected) and fc.bias is None
    np.testing.assert_array_equal(fc.weight, WFC)
    assert "fc_2" in net.describe()


def test_bzip2_wrapped_stream_parses_the_same() -> None:
    a = parse_dlib_net(small_net())
    b = parse_dlib_net(bz2.compress(small_net()))
    assert [la.tag for la in a.layers] == [la.tag for la in b.layers]


@pytest.mark.parametrize("value", [0.0, 1.0, -1.5, 0.6, 122.782, 1e-30, -3.25e12, math.inf, -math.inf])
def test_float_encoding_round_trip(value: float) -> None:
    from metrosight.core.dlib_stream import DlibStream

    f32 = float(np.float32(value)) if math.isfinite(value) else value
    assert DlibStream(enc_float(f32)).read_float() == f32
    assert DlibStream(enc_double(value)).read_float() == value


def test_float_nan() -> None:
    from metrosight.core.dlib_stream import DlibStream

    assert math.isnan(DlibStream(enc_float(math.nan)).read_float())


@pytest.mark.parametrize("value", [0, 1, 255, 256, -1, -300, 2**40, -(2**62)])
def test_int_encoding_round_trip(value: int) -> None:
    from metrosight.core.dlib_stream import DlibStream

    s = DlibStream(enc_int(value))
    assert s.read_int() == value
    assert s.pos == len(enc_int(value))


def test_zero_is_one_byte_of_zero() -> None:
    assert enc_int(0) == b"\x01\x00"  # what dlib writes; the reader must accept it
    from metrosight.core.dlib_stream import DlibStream

    assert DlibStream(b"\x01\x00").read_int() == 0


def test_version1_tensor_with_dlib_floats() -> None:
    from metrosight.core.dlib_stream import DlibStream

    a = np.arange(6, dtype=np.float32).reshape(1, 2, 3, 1) / 7
    np.testing.assert_array_equal(DlibStream(enc_tensor(a, version=1)).read_tensor(), a)


def test_batchnorm_and_mmod_and_pyramid() -> None:
    gamma = np.array([1.0, 2.0], np.float32)
    beta = np.array([0.5, -0.5], np.float32)
    mean = np.array([0.1, -0.2], np.float32)
    var = np.array([4.0, 0.25], np.float32)
    pyr = enc_str("input_rgb_image_pyramid2") + enc_float(1.0) + enc_float(2.0) + enc_float(3.0)
    pyr += enc_int(10) + enc_int(11)
    inner = enc_int(3) + pyr + con4(W1, B1, stride=2) + state(input_level=True)
    inner = add_layer(inner, bn_con2(gamma, beta, mean, var, 1e-4))
    inner = add_layer(inner, enc_str("relu_"))
    windows = (
        enc_int(2)  # two detector windows, version 2 each
        + enc_int(2)
        + enc_int(80)
        + enc_int(80)
        + enc_str("face")
        + enc_int(2)
        + enc_int(40)
        + enc_int(80)
        + enc_str("person")
    )
    options = (
        enc_int(4)
        + windows
        + enc_double(1)
        + enc_double(1)
        + enc_double(0.5)
        + enc_double(0.3)
        + enc_double(1)
        + enc_double(0.5)
        + enc_double(0.95)
        + bytes([1])
        + enc_bool(True)
        + enc_double(50)
    )
    data = enc_int(1) + enc_str("loss_mmod_") + options + inner
    net = parse_dlib_net(data)
    assert isinstance(net.input, InputRgbImagePyramid)
    assert (net.input.pyramid_padding, net.input.pyramid_outer_padding) == (10, 11)
    assert isinstance(net.loss, LossMmod)
    assert [(w.width, w.height, w.label) for w in net.loss.detector_windows] == [(80, 80, "face"), (40, 80, "person")]
    assert net.loss.overlaps_nms.iou_thresh == pytest.approx(0.3)
    assert net.loss.use_bounding_box_regression and net.loss.bbr_lambda == 50
    assert net.layers[0].stride == (2, 2)  # type: ignore[union-attr]
    bn = net.layers[1]
    assert isinstance(bn, BatchNorm)
    aff = bn.as_affine()
    x = np.array([3.0, -1.0], np.float32)
    np.testing.assert_allclose(aff.gamma * x + aff.beta, gamma * (x - mean) / np.sqrt(var + 1e-4) + beta, rtol=1e-6)


def test_mmod_options_version1() -> None:
    options = (
        enc_int(1)
        + enc_int(80)
        + enc_int(80)
        + enc_double(1)
        + enc_double(1)
        + enc_double(0.5)
        + enc_double(0.33)
        + enc_double(1)
        + enc_double(0.5)
        + enc_double(1)
    )
    pyr = enc_str("input_rgb_image_pyramid") + enc_float(1.0) + enc_float(2.0) + enc_float(3.0)
    inner = enc_int(2) + pyr + con4(W1, B1) + state()  # version-2 input level: grad_final, no expansion factor
    net = parse_dlib_net(enc_int(1) + enc_str("loss_mmod_") + options + inner)
    assert isinstance(net.loss, LossMmod) and net.loss.options_version == 1
    assert net.loss.detector_windows[0].width == 80
    assert isinstance(net.input, InputRgbImagePyramid) and net.input.pyramid_padding == 10


# ------------------------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------------------------


def test_truncated_stream_raises_named_error() -> None:
    data = small_net()
    with pytest.raises(DlibTruncatedError) as info:
        parse_dlib_net(data[:-7])
    assert info.value.offset > 0


def test_every_truncation_is_a_format_error() -> None:
    data = small_net()
    for cut in range(0, len(data), 7):
        with pytest.raises(DlibFormatError):
            parse_dlib_net(data[:cut])


def test_unknown_layer_tag() -> None:
    data = small_net().replace(enc_str("relu_"), enc_str("frobnicate_"))
    with pytest.raises(DlibUnknownLayerError) as info:
        parse_dlib_net(data)
    assert info.value.value == "frobnicate_"
    assert "frobnicate_" in str(info.value)


def test_unknown_loss_and_input_tags() -> None:
    with pytest.raises(DlibUnknownLayerError) as info:
        parse_dlib_net(small_net().replace(enc_str("loss_metric_2"), enc_str("loss_weird_")))
    assert info.value.value == "loss_weird_"
    with pytest.raises(DlibUnknownLayerError) as info:
        parse_dlib_net(small_net().replace(enc_str("input_rgb_image_sized"), enc_str("input_other")))
    assert info.value.value == "input_other"


def test_trailing_bytes() -> None:
    with pytest.raises(DlibFormatError, match="trailing"):
        parse_dlib_net(small_net() + b"\x01\x00")


def test_bad_tensor_version() -> None:
    data = small_net()
    bad = data.replace(
        con4(W2, B2, 1, 1), con4(W2, B2, 1, 1).replace(enc_str("con_4") + enc_int(2), enc_str("con_4") + enc_int(7), 1)
    )
    with pytest.raises(DlibFormatError) as info:
        parse_dlib_net(bad)
    assert info.value.value == 7


def test_bad_integer_control_byte() -> None:
    with pytest.raises(DlibFormatError) as info:
        parse_dlib_net(b"\x31\x00")
    assert info.value.value == 0x31


def test_not_a_dlib_file() -> None:
    with pytest.raises(DlibFormatError):
        parse_dlib_net(b"\x89PNG\r\n\x1a\n" + bytes(64))


# ------------------------------------------------------------------------------------------------------------------
# The parsed net, built into ONNX, computes what dlib computes (numpy reference of dlib's layer semantics)
# ------------------------------------------------------------------------------------------------------------------


def _ref_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    n, _k, h, wd = x.shape
    f, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = 1 + (h + 2 * pad - kh) // stride, 1 + (wd + 2 * pad - kw) // stride
    out = np.zeros((n, f, oh, ow), np.float64)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
            out[:, :, i, j] = np.einsum("nkab,fkab->nf", patch, w)
    return out + b[None, :, None, None]


def _ref_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """dlib's tt::add: zero-pad both operands at the end to the larger shape."""
    shape = tuple(max(x, y) for x, y in zip(a.shape, b.shape, strict=True))
    out = np.zeros(shape)
    out[tuple(slice(0, s) for s in a.shape)] += a
    out[tuple(slice(0, s) for s in b.shape)] += b
    return out


def test_onnx_build_matches_dlib_semantics_on_a_residual_down_block() -> None:
    """con s2 → relu → tag1 → [con s2 → affine → relu → con → affine] tag2 skip1 avg_pool add_prev2 → relu → gap → fc.

    The block output is (8, 1, 1) and the pooled shortcut (4, 2, 2): dlib's add zero-pads both to (8, 2, 2).
    """
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from metrosight.recognize.embedder_onnx import build_resnet_onnx

    rng = np.random.default_rng(3)
    wa, ba = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.05, rng.standard_normal(4).astype(np.float32)
    wb, bb = rng.standard_normal((8, 4, 3, 3)).astype(np.float32) * 0.2, rng.standard_normal(8).astype(np.float32)
    wc, bc = rng.standard_normal((8, 8, 3, 3)).astype(np.float32) * 0.2, rng.standard_normal(8).astype(np.float32)
    g1, be1 = rng.uniform(0.5, 2, 8).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    g2, be2 = rng.uniform(0.5, 2, 8).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    wfc = rng.standard_normal((8, 5)).astype(np.float32)

    s = input_sized(con4(wa, ba, stride=2), size=9)
    s = add_layer(s, enc_str("relu_"))
    s = tag(s)  # tag1
    s = add_layer(s, con4(wb, bb, stride=2))
    s = add_layer(s, affine(g1, be1))
    s = add_layer(s, enc_str("relu_"))
    s = add_layer(s, con4(wc, bc, stride=1, pad=1))
    s = add_layer(s, affine(g2, be2))
    s = tag(tag(s))  # tag2, skip1
    s = add_layer(s, pool("avg", 2, 2))
    s = add_layer(s, enc_str("add_prev_"))
    s = add_layer(s, enc_str("relu_"))
    s = add_layer(s, pool("avg", 0, 1))
    s = add_layer(s, fc2(wfc))
    net = parse_dlib_net(loss_metric(s))

    model = build_resnet_onnx(net)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    chips = rng.integers(0, 256, (3, 9, 9, 3), dtype=np.uint8)
    got = sess.run(["descriptors"], {"chips": chips})[0]

    x = (chips.astype(np.float64) - np.array([122.782, 117.001, 104.298])) / 256.0
    x = x.transpose(0, 3, 1, 2)
    t1 = np.maximum(_ref_conv(x, wa, ba, 2, 0), 0)  # (4, 4, 4)
    y = _ref_conv(t1, wb, bb, 2, 0) * g1[None, :, None, None] + be1[None, :, None, None]
    y = np.maximum(y, 0)
    t2 = _ref_conv(y, wc, bc, 1, 1) * g2[None, :, None, None] + be2[None, :, None, None]  # (8, 1, 1)
    pooled = t1.reshape(3, 4, 2, 2, 2, 2).mean(axis=(3, 5))  # avg_pool 2x2 stride 2: (4, 2, 2)
    z = np.maximum(_ref_add(pooled, t2), 0)
    assert z.shape == (3, 8, 2, 2)
    want = z.mean(axis=(2, 3)) @ wfc
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # Batch dimension is dynamic: one chip gives the same row.
    np.testing.assert_allclose(sess.run(["descriptors"], {"chips": chips[:1]})[0], got[:1], rtol=1e-5, atol=1e-6)


def test_onnx_cache_is_keyed_by_the_dat_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("onnx")
    from metrosight.recognize.embedder_onnx import ensure_onnx_model

    dat = tmp_path / "net.dat"
    dat.write_bytes(small_net())
    cache = tmp_path / "cache"
    first = ensure_onnx_model(dat, cache)
    assert first.exists() and first.parent == cache
    mtime = first.stat().st_mtime_ns
    assert ensure_onnx_model(dat, cache) == first  # reused, not rebuilt
    assert first.stat().st_mtime_ns == mtime
    assert [p.name for p in cache.iterdir()] == [first.name]  # no temporary files left behind

    dat.write_bytes(small_net().replace(enc_float(0.04), enc_float(0.05)))  # a changed model file
    second = ensure_onnx_model(dat, cache)
    assert second != first and second.exists()
