"""Derived (quantised) model variants are used only with a passing parity record for exactly that file: the one
check (``accepted_variant``) as the embedder, the detector, ``config check`` and every start meet it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from metrosight.cli.app import app
from metrosight.config.model import Settings
from metrosight.core.derived import (
    ParityRecord,
    VariantError,
    accepted_variant,
    file_sha256,
    record_path,
    sensitive_nodes,
    variant_path,
)
from metrosight.detect.base import DetectorError
from metrosight.detect.centerface_onnx import CenterFaceDetector, default_model_path, prepared_model_path
from metrosight.recognize.embedder import EmbedderError
from metrosight.recognize.embedder_onnx import OnnxResNetEmbedder, onnx_model_path
from metrosight.recognize.embedder_onnx import default_model_path as dlib_weights
from metrosight.services.models import check_precisions

CMD = "metrosight models optimise --embedder int8"
WHERE = "recognition.embedder.precision"


def _derived(float_model: Path, passed: bool = True, summary: str = "min cosine 0.9995 ≥ 0.999") -> Path:
    """A stand-in float model file, its int8 file, and a parity record for exactly those two files."""
    float_model.parent.mkdir(parents=True, exist_ok=True)
    float_model.write_bytes(b"float model")
    model = variant_path(float_model, "int8")
    model.write_bytes(b"int8 model")
    ParityRecord("int8", file_sha256(model), file_sha256(float_model), passed, summary, {"min_cosine": 0.9995}).write(
        model
    )
    return model


def test_a_variant_without_a_record_is_refused_with_the_command_to_run(tmp_path: Path) -> None:
    f = tmp_path / "m.onnx"
    f.write_bytes(b"float model")
    with pytest.raises(VariantError, match=r"int8 has not passed the parity gate here: run `metrosight models optim"):
        accepted_variant(f, "int8", CMD, WHERE)
    variant_path(f, "int8").write_bytes(b"int8 model")  # built but never measured
    with pytest.raises(VariantError, match="run `metrosight models optimise --embedder int8` first"):
        accepted_variant(f, "int8", CMD, WHERE)


def test_a_passing_record_accepts_exactly_the_file_it_measured(tmp_path: Path) -> None:
    f = tmp_path / "m.onnx"
    model = _derived(f)
    assert accepted_variant(f, "int8", CMD, WHERE) == model
    model.write_bytes(b"int8 model, rebuilt")  # another file under the same name
    with pytest.raises(VariantError, match="changed since its parity was measured"):
        accepted_variant(f, "int8", CMD, WHERE)
    model.write_bytes(b"int8 model")
    raw = record_path(model).read_text()
    record_path(model).write_text(raw.replace('"variant": "int8"', '"variant": "fp16"'))  # another variant's verdict
    with pytest.raises(VariantError, match="changed since its parity was measured"):
        accepted_variant(f, "int8", CMD, WHERE)
    _derived(f)
    f.write_bytes(b"another float model")  # the float model it was compared with changed
    with pytest.raises(VariantError, match="changed since its parity was measured"):
        accepted_variant(f, "int8", CMD, WHERE)


def test_a_failing_record_says_the_figures_and_keeps_float(tmp_path: Path) -> None:
    f = tmp_path / "m.onnx"
    _derived(f, passed=False, summary="min cosine 0.9962 < 0.999 on 22 of 1614 descriptors")
    with pytest.raises(VariantError) as err:
        accepted_variant(f, "int8", CMD, WHERE)
    msg = str(err.value)
    assert msg == (
        "recognition.embedder.precision: int8 failed parity: min cosine 0.9962 < 0.999 on 22 of 1614 descriptors "
        "— use float32"
    )
    assert "\n" not in msg


def test_an_unreadable_record_counts_as_none(tmp_path: Path) -> None:
    f = tmp_path / "m.onnx"
    model = _derived(f)
    record_path(model).write_text("{not json")
    with pytest.raises(VariantError, match="has not passed the parity gate"):
        accepted_variant(f, "int8", CMD, WHERE)


def test_the_embedder_refuses_an_unmeasured_precision_when_built(tmp_path: Path) -> None:
    dat = tmp_path / "weights.dat"
    dat.write_bytes(b"dlib weights")
    cache = tmp_path / "cache"
    with pytest.raises(EmbedderError, match="recognition.embedder.precision: int8 has not passed"):
        OnnxResNetEmbedder(cache, model_path=dat, precision="int8")
    model = _derived(onnx_model_path(dat, cache))
    emb = OnnxResNetEmbedder(cache, model_path=dat, precision="int8")
    assert emb.onnx_path() == model  # the accepted variant is what runs
    assert OnnxResNetEmbedder(cache, model_path=dat).precision == "float32"


def test_the_detector_refuses_an_unmeasured_precision_when_built(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="detection.detector.precision: int8 needs the installation's model cache"):
        CenterFaceDetector(precision="int8", landmarks=False)
    with pytest.raises(DetectorError, match="run `metrosight models optimise --detector int8` first"):
        CenterFaceDetector(precision="int8", cache_dir=tmp_path, landmarks=False)
    _derived(prepared_model_path(default_model_path(), tmp_path))
    det = CenterFaceDetector(precision="int8", cache_dir=tmp_path, landmarks=False)
    assert det.precision == "int8"


def _config(tmp_path: Path, body: dict) -> Path:
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(body))
    return p


def test_config_check_and_start_refuse_an_unmeasured_precision_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cfg = _config(tmp_path, {"recognition": {"embedder": {"kind": "onnx", "precision": "int8"}}})
    res = CliRunner().invoke(app, ["--home", str(home), "config", "check", str(cfg)])
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line == (
        "error: invalid configuration: recognition.embedder.precision: int8 has not passed the parity gate here: "
        "run `metrosight models optimise --embedder int8` first"
    )
    run = CliRunner().invoke(app, ["--home", str(home), "--config", str(cfg), "run", "--source", "x.mp4"])
    assert run.exit_code == 2 and "int8 has not passed the parity gate" in run.output
    _derived(onnx_model_path(dlib_weights(), home / "cache" / "models"))  # a passing record for exactly these files
    ok = CliRunner().invoke(app, ["--home", str(home), "config", "check", str(cfg)])
    assert ok.exit_code == 0, ok.output
    check_precisions(Settings.model_validate(yaml.safe_load(cfg.read_text())), home / "cache")


def test_config_check_names_a_failing_detector_variant(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cfg = _config(tmp_path, {"detection": {"detector": {"kind": "centerface", "precision": "int8"}}})
    _derived(prepared_model_path(default_model_path(), home / "cache" / "models"), False, "recall 90.00% vs …")
    res = CliRunner().invoke(app, ["--home", str(home), "config", "check", str(cfg)])
    assert res.exit_code == 2
    assert "detection.detector.precision: int8 failed parity: recall 90.00% vs … — use float32" in res.output


def test_unknown_precisions_are_refused_by_the_schema() -> None:
    with pytest.raises(ValueError, match="precision"):
        Settings.model_validate({"recognition": {"embedder": {"kind": "onnx", "precision": "int4"}}})


def test_the_sensitive_layers_are_the_first_convolution_and_the_output_producers() -> None:
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], name="first"),
        helper.make_node("Relu", ["a"], ["b"], name="relu"),
        helper.make_node("Conv", ["b", "w2"], ["c"], name="middle"),
        helper.make_node("MatMul", ["c", "w3"], ["d"], name="fc"),
        helper.make_node("Identity", ["d"], ["y"], name="out"),
    ]
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("x", "w1", "w2", "w3")]
    graph = helper.make_graph(nodes, "g", vi, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph)
    assert sensitive_nodes(model) == ["first", "fc"]
    assert sensitive_nodes(model, tail=2) == ["first", "fc", "middle"]  # and the last two compute layers


def test_optimise_refuses_a_bad_request_in_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    both = runner.invoke(app, ["--home", str(tmp_path), "models", "optimise", "--embedder", "int8", "--detector", "x"])
    assert both.exit_code == 2 and "give one of --embedder VARIANT or --detector VARIANT" in both.output
    bad = runner.invoke(app, ["--home", str(tmp_path), "models", "optimise", "--embedder", "int4"])
    assert bad.exit_code == 2
    assert "unknown variant 'int4': choose one of optimised, int8, int8-dynamic, fp16" in bad.output


@pytest.mark.parametrize("field, value", [("passed", "false"), ("passed", 1), ("model_sha256", None)])
def test_a_record_of_the_wrong_types_counts_as_none(tmp_path: Path, field: str, value: object) -> None:
    """A hand-edited verdict such as ``"passed": "false"`` (a truthy string) never lets a variant in."""
    import json

    f = tmp_path / "m.onnx"
    model = _derived(f, passed=False)
    raw = json.loads(record_path(model).read_text())
    raw[field] = value
    record_path(model).write_text(json.dumps(raw))
    with pytest.raises(VariantError, match="has not passed the parity gate"):
        accepted_variant(f, "int8", CMD, WHERE)
