"""The face-embedder registry: each backend's kind, its class, and what it shares.

A backend's configuration variant (``recognition.embedder``, :mod:`metrosight.config.backends`) carries the same
``kind`` and its fields are the backend's constructor arguments. Adding an embedder is its module, its variant, and
its row here.

Embedders:
    ``"onnx"`` (default): :class:`~metrosight.recognize.embedder_onnx.OnnxResNetEmbedder`, dlib's face ResNet built
        into an ONNX graph at first use (model id ``dlib_resnet_v1``, 128-D).
    ``"dlib"``: :class:`~metrosight.recognize.embedder_onnx.DlibResNetEmbedder`, the same model in dlib's runtime.
    ``"onnx-user"``: :class:`~metrosight.recognize.embedder_user.UserOnnxEmbedder`, a user-supplied ONNX model (its
        descriptor size from its output shape, its model id from the file's SHA-256).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from metrosight.config.model import Settings
from metrosight.core.backends import Backend, BackendConfig, BackendContext, Registry
from metrosight.recognize.embedder import Embedder, EmbedderError
from metrosight.recognize.flip import FlipFusedEmbedder

# Each loader imports its backend's module when a backend of that kind is first built (they pull in onnx,
# onnxruntime or dlib, which processes that never embed should not load).


def _onnx() -> Callable[..., Embedder]:
    from metrosight.recognize.embedder_onnx import OnnxResNetEmbedder  # lazy: onnx + onnxruntime

    return OnnxResNetEmbedder


def _dlib() -> Callable[..., Embedder]:
    from metrosight.recognize.embedder_onnx import DlibResNetEmbedder  # lazy: dlib

    return DlibResNetEmbedder


def _user() -> Callable[..., Embedder]:
    from metrosight.recognize.embedder_user import UserOnnxEmbedder  # lazy: onnx + onnxruntime

    return UserOnnxEmbedder


FACE_EMBEDDERS: Registry[Embedder] = Registry(
    "face embedder",
    [
        Backend("onnx", _onnx, ("inference", "cache_dir"), "dlib's face ResNet on ONNX Runtime (default)"),
        Backend("dlib", _dlib, (), "dlib's face ResNet in dlib (reference)"),
        Backend("onnx-user", _user, ("inference",), "a user-supplied ONNX descriptor model"),
    ],
    EmbedderError,
)


def build_embedder(config: BackendConfig, context: BackendContext | None = None) -> Embedder:
    """The embedder ``config`` (a ``recognition.embedder`` variant) names.

    Raises:
        EmbedderError: unknown kind, or the backend refuses its settings (a missing or unfitting model file).
    """
    return FACE_EMBEDDERS.build(config, context)


def embedder_for(settings: Settings, cache_dir: Path, flip: bool | None = None) -> Embedder:
    """The embedder the configuration names (``recognition.embedder``) on the configured inference runtime,
    fused with mirror images when ``flip`` (default ``recognition.flip``) is on.

    Args:
        settings: the configuration.
        cache_dir: where generated models are kept (``<home>/cache/models``).
        flip: ``False`` for the plain backend (eval's encoders fuse mirror images themselves).

    Raises:
        EmbedderError: the backend refuses its settings (a missing or unfitting model file).
    """
    emb = build_embedder(settings.recognition.embedder, BackendContext(settings.inference.options(), Path(cache_dir)))
    return FlipFusedEmbedder(emb) if (settings.recognition.flip if flip is None else flip) else emb
