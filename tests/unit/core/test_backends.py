"""One registry per kind of backend: every configuration variant has its backend and every backend its variant, a
variant's fields are its backend's constructor arguments, and hosts, eval and research all build through it."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from metrosight.config import ConfigError, load_settings
from metrosight.config.backends import DetectorConfig, EmbedderConfig, InferenceConfig, PersonDetectorConfig
from metrosight.config.model import Settings
from metrosight.core.backends import BackendContext, Registry
from metrosight.core.onnx_session import InferenceOptions, InferenceUnavailable, check_available
from metrosight.detect.base import DetectorError
from metrosight.detect.factory import make_detector
from metrosight.detect.registry import FACE_DETECTORS, PERSON_DETECTORS, face_detector_for, person_detector_for
from metrosight.recognize.embedder import EmbedderError
from metrosight.recognize.registry import FACE_EMBEDDERS, embedder_for


def variants(union: object) -> list[type[BaseModel]]:
    inner = typing.get_args(union)[0]  # Annotated[Union[...], Field(...)]
    return list(typing.get_args(inner)) or [inner]


CASES = [
    (FACE_DETECTORS, variants(DetectorConfig)),
    (FACE_EMBEDDERS, variants(EmbedderConfig)),
    (PERSON_DETECTORS, [PersonDetectorConfig]),
]


@pytest.mark.parametrize(("registry", "configs"), CASES, ids=["face detectors", "embedders", "person detectors"])
def test_every_variant_has_its_backend_and_every_backend_its_variant(
    registry: Registry, configs: list[type[BaseModel]]
) -> None:
    kinds = {c.model_fields["kind"].default for c in configs}
    assert kinds == set(registry.kinds())


@pytest.mark.parametrize(("registry", "configs"), CASES[:2], ids=["face detectors", "embedders"])
def test_a_variants_fields_are_its_backends_constructor_arguments(
    registry: Registry, configs: list[type[BaseModel]]
) -> None:
    for cfg in configs:
        kind = cfg.model_fields["kind"].default
        row = registry.backend(kind)
        params = inspect.signature(row.load()).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            continue  # a builder that checks its own arguments (yunet-onnx)
        wanted = set(cfg.model_fields) - {"kind", "providers"} | set(row.takes)
        assert wanted <= set(params), (kind, wanted - set(params))
        assert ("providers" in cfg.model_fields) == ("inference" in row.takes), kind


def test_hosts_build_the_configured_detector_with_its_settings_and_runtime() -> None:
    s = Settings.model_validate(
        {"detection": {"detector": {"kind": "centerface", "max_width": 640}}, "inference": {"threads": 2}}
    )
    det = face_detector_for(s)
    assert det.name == "centerface" and det.max_width == 640  # type: ignore[attr-defined]
    assert det.inference == InferenceOptions(threads=2)  # type: ignore[attr-defined]
    hog = face_detector_for(Settings.model_validate({"detection": {"detector": {"kind": "hog", "upsample": 0}}}))
    assert hog.name == "hog"
    person = person_detector_for(Settings.model_validate({"analytics": {"person_detector": {"scale": 0.5}}}).analytics)
    assert person.name == "hog-person" and person.params.scale == 0.5  # type: ignore[attr-defined]


def test_research_construction_goes_through_the_same_table() -> None:
    assert make_detector("fast").name == "centerface"
    with pytest.raises(DetectorError, match="unknown face detector 'nope'.*centerface"):
        make_detector("nope")
    with pytest.raises(EmbedderError, match="unknown face embedder 'nope'"):
        FACE_EMBEDDERS.backend("nope")


def test_the_default_embedder_keeps_dlibs_model_id_and_size(tmp_path: Path) -> None:
    s = Settings()
    emb = embedder_for(s, tmp_path)
    assert (emb.model_id, emb.dim, emb.name) == ("dlib_resnet_v1", 128, "dlib-resnet-onnx+flip")
    plain = embedder_for(Settings.model_validate({"recognition": {"embedder": "dlib", "flip": False}}), tmp_path)
    assert (plain.model_id, plain.name) == ("dlib_resnet_v1", "dlib-resnet-dlib")  # the bare name is the kind
    with pytest.raises(EmbedderError, match="cache directory"):
        FACE_EMBEDDERS.build(s.recognition.embedder, BackendContext())


def test_the_embedder_name_from_the_environment_still_works() -> None:
    s = load_settings(None, environ={"METROSIGHT__RECOGNITION__EMBEDDER": "dlib"})
    assert s.recognition.embedder.kind == "dlib"


def _has(provider: str) -> bool:
    try:
        check_available((provider,))
    except InferenceUnavailable:
        return False
    return True


@pytest.mark.skipif(_has("cuda"), reason="this onnxruntime has the CUDA provider")
def test_a_provider_the_installed_onnxruntime_lacks_is_refused_in_one_line(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("inference:\n  providers: [cuda, cpu]\n")
    with pytest.raises(
        ConfigError, match=r"'cuda' is not available in the installed onnxruntime.*onnxruntime-gpu"
    ) as e:
        load_settings(p, environ={})
    assert "\n" not in str(e.value).strip()
    p.write_text("detection:\n  detector:\n    kind: centerface\n    providers: [tensorrt]\n")
    with pytest.raises(ConfigError, match="'tensorrt' is not available.*onnxruntime-gpu"):
        load_settings(p, environ={})
    with pytest.raises(InferenceUnavailable, match="onnxruntime-gpu"):
        check_available(("cuda",))


def test_cpu_is_the_default_and_needs_nothing() -> None:
    inf = InferenceConfig()
    assert inf.options() == InferenceOptions() and inf.providers == ["cpu"] and inf.runtime == "onnxruntime"
    assert inf.providers_for(Settings().detection.detector) == ("cpu",)


def test_the_torch_runtime_refuses_tensorrt_and_says_what_to_install() -> None:
    with pytest.raises(InferenceUnavailable, match="tensorrt is an ONNX Runtime provider"):
        check_available(("tensorrt",), "torch")
    try:
        import onnx2torch  # noqa: F401
    except Exception:  # not installed, or a torchvision that does not fit this torch
        with pytest.raises(InferenceUnavailable, match=r"metrosight\[gpu\]"):
            check_available(("cpu",), "torch")
    else:
        check_available(("cpu",), "torch")


@pytest.mark.skipif(_has("cuda") and _has("tensorrt"), reason="this onnxruntime has the GPU providers")
def test_every_command_refuses_a_gpu_provider_this_machine_lacks_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from metrosight.cli import app

    missing = "cuda" if not _has("cuda") else "tensorrt"
    cfg = tmp_path / "gpu.yaml"
    cfg.write_text(f"inference:\n  providers: [{missing}, cpu]\n")
    home = ["--home", str(tmp_path / "h")]
    for args in (
        [*home, "config", "check", str(cfg)],
        [*home, "--config", str(cfg), "run", "--source", str(tmp_path / "clip.mp4")],
        [*home, "--config", str(cfg), "node"],
        [*home, "--config", str(cfg), "serve"],
        [*home, "--config", str(cfg), "worker", "--bus", "redis://127.0.0.1:9/0"],
    ):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2, (args, res.stdout, res.stderr)
        assert f"'{missing}' is not available in the installed onnxruntime" in res.stderr, args
        assert "onnxruntime-gpu" in res.stderr and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert not (tmp_path / "h").exists() or not any((tmp_path / "h").iterdir())  # nothing stored
