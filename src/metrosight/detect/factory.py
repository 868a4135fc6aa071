"""Build a face detector by backend name and constructor arguments (research, eval and bench use).

Hosts build from the configuration (:func:`metrosight.detect.registry.build_face_detector`); both go through the one
table, :data:`metrosight.detect.registry.FACE_DETECTORS`, whose docstring lists the backends.
"""

from __future__ import annotations

from typing import Any

from metrosight.detect.base import FaceDetector
from metrosight.detect.registry import DEFAULT_BACKEND, FACE_DETECTORS


def available() -> list[str]:
    """Names accepted by :func:`make_detector` (backends and aliases)."""
    return FACE_DETECTORS.names()


def make_detector(name: str, **kwargs: Any) -> FaceDetector:
    """A face detector by backend name.

    Args:
        name: one of :func:`available` (``"fast"`` is the default backend).
        **kwargs: passed to the backend's constructor.

    Raises:
        DetectorError: for an unknown name or arguments the backend does not take.
    """
    return FACE_DETECTORS.construct(name, **kwargs)


__all__ = ["DEFAULT_BACKEND", "available", "make_detector"]
