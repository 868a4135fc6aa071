"""Shared test fixtures.

Real data lives in ../shared/data (override with METROSIGHT_DATA), field cases in ../shared/cases (override with
METROSIGHT_CASES). Tests that need them skip with a clear reason on a machine without them, but fail in CI (env CI
set), where they must be present.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    env = os.environ.get("METROSIGHT_DATA")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "data")


def require_data(*parts: str) -> Path:
    """Path of a shared data file or folder; skip (or fail in CI) if it is missing."""
    path = data_root().joinpath(*parts)
    if not path.exists():
        msg = f"shared test data missing: {path} (set METROSIGHT_DATA to the folder holding DATA.md)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def cases_root() -> Path:
    env = os.environ.get("METROSIGHT_CASES")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "cases")


def require_case(*parts: str) -> Path:
    """Path of a field case (``../shared/cases/…``, see its README); skip (or fail in CI) if it is missing."""
    path = cases_root().joinpath(*parts)
    if not path.exists():
        msg = f"shared field case missing: {path} (set METROSIGHT_CASES to the folder holding the cases' README.md)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return require_data()


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    """A fresh, independent metrosight home directory."""
    h = tmp_path / "home"
    h.mkdir()
    return h
