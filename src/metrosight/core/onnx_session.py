"""One way to open an ONNX Runtime session for this project's models: CPU only, a fixed number of threads.

Every model (face detectors, the face descriptor) runs in worker processes pinned to one core each, so sessions are
sequential with ``threads`` intra-op threads (1 by default) and all graph optimisations on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def cpu_session(model: str | Path | bytes, threads: int = 1) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU for ``model`` (a file path or serialised model bytes).

    Raises:
        whatever ONNX Runtime raises for a file it cannot load; callers turn it into their own named error.
    """
    import onnxruntime as ort  # lazy: no model runtime at import time

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])
