"""The README's test command passes without the system packages (skips with the reason); under `.ci/run`, which
installs them, a missing one fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, SYSTEM_PACKAGES_ENV


@pytest.mark.parametrize(("installed", "outcome"), [(False, "1 skipped"), (True, "1 failed")])
def test_missing_system_program_skips_unless_ci_installed_them(tmp_path: Path, installed: bool, outcome: str) -> None:
    test = tmp_path / "test_probe.py"
    test.write_text(
        "from tests.conftest import missing_system\n\n"
        "def test_needs_it():\n"
        "    missing_system('frobnicator is not installed (apt-get install frobnicator)')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != SYSTEM_PACKAGES_ENV}
    env |= {"CI": "true", "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])}
    if installed:
        env[SYSTEM_PACKAGES_ENV] = "installed"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-q", "-p", "no:cacheprovider", str(test)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False,
    )  # fmt: skip
    assert outcome in proc.stdout, proc.stdout + proc.stderr
    assert "frobnicator is not installed" in proc.stdout
