"""Shared test fixtures.

Real data lives in ../shared/data (override with METROSIGHT_DATA), field cases in ../shared/cases (override with
METROSIGHT_CASES). Tests that need them skip with a clear reason on a machine without them, but fail in CI (env CI
set), where they must be present.

System programs the real-component tests start (ffmpeg and GStreamer's RTSP server, redis-server, PostgreSQL,
chromium, systemd-analyze, promtool) and root (to mount a tmpfs) are another matter: a test that lacks one skips
with the reason (:func:`missing_system`), CI set or not, so that the README's test command passes on a fresh machine;
it fails instead where ``.ci/run`` installed them (it sets ``METROSIGHT_SYSTEM_PACKAGES=installed``), so a broken
install step cannot hide behind skips.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# The suite's admins and approvers sign in with passwords alone: the second factor that the default configuration
# requires of them (`totp.required_roles`) is switched off here for every test, every CLI run and every process the
# tests start (they inherit the environment), and switched back on by the tests of it (tests/unit/api/test_totp.py,
# tests/integration/test_totp_cli.py, tests/e2e/test_totp.py), which also check the default.
TOTP_OFF_ENV = "METROSIGHT__TOTP__REQUIRED_ROLES"
os.environ.setdefault(TOTP_OFF_ENV, "[]")


def _shared(env: str, folder: str) -> Path:
    value = os.environ.get(env)
    return Path(value) if value else (REPO_ROOT.parent / "shared" / folder)


def _require(root: Path, parts: tuple[str, ...], what: str, env: str, holding: str) -> Path:
    path = root.joinpath(*parts)
    if not path.exists():
        msg = f"shared {what} missing: {path} (set {env} to the folder holding {holding})"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


SYSTEM_PACKAGES_ENV = "METROSIGHT_SYSTEM_PACKAGES"


def missing_system(why: str) -> NoReturn:
    """A system program or privilege this test needs is absent: skip with ``why``, or fail where ``.ci/run``
    installed the system packages (``METROSIGHT_SYSTEM_PACKAGES=installed``)."""
    if os.environ.get(SYSTEM_PACKAGES_ENV) == "installed":
        pytest.fail(why)
    pytest.skip(why)


def data_root() -> Path:
    return _shared("METROSIGHT_DATA", "data")


def require_data(*parts: str) -> Path:
    """Path of a shared data file or folder; skip (or fail in CI) if it is missing."""
    return _require(data_root(), parts, "test data", "METROSIGHT_DATA", "DATA.md")


def cases_root() -> Path:
    return _shared("METROSIGHT_CASES", "cases")


def require_case(*parts: str) -> Path:
    """Path of a field case (``../shared/cases/…``, see its README); skip (or fail in CI) if it is missing."""
    return _require(cases_root(), parts, "field case", "METROSIGHT_CASES", "the cases' README.md")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return require_data()


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    """A fresh, independent metrosight home directory."""
    h = tmp_path / "home"
    h.mkdir()
    return h
