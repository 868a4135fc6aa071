"""The face models of an installation, loaded on first use: the configured face detector and embedder.

Backends come from the registries (:mod:`metrosight.detect.registry`, :mod:`metrosight.recognize.registry`), called
from here only; every host and the API reach the models through :class:`Models`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from metrosight.config.model import CenterFaceDetectorConfig, DlibOnnxEmbedderConfig, Settings
from metrosight.core.derived import FLOAT
from metrosight.detect.base import FaceDetector
from metrosight.detect.registry import face_detector_for
from metrosight.recognize.embedder import DLIB_RESNET_MODEL_ID, Embedder
from metrosight.recognize.gallery import check_gallery_model
from metrosight.recognize.registry import embedder_for

MODEL_ID = DLIB_RESNET_MODEL_ID  # the default embedder's model id; an installation uses its embedder's (model_id)


class TemplateModels(Protocol):
    """What the models need of the store (its gallery, ``store.gallery``): the templates held per descriptor model."""

    def template_models(self) -> dict[str, int]: ...


def make_face_detector(settings: Settings, cache: Path | None = None) -> FaceDetector:
    """The face detector the configuration names (``detection.detector``, see
    :func:`metrosight.detect.registry.face_detector_for`), its derived variants looked up in ``cache/models``.

    Raises:
        DetectorError: its model cannot be loaded, or a configured precision has no passing parity record.
    """
    return face_detector_for(settings, cache / "models" if cache is not None else None)


def check_precisions(settings: Settings, cache: Path) -> None:
    """Refuse a configured ``precision`` (detector or embedder) other than float32 unless a passing parity record
    speaks for exactly that derived model in ``cache/models`` — what every start checks when it builds the models,
    checked here without loading them (``metrosight config check``).

    Raises:
        DetectorError / EmbedderError: one line saying what failed and what to run.
    """
    det, emb = settings.detection.detector, settings.recognition.embedder
    if isinstance(det, CenterFaceDetectorConfig) and det.precision != FLOAT:
        from metrosight.detect.centerface_onnx import accepted_precision as detector_precision  # lazy: onnx tooling

        detector_precision(det.precision, cache / "models")
    if isinstance(emb, DlibOnnxEmbedderConfig) and emb.precision != FLOAT:
        from metrosight.recognize.embedder_onnx import accepted_precision as embedder_precision  # lazy: dlib weights

        embedder_precision(emb.precision, cache / "models")


class Models:
    """The detector and embedder of ``settings``, each built on first use and then kept. Tests (and benchmarks)
    may pass their own ``detector`` / ``embedder``.

    Args:
        settings: the configuration.
        cache: the home's cache folder (generated models go to ``cache/models``).
        detector / embedder: models to use instead of the configured ones.
        store: when given, the configured embedder is refused if the watchlists hold templates of another
            descriptor model (:func:`~metrosight.recognize.gallery.check_gallery_model`).
    """

    def __init__(
        self,
        settings: Settings,
        cache: Path,
        detector: FaceDetector | None = None,
        embedder: Embedder | None = None,
        store: TemplateModels | None = None,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.gallery = store
        self._detector = detector
        self._embedder = embedder

    @property
    def detector(self) -> FaceDetector:
        if self._detector is None:
            self._detector = make_face_detector(self.settings, self.cache)
        return self._detector

    @property
    def embedder(self) -> Embedder:
        """The configured embedder (built on first use).

        Raises:
            ModelMismatch: the watchlists hold templates of another descriptor model. EmbedderError: the backend
            refuses its settings.
        """
        if self._embedder is None:
            embedder = embedder_for(self.settings, self.cache / "models")
            if self.gallery is not None:
                check_gallery_model(self.gallery.template_models(), embedder.model_id)
            self._embedder = embedder
        return self._embedder

    @property
    def model_id(self) -> str:
        """The descriptor model of the embedder: templates are stored and matched under it."""
        return self.embedder.model_id

    def load(self) -> None:
        """Load both models now (before cameras start, so the first frames are not delayed)."""
        _ = self.detector, self.embedder
