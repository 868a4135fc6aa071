"""Choosing the descriptor backend by name (eval and bench use).

Hosts build from the configuration through :func:`metrosight.recognize.registry.build_embedder`; both go through
:data:`~metrosight.recognize.registry.FACE_EMBEDDERS`.
"""

from __future__ import annotations

from pathlib import Path

from metrosight.core.backends import BackendContext
from metrosight.core.onnx_session import InferenceOptions
from metrosight.recognize.embedder import Embedder, EmbedderError
from metrosight.recognize.registry import FACE_EMBEDDERS


def make_embedder(name: str, cache_dir: Path, threads: int = 1) -> Embedder:
    """``"onnx"``: dlib's ResNet weights in ONNX Runtime (fast); ``"dlib"``: dlib's own runtime (reference).

    Raises:
        EmbedderError: an unknown name, or one that needs settings (``onnx-user``: build it from its configuration).
    """
    row = FACE_EMBEDDERS.backend(name)
    ctx = BackendContext(InferenceOptions(threads=threads), Path(cache_dir))
    kwargs = {k: getattr(ctx, k) for k in row.takes}
    return FACE_EMBEDDERS.construct(name, **kwargs)


__all__ = ["EmbedderError", "make_embedder"]
