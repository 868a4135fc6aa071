"""One way to open an inference session for this project's ONNX models, on the runtime and providers configured.

Every model (face detectors, face embedders) is opened here. By default on ONNX Runtime's CPU provider with a fixed
number of intra-op threads (1: worker processes are pinned to one core each), sequential execution and all graph
optimisations on. ``providers`` asks for ONNX Runtime's CUDA or TensorRT execution providers (onnxruntime-gpu), in
order of preference, CPU always last as the fallback for nodes they do not take. ``runtime="torch"`` runs the same
ONNX graph in PyTorch (converted with onnx2torch, :mod:`metrosight.core.torch_session`), on the GPU with ``cuda``.

A provider the installed runtime does not have is refused with one line saying what to install
(:func:`check_available`), never silently replaced by the CPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Protocol

import numpy as np

from metrosight.core.torch_session import TorchSession, TorchUnavailable, check_torch

#: provider name in the configuration -> ONNX Runtime's execution provider
PROVIDERS: Final[Mapping[str, str]] = MappingProxyType(
    {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
)
RUNTIMES: Final = ("onnxruntime", "torch")


class InferenceUnavailable(RuntimeError):
    """The configured runtime or execution provider is not installed here; the message says what to install."""


class Session(Protocol):
    """What the backends use of an inference session (ONNX Runtime's ``InferenceSession`` has it, and so does
    :class:`~metrosight.core.torch_session.TorchSession`)."""

    def run(self, output_names: Sequence[str] | None, input_feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The named outputs (all, in graph order, for ``None``) for the inputs by name."""
        ...

    def get_inputs(self) -> list[Any]:
        """The graph inputs (``.name``, ``.shape``, ``.type``)."""
        ...

    def get_outputs(self) -> list[Any]:
        """The graph outputs (``.name``, ``.shape``, ``.type``)."""
        ...


@dataclass(frozen=True, slots=True)
class InferenceOptions:
    """Where and how a model runs.

    Attributes:
        threads: intra-op threads (CPU).
        providers: configuration names (keys of :data:`PROVIDERS`) in order of preference.
        runtime: ``"onnxruntime"`` or ``"torch"``.
        max_batch: the largest batch a backend sends in one inference call.
    """

    threads: int = 1
    providers: tuple[str, ...] = field(default=("cpu",))
    runtime: str = "onnxruntime"
    max_batch: int = 32

    def with_providers(self, providers: Sequence[str] | None) -> InferenceOptions:
        """These options with ``providers`` instead (unchanged for ``None``)."""
        if providers is None:
            return self
        return InferenceOptions(self.threads, tuple(providers), self.runtime, self.max_batch)


def _ort_available() -> list[str]:
    import onnxruntime as ort  # lazy: no model runtime at import time

    return list(ort.get_available_providers())


def check_available(providers: Sequence[str], runtime: str = "onnxruntime") -> None:
    """Refuse a runtime or provider that is not installed here.

    Args:
        providers: configuration names (keys of :data:`PROVIDERS`).
        runtime: ``"onnxruntime"`` or ``"torch"``.

    Raises:
        InferenceUnavailable: one line naming what is missing and what to install.
    """
    unknown = [p for p in providers if p not in PROVIDERS]
    if runtime not in RUNTIMES or unknown:
        raise InferenceUnavailable(
            f"unknown inference runtime {runtime!r} or provider(s) {unknown}: runtimes {', '.join(RUNTIMES)}, "
            f"providers {', '.join(PROVIDERS)}"
        )
    if runtime == "torch":
        try:
            check_torch(providers)
        except TorchUnavailable as exc:
            raise InferenceUnavailable(str(exc)) from None
        return
    if all(p == "cpu" for p in providers):
        return  # the CPU provider is in every onnxruntime build
    have = _ort_available()
    for p in providers:
        if PROVIDERS[p] not in have:
            raise InferenceUnavailable(
                f"execution provider {p!r} is not available in the installed onnxruntime (it has "
                f"{', '.join(have)}): install onnxruntime-gpu in place of onnxruntime (pip uninstall onnxruntime; "
                f"pip install onnxruntime-gpu), or use provider cpu"
            )


def open_session(model: str | Path | bytes, options: InferenceOptions | None = None) -> Session:
    """An inference session for ``model`` (a file path or serialised ONNX bytes) as ``options`` say.

    Raises:
        InferenceUnavailable: the runtime or a provider is not installed (see :func:`check_available`).
        whatever the runtime raises for a model it cannot load; callers turn it into their own named error.
    """
    opts = options or InferenceOptions()
    check_available(opts.providers, opts.runtime)
    if opts.runtime == "torch":
        return TorchSession(model, device="cuda" if "cuda" in opts.providers else "cpu", threads=opts.threads)
    import onnxruntime as ort  # lazy: no model runtime at import time

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(opts.threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    eps = [PROVIDERS[p] for p in opts.providers if p != "cpu"] + ["CPUExecutionProvider"]
    source = model if isinstance(model, bytes) else str(model)
    session: Session = ort.InferenceSession(source, so, providers=eps)
    return session


def cpu_session(model: str | Path | bytes, threads: int = 1) -> Session:
    """An ONNX Runtime session on the CPU for ``model`` with ``threads`` intra-op threads (see
    :func:`open_session`)."""
    return open_session(model, InferenceOptions(threads=threads))
