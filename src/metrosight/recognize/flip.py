"""Mirror-image fusion: a face's descriptor fused with the descriptor of its horizontally flipped chip.

A face and its mirror image are the same person; dlib's network does not give them the same descriptor, and the
unit mean of the two is a steadier descriptor (on LFW fold 1, one enrolment photo a person: rank-1 96.2% → 97.3%,
FNIR at FPIR 0.01 37% → 25%; see the README's accuracy section). It costs a second pass of the network per face.
"""

from __future__ import annotations

import numpy as np

from metrosight.recognize.embedder import Embedder, check_chips


class FlipFusedEmbedder:
    """Wraps an embedder: each chip's descriptor is the unit mean of the chip's and its mirror image's.

    Args:
        inner: the embedder that computes the descriptors.
    """

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = f"{inner.name}+flip"
        self.model_id = inner.model_id  # the same model: templates mix with the plain backend's
        self.dim = inner.dim

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """``(N, 150, 150, 3)`` uint8 chips → ``(N, D)`` float32 unit descriptors (see :class:`Embedder`); one
        call of the inner embedder for the chips and their mirror images together."""
        chips = check_chips(chips)
        n = len(chips)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        both = np.asarray(
            self.inner.embed(np.ascontiguousarray(np.concatenate([chips, chips[:, :, ::-1]]))), np.float32
        )
        return fuse_mirrored(both[:n], both[n:])


def fuse_mirrored(plain: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """The unit mean of each chip's unit descriptor and its mirror image's: ``(N, D)``, ``(N, D)`` → ``(N, D)``
    float32 unit rows."""
    a = np.asarray(plain, np.float32)
    b = np.asarray(mirrored, np.float32)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    fused = a + b
    return (fused / np.maximum(np.linalg.norm(fused, axis=1, keepdims=True), 1e-12)).astype(np.float32)
