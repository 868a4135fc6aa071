"""Cohort score normalisation: making one threshold mean the same false-match rate for every face.

Raw cosine scores of dlib descriptors are not comparable across faces: some templates (and some probes — a blurred
or averted face, a face like many others) sit close to everybody, so a threshold that is strict for one face is
loose for another, and those "hub" faces cause most false alerts at strict thresholds. Cohort normalisation
compares each score with how the same face scores against a *cohort*: a background set of faces of people on no
list, provided by the operator (``metrosight calibrate --cohort DIR``), never collected from passers-by.

Adaptive symmetric normalisation (AS-norm; Matějka et al. 2017, widely used in speaker and face verification):
for a probe p and template g with cosine s,

    s_norm = ½ · ((s − μ_g) / σ_g + (s − μ_p) / σ_p)

where μ_g, σ_g are the mean and standard deviation of the ``top_k`` highest cosines of g against the cohort, and μ_p,
σ_p the same for p. Template statistics are computed once at gallery build time; probe statistics cost one
``(K, 128)`` matrix–vector product per search. The result is in standard-deviation units of "the most similar
strangers": 0 means as similar as the typical look-alike in the cohort.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metrosight.recognize.embedder import DLIB_RESNET_MODEL_ID

log = logging.getLogger(__name__)

COHORT_FILE = "cohort.npz"
#: Chosen by bench/eval_normalisation.py: on each half of LFW fold 1's people (393-face FDDB cohort), top-k 200 gave
#: the lowest FNIR at FPIR 0.01/0.003 among k = 50, 100, 200 and T-/Z-only variants, and it was then scored on the
#: other half. Capped at the cohort size.
DEFAULT_TOP_K = 200
_MIN_STD = 1e-3


class CohortError(ValueError):
    """A cohort file is missing, malformed or too small; the message names it."""


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@dataclass(frozen=True, slots=True)
class Cohort:
    """A background set of unit descriptors ``(K, 128)`` float32 and the ``top_k`` used for statistics.

    Attributes:
        descriptors: unit rows, one face each.
        top_k: how many of the highest cohort scores the statistics use (at most ``K``).
        model: the descriptor model the cohort was made with (templates of other models do not mix).
    """

    descriptors: np.ndarray
    top_k: int = DEFAULT_TOP_K
    model: str = DLIB_RESNET_MODEL_ID

    def __post_init__(self) -> None:
        d = np.asarray(self.descriptors)
        if d.ndim != 2 or not d.shape[1] or len(d) < 2:
            raise CohortError(f"a cohort needs at least 2 descriptors of shape (K, D), got {d.shape}")
        if self.top_k < 2:
            raise CohortError(f"top_k must be at least 2, got {self.top_k}")

    def __len__(self) -> int:
        return len(self.descriptors)

    @classmethod
    def build(cls, descriptors: np.ndarray, top_k: int = DEFAULT_TOP_K, model: str = DLIB_RESNET_MODEL_ID) -> Cohort:
        """A cohort from raw descriptors ``(K, 128)`` (normalised here)."""
        return cls(_unit(np.atleast_2d(descriptors)), top_k, model)

    def stats(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of each vector's ``top_k`` highest cosines against the cohort.

        Args:
            vectors: ``(M, 128)`` or ``(128,)`` descriptors (normalised here).

        Returns:
            ``(mean, std)``, each ``(M,)`` float32 (std floored at 1e-3).
        """
        v = _unit(np.atleast_2d(vectors))
        s = v @ self.descriptors.T  # (M, K)
        k = min(self.top_k, s.shape[1])
        top = -np.partition(-s, k - 1, axis=1)[:, :k]
        return top.mean(axis=1).astype(np.float32), np.maximum(top.std(axis=1), _MIN_STD).astype(np.float32)

    # -- persistence (under <home>/calibration/) -------------------------------------------------------------
    def save(self, path: Path) -> Path:
        """Write the cohort atomically as ``.npz``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, descriptors=self.descriptors, top_k=np.int64(self.top_k), model=np.str_(self.model))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> Cohort:
        """Read a cohort written by :meth:`save`.

        Raises:
            CohortError: missing or malformed file.
        """
        path = Path(path)
        if not path.is_file():
            raise CohortError(f"cohort file not found: {path} (build one with `metrosight calibrate --cohort DIR`)")
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(np.asarray(z["descriptors"], dtype=np.float32), int(z["top_k"]), str(z["model"]))
        except (OSError, KeyError, ValueError) as exc:
            raise CohortError(f"{path}: not a metrosight cohort file ({exc})") from None


class CohortNorm:
    """AS-norm of cosine scores against a cohort (see the module docstring).

    Args:
        cohort: the background set.
        templates: ``(N, 128)`` gallery templates (their cohort statistics are computed once here).
        mode: ``"s"`` symmetric (both terms, the default), ``"t"`` probe side only (T-norm), ``"z"`` template side
            only (Z-norm).
    """

    def __init__(self, cohort: Cohort, templates: np.ndarray, mode: str = "s") -> None:
        if mode not in ("s", "t", "z"):
            raise CohortError(f"unknown normalisation mode {mode!r}; choose 's', 't' or 'z'")
        self.mode = mode
        self.cohort = cohort
        t = np.atleast_2d(np.asarray(templates, dtype=np.float32))
        if len(t) and t.shape[1] != cohort.descriptors.shape[1]:
            raise CohortError(f"templates must be (N, {cohort.descriptors.shape[1]}) like the cohort, got {t.shape}")
        self.mu_g: np.ndarray
        self.sd_g: np.ndarray
        self.mu_g, self.sd_g = cohort.stats(t) if len(t) else (np.zeros(0, np.float32), np.ones(0, np.float32))

    def normalize(self, probe: np.ndarray, cosines: np.ndarray) -> np.ndarray:
        """Normalised scores of one probe ``(128,)`` given its cosines ``(N,)`` to the templates."""
        return self.normalize_many(np.atleast_2d(probe), np.atleast_2d(cosines))[0]

    def normalize_many(self, probes: np.ndarray, cosines: np.ndarray) -> np.ndarray:
        """Normalised scores ``(P, N)`` of probes ``(P, 128)`` given their cosines ``(P, N)``."""
        c = np.asarray(cosines, dtype=np.float32)
        z = (c - self.mu_g[None, :]) / self.sd_g[None, :]
        if self.mode == "z":
            return z
        mu_p, sd_p = self.cohort.stats(probes)
        t = (c - mu_p[:, None]) / sd_p[:, None]
        return t if self.mode == "t" else 0.5 * (z + t)
