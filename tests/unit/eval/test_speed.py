"""Benchmark plumbing without models: where the data is looked for, the parity and verification arithmetic, and
the clear error of `metrosight bench models` when the data is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from metrosight.eval.speed import (
    BenchDataError,
    LfwPairs,
    data_dir,
    descriptor_parity,
    need,
    verification_accuracy,
)


def test_data_dir_prefers_the_argument_then_the_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.setenv("METROSIGHT_DATA", str(tmp_path / "b"))
    assert data_dir(tmp_path / "a") == (tmp_path / "a").resolve()
    assert data_dir() == (tmp_path / "b").resolve()
    monkeypatch.setenv("METROSIGHT_DATA", str(tmp_path / "missing"))
    with pytest.raises(BenchDataError, match="missing.*METROSIGHT_DATA"):
        data_dir()
    with pytest.raises(BenchDataError, match="nope"):
        need(tmp_path / "nope")


def _pairs() -> LfwPairs:
    return LfwPairs(
        [Path(f"{i}.jpg") for i in range(4)], np.array([0, 2, 0]), np.array([1, 3, 2]), np.array([True, True, False])
    )


def test_verification_and_parity_arithmetic() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(4, 128)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    desc = base.copy()
    desc[1] = desc[0] + 0.01  # same person as 0: distance 0.11 < 0.6
    desc[3] = desc[2] + 0.01
    assert verification_accuracy(desc, _pairs()) == 1.0
    p = descriptor_parity(desc * 1.000001, desc, _pairs())
    assert p["min_cosine"] > 0.9999 and p["pairs_decided_differently"] == 0 and p["accuracy"] == 1.0
    worse = desc.copy()
    worse[1] = -worse[0]  # now pair 0 is decided wrongly
    q = descriptor_parity(worse, desc, _pairs())
    assert q["min_cosine"] < 0 and q["pairs_decided_differently"] == 1 and q["accuracy"] == pytest.approx(2 / 3)


def test_bench_models_without_data_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from metrosight.cli import app

    monkeypatch.setenv("METROSIGHT_DATA", str(tmp_path / "no-data-here"))
    res = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), "bench", "models", "--quick"])
    assert res.exit_code == 2
    assert "no-data-here" in res.stderr and "METROSIGHT_DATA" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
