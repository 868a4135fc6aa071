from pathlib import Path

import pytest

from metrosight.config import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_without_file():
    s = load_settings(None, environ={})
    assert s.detection.detector.kind == "centerface"
    assert s.recognition.embedder.kind == "onnx"
    assert 0.8 < s.recognition.match_threshold < 1.0
    assert s.recognition.min_samples >= 2


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"recognition\.match_treshold"):
        load_settings(write(tmp_path, "recognition:\n  match_treshold: 0.9\n"), environ={})


def test_bad_value_is_named_with_the_value(tmp_path):
    with pytest.raises(ConfigError, match=r"recognition\.match_threshold.*1\.5"):
        load_settings(write(tmp_path, "recognition:\n  match_threshold: 1.5\n"), environ={})


def test_detector_union_picks_by_kind(tmp_path):
    s = load_settings(
        write(tmp_path, "detection:\n  detector:\n    kind: yunet-onnx\n    model_path: /x.onnx\n"), environ={}
    )
    assert s.detection.detector.kind == "yunet-onnx"
    with pytest.raises(ConfigError, match="detection.detector"):
        load_settings(write(tmp_path, "detection:\n  detector:\n    kind: nonsense\n"), environ={})


def test_env_overrides_file(tmp_path):
    p = write(tmp_path, "recognition:\n  match_threshold: 0.9\n")
    s = load_settings(p, environ={"METROSIGHT__RECOGNITION__MATCH_THRESHOLD": "0.95"})
    assert s.recognition.match_threshold == 0.95


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml", environ={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "a: [1,\n"), environ={})
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(write(tmp_path, "- 1\n- 2\n"), environ={})


def test_camera_ids_are_validated(tmp_path):
    with pytest.raises(ConfigError, match=r"cameras\.0\.id"):
        load_settings(write(tmp_path, "cameras:\n  - id: 'bad id!'\n    source: x.mp4\n"), environ={})


def test_target_fpir_and_per_list_targets_are_checked(tmp_path):
    s = load_settings(None, environ={})
    assert s.recognition.target_fpir == 0.003 and s.watchlists == {}
    s = load_settings(
        write(
            tmp_path,
            "recognition:\n  target_fpir: 0.01\nwatchlists:\n  missing:\n    target_fpir: 0.03\n"
            "  ' wanted ':\n    target_fpir: 0.001\n",
        ),
        environ={},
    )
    assert s.recognition.target_fpir == 0.01 and s.watchlists["missing"].target_fpir == 0.03
    assert s.watchlists["wanted"].target_fpir == 0.001  # names are trimmed as the store trims them
    for bad, where in (
        ("recognition:\n  target_fpir: 0\n", r"recognition\.target_fpir"),
        ("recognition:\n  target_fpir: 0.5\n", r"recognition\.target_fpir.*0\.5"),
        ("watchlists:\n  missing:\n    target_fpir: -1\n", r"watchlists\.missing\.target_fpir"),
        ("watchlists:\n  missing:\n    target_fpr: 0.01\n", r"watchlists\.missing\.target_fpr"),
        ("watchlists:\n  '  ':\n    target_fpir: 0.01\n", r"watchlists.*empty"),
        ("recognition:\n  min_margin: 1.5\n", r"recognition\.min_margin"),
    ):
        with pytest.raises(ConfigError, match=where):
            load_settings(write(tmp_path, bad), environ={})
