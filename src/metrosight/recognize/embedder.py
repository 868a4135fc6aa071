"""The face-embedder interface every backend implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


class ChipShapeError(ValueError):
    """Chips given to an embedder are not ``(N, 150, 150, 3)`` uint8; ``value`` is the offending shape/dtype."""

    def __init__(self, message: str, value: object) -> None:
        super().__init__(f"{message}: {value!r}")
        self.value = value


@runtime_checkable
class Embedder(Protocol):
    """Turns aligned face chips into descriptors.

    Attributes:
        name: short backend name, e.g. ``"dlib-resnet-onnx"``; templates from different backends do not mix.
    """

    name: str

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Descriptors of aligned face chips.

        Args:
            chips: ``(N, 150, 150, 3)`` uint8 RGB, aligned as dlib's ``get_face_chip(size=150, padding=0.25)``.

        Returns:
            ``(N, 128)`` float32 descriptors (not re-normalised); ``(0, 128)`` when ``N == 0``.
        """
        ...


def check_chips(chips: np.ndarray, size: int = 150) -> np.ndarray:
    """Validate chips for an embedder and return them C-contiguous.

    Raises:
        ChipShapeError: not an ``(N, size, size, 3)`` uint8 array.
    """
    if not isinstance(chips, np.ndarray):
        raise ChipShapeError("chips must be a numpy array", type(chips).__name__)
    if chips.ndim != 4 or chips.shape[1:] != (size, size, 3):
        raise ChipShapeError(f"chips must have shape (N, {size}, {size}, 3)", chips.shape)
    if chips.dtype != np.uint8:
        raise ChipShapeError("chips must be uint8", str(chips.dtype))
    return np.ascontiguousarray(chips)
