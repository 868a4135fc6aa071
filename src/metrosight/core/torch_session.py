"""The ``torch`` inference runtime: an ONNX graph converted to PyTorch with onnx2torch, run on the CPU or a GPU.

The same ONNX graphs the ONNX Runtime path runs (no separate weights), so a GPU can be used where onnxruntime-gpu
does not fit the machine's CUDA. PyTorch and onnx2torch are an optional extra (``pip install 'metrosight[gpu]'``)
and are imported only when this runtime is configured; this module imports neither at import time.

:class:`TorchSession` answers ``run(output_names, feed)`` with numpy arrays like ONNX Runtime's session, so every
ONNX backend runs on it unchanged. Descriptors agree with ONNX Runtime's to ~1e-6 (bench/gpu.py checks cosine ≥
0.999 on real faces; tests/unit/core/test_torch_session.py where torch is installed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import numpy as np


class TorchUnavailable(RuntimeError):
    """PyTorch or onnx2torch is missing, or the device asked for is not there; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Port:
    """A graph input or output as ONNX Runtime describes it: name, shape (ints, symbolic names or ``None``) and
    element type (``"tensor(float)"``)."""

    name: str
    shape: list[int | str | None]
    type: str


_ELEM: Final[Mapping[int, str]] = MappingProxyType(
    {1: "tensor(float)", 2: "tensor(uint8)", 6: "tensor(int32)", 7: "tensor(int64)", 10: "tensor(float16)"}
)


def _ports(values: Any, skip: set[str]) -> list[Port]:
    out = []
    for v in values:
        if v.name in skip:
            continue
        t = v.type.tensor_type
        dims: list[int | str | None] = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim
        ]
        out.append(Port(v.name, dims, _ELEM.get(t.elem_type, f"tensor({t.elem_type})")))
    return out


def _modules() -> tuple[Any, Any]:
    """``(torch, onnx2torch.convert)``, or :class:`TorchUnavailable` saying what to install."""
    try:
        import torch  # lazy: optional extra
        from onnx2torch import convert  # lazy: optional extra
    except Exception as exc:  # ImportError, or a torchvision that does not match torch (RuntimeError)
        raise TorchUnavailable(
            f"inference.runtime torch needs PyTorch and onnx2torch ({type(exc).__name__}: {exc}): "
            "pip install 'metrosight[gpu]', or set inference.runtime: onnxruntime"
        ) from None
    return torch, convert


def check_torch(providers: Sequence[str]) -> None:
    """Refuse what the torch runtime cannot do here.

    Raises:
        TorchUnavailable: torch or onnx2torch is not installed, ``tensorrt`` is asked for (an ONNX Runtime provider),
            or ``cuda`` is asked for and PyTorch sees no CUDA device.
    """
    if "tensorrt" in providers:
        raise TorchUnavailable("tensorrt is an ONNX Runtime provider: with inference.runtime torch use cpu or cuda")
    torch, _ = _modules()
    if "cuda" in providers and not torch.cuda.is_available():
        raise TorchUnavailable(
            f"provider cuda: PyTorch {torch.__version__} sees no CUDA device (CUDA build: {torch.version.cuda}); "
            "install a CUDA build of torch or set inference.providers: [cpu]"
        )


class TorchSession:
    """An ONNX model converted to a PyTorch module, run in inference mode.

    Args:
        model: an ONNX file path or serialised model bytes.
        device: ``"cpu"`` or ``"cuda"`` (``"cuda:N"``).
        threads: PyTorch intra-op threads on the CPU (the process-wide setting; workers own their process).

    Raises:
        TorchUnavailable: torch or onnx2torch is not installed.
        whatever onnx or onnx2torch raise for a model they cannot read or convert (an op onnx2torch lacks).
    """

    def __init__(self, model: str | Path | bytes, device: str = "cpu", threads: int = 1) -> None:
        import onnx  # lazy: only models need it

        torch, convert = _modules()
        proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model))
        inits = {t.name for t in proto.graph.initializer}
        self._inputs = _ports(proto.graph.input, inits)
        self._outputs = _ports(proto.graph.output, set())
        self.device = torch.device(device)
        if self.device.type == "cpu":
            torch.set_num_threads(int(threads))
        self._torch = torch
        self.module = convert(proto).eval().to(self.device)

    def get_inputs(self) -> list[Port]:
        """The graph's inputs (initialisers listed as inputs left out)."""
        return list(self._inputs)

    def get_outputs(self) -> list[Port]:
        """The graph's outputs, in graph order."""
        return list(self._outputs)

    def run_tensors(self, *inputs: Any) -> tuple[Any, ...]:
        """The outputs (torch tensors on :attr:`device`, graph order) for torch tensor inputs in graph order."""
        with self._torch.inference_mode():
            out = self.module(*inputs)
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)

    def run(self, output_names: Sequence[str] | None, input_feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The named outputs (all for ``None``) as numpy arrays for numpy inputs by name, like ONNX Runtime."""
        torch = self._torch
        args = [torch.from_numpy(np.ascontiguousarray(input_feed[p.name])).to(self.device) for p in self._inputs]
        outs = dict(zip((p.name for p in self._outputs), self.run_tensors(*args), strict=True))
        names = list(output_names) if output_names else [p.name for p in self._outputs]
        return [outs[n].detach().to("cpu").numpy() for n in names]
