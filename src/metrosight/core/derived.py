"""Faster variants of a float ONNX model, built locally with ONNX Runtime's own tooling, and their parity records.

A *variant* is derived from the float model an installation already builds or ships (the dlib face ResNet built
into ``<home>/cache/models``; CenterFace packed with metrosight) and written next to it in the model cache, never
downloaded and never committed:

- ``optimised``: the graph after ONNX Runtime's extended graph optimisations, saved to disk
  (``SessionOptions.optimized_model_filepath``); the same arithmetic, less work at load;
- ``int8-dynamic``: weights int8 per output channel, activations quantised at run time
  (``onnxruntime.quantization.quantize_dynamic``);
- ``int8``: static QDQ int8 (``quantize_static``): weights int8 per output channel, activations uint8 with ranges
  calibrated (min/max) on calibration inputs the caller gives — never the data the variant is measured on. The
  *sensitive* layers (:func:`sensitive_nodes`: the first convolution, which sees the raw pixels, the layers that
  produce the outputs, and optionally the last few compute layers) stay float;
- ``fp16``: weights and activations float16 with float32 inputs and outputs (onnxruntime.transformers' converter).

A variant is only ever *used* when a parity record (:class:`ParityRecord`, a JSON file next to it) says it passed
the parity gate for exactly that file (its SHA-256) derived from exactly that float model (its SHA-256):
:func:`accepted_variant` is the one check every host, ``config check`` and the API go through.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

FLOAT: Final = "float32"
#: the variants a configuration may name as ``precision`` (besides ``float32``, the float model itself)
VARIANTS: Final = ("optimised", "int8", "int8-dynamic", "fp16")
PRECISIONS: Final = (FLOAT, *VARIANTS)
#: the lowest opset the quantised variants are built at (per-channel scales need the ``axis`` of opset 13)
MIN_QUANT_OPSET: Final = 13
#: node types that carry the weights and dominate the cost (the ones worth quantising)
COMPUTE_OPS: Final = ("Conv", "MatMul", "Gemm")
#: node types walked through from an output back to the compute node that produces it
_PASS_THROUGH: Final = ("Identity", "Sigmoid", "Relu", "Flatten", "Reshape", "Add", "Mul", "Transpose")


class VariantError(RuntimeError):
    """A variant cannot be built, or a configured variant may not be used; the message is one line saying why and
    what to run."""


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file."""
    import hashlib

    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def variant_path(float_model: Path, variant: str) -> Path:
    """Where ``variant`` of ``float_model`` lives: next to it, ``<stem>.<variant>.onnx``."""
    if variant not in VARIANTS:
        raise VariantError(f"unknown precision {variant!r}: choose one of {', '.join(PRECISIONS)}")
    return float_model.with_name(f"{float_model.stem}.{variant}.onnx")


def record_path(model: Path) -> Path:
    """The parity record of a derived model: ``<model>.parity.json``."""
    return model.with_name(model.name + ".parity.json")


def sensitive_nodes(model: Any, tail: int = 0) -> list[str]:
    """Names of the nodes of ``model`` (an ``onnx.ModelProto``) kept float in the ``int8`` variant: the first
    convolution (it sees the raw pixels, whose range calibration fits worst), for each graph output the compute node
    (Conv/MatMul/Gemm) producing it (found by walking back through element-wise and shape nodes), and the last
    ``tail`` compute nodes of the graph (where a descriptor's rounding errors are least averaged out)."""
    nodes = list(model.graph.node)
    producer = {out: n for n in nodes for out in n.output}
    compute = [n for n in nodes if n.op_type in COMPUTE_OPS]
    chosen = [n for n in compute if n.op_type == "Conv"][:1]
    for out in model.graph.output:
        node = producer.get(out.name)
        while node is not None and node.op_type in _PASS_THROUGH:
            node = next((producer[i] for i in node.input if i in producer), None)
        if node is not None and node.op_type in COMPUTE_OPS:
            chosen.append(node)
    chosen += compute[len(compute) - tail :] if tail > 0 else []
    return list(dict.fromkeys(n.name for n in chosen))


class _Feeds:
    """ONNX Runtime's calibration reader over batches of one input (``onnxruntime.quantization.CalibrationDataReader``
    protocol: ``get_next`` returns the next feed or ``None``)."""

    def __init__(self, input_name: str, batches: Sequence[np.ndarray]) -> None:
        self._it: Iterator[np.ndarray] = iter(batches)
        self.input_name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {self.input_name: np.ascontiguousarray(batch)}

    def rewind(self) -> None:  # not used by min/max calibration, part of the reader protocol
        raise NotImplementedError


def _save_optimised(src: Path, dst: Path) -> None:
    import onnxruntime as ort  # lazy: no model runtime at import time

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # portable: no layout-specific ops
    so.optimized_model_filepath = str(dst)
    so.log_severity_level = 3
    ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])


def _quantisable(src: Path, tmp: Path) -> Path:
    """``src`` as the quantisation tooling needs it: opset ≥ :data:`MIN_QUANT_OPSET` (per-channel scales need it;
    CenterFace's export is opset 9) and every node named (excluding nodes goes by name; CenterFace's are unnamed)."""
    import onnx  # heavy, only when a variant is built
    from onnx import version_converter

    model = onnx.load(str(src))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), MIN_QUANT_OPSET)
    if opset < MIN_QUANT_OPSET:
        model = version_converter.convert_version(model, MIN_QUANT_OPSET)
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    out = tmp / "named.onnx"
    onnx.save(model, str(out))
    return out


def _build(src: Path, dst: Path, variant: str, input_name: str, calibration: Sequence[np.ndarray], tail: int) -> None:
    """Write ``variant`` of ``src`` to ``dst`` (see the module docstring)."""
    import onnx  # onnx and the quantisation tooling: heavy, only when a variant is built

    if variant == "optimised":
        _save_optimised(src, dst)
        return
    if variant == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        onnx.save(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True), str(dst))
        return
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(_quantisable(src, Path(tmp))), str(pre), skip_symbolic_shape=True)
        if variant == "int8-dynamic":
            quantize_dynamic(str(pre), str(dst), per_channel=True, weight_type=QuantType.QInt8)
            return
        if not calibration:
            raise VariantError("the int8 variant needs calibration inputs (none were given)")
        quantize_static(
            str(pre),
            str(dst),
            _Feeds(input_name, calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=sensitive_nodes(onnx.load(str(pre)), tail),
        )


def build_variant(
    float_model: Path, variant: str, input_name: str, calibration: Sequence[np.ndarray] = (), float_tail: int = 0
) -> Path:
    """Build ``variant`` of ``float_model`` next to it (replacing an older build and its parity record).

    Args:
        float_model: the float ONNX file.
        variant: one of :data:`VARIANTS`.
        input_name: the graph input the calibration batches feed.
        calibration: batches of model input (e.g. ``(B, 150, 150, 3)`` uint8 chips) for the ``int8`` ranges; not
            the data the variant is measured on.
        float_tail: ``int8``: the last compute nodes kept float besides the sensitive ones (:func:`sensitive_nodes`).

    Returns:
        The variant's path (:func:`variant_path`). Written to a temporary name and renamed into place.

    Raises:
        VariantError: unknown variant, no calibration data for ``int8``, or the tooling failed (its message).
    """
    target = variant_path(float_model, variant)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    root = logging.getLogger()  # the quantisation tooling warns on the root logger about every non-float input
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        _build(float_model, Path(tmp), variant, input_name, calibration, float_tail)
        os.replace(tmp, target)
    except VariantError:
        raise
    except Exception as exc:  # the ONNX/ONNX Runtime tooling's own exception types
        raise VariantError(f"building the {variant} variant of {float_model.name} failed: {exc}") from exc
    finally:
        root.setLevel(level)
        Path(tmp).unlink(missing_ok=True)
    record_path(target).unlink(missing_ok=True)  # a record speaks for the file it measured, never for a rebuild
    return target


@dataclass(frozen=True, slots=True)
class ParityRecord:
    """The parity gate's verdict on one derived model, kept next to it.

    Attributes:
        variant: the variant (one of :data:`VARIANTS`).
        model_sha256: SHA-256 of the derived model file measured.
        float_sha256: SHA-256 of the float model it was derived from and compared with.
        passed: whether every limit held.
        summary: one line: the figures against their limits (shown when a configuration is refused).
        figures: the measured figures (cosines, decision changes, recall, …), by name.
        data: what the figures were measured on, and what the calibration used.
    """

    variant: str
    model_sha256: str
    float_sha256: str
    passed: bool
    summary: str
    figures: Mapping[str, float | int] = field(default_factory=dict)
    data: Mapping[str, str] = field(default_factory=dict)

    def write(self, model: Path) -> Path:
        """Store this record next to ``model`` (atomically); returns its path."""
        path = record_path(model)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump({**asdict(self), "figures": dict(self.figures), "data": dict(self.data)}, f, indent=2)
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, model: Path) -> ParityRecord | None:
        """The record next to ``model``, ``None`` when there is none or it cannot be read."""
        try:
            raw = json.loads(record_path(model).read_text())
            record = cls(**raw)
        except (OSError, ValueError, TypeError):
            return None
        # a verdict is read strictly: "passed": "false" (a string, truthy) or a hash of another type is no verdict
        typed = isinstance(record.passed, bool) and all(
            isinstance(v, str) for v in (record.variant, record.model_sha256, record.float_sha256, record.summary)
        )
        return record if typed else None


def accepted_variant(float_model: Path, variant: str, command: str, where: str) -> Path:
    """The derived model ``variant`` of ``float_model`` if a passing parity record speaks for exactly that file.

    Args:
        float_model: the float ONNX file the variant derives from (its path names the variant's).
        variant: the configured precision (one of :data:`VARIANTS`).
        command: the command that builds and measures the variant (named in the refusal).
        where: the configuration key, e.g. ``"recognition.embedder.precision"``.

    Raises:
        VariantError: one line — no such file or record (run ``command``), a record of another file (rebuilt or
            changed since: run ``command`` again), or a failing record (its figures; the float model stays).
    """
    path = variant_path(float_model, variant)
    record = ParityRecord.read(path) if path.is_file() and float_model.is_file() else None
    if record is None:
        raise VariantError(f"{where}: {variant} has not passed the parity gate here: run `{command}` first")
    if (
        record.variant != variant
        or record.model_sha256 != file_sha256(path)
        or record.float_sha256 != file_sha256(float_model)
    ):
        raise VariantError(
            f"{where}: the {variant} model or its float model changed since its parity was measured: run `{command}`"
        )
    if record.passed is not True:
        raise VariantError(f"{where}: {variant} failed parity: {record.summary} — use {FLOAT}")
    return path
