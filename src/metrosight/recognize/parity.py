"""The parity gate: when a faster (quantised, pruned, re-optimised) model may stand in for the float one.

Pure computation on descriptors and counts (the data is read by :mod:`metrosight.eval.parity`). Limits (issue 20):

- an embedder candidate keeps cosine ≥ :data:`MIN_COSINE` to the float model's descriptor on *every* face (both
  network passes of each face: the chip and its mirror image), and changes the verification decision (fused
  descriptors' cosine ≥ the shipped threshold, or not) on at most :data:`MAX_DECISION_CHANGES` of the pairs;
- a detector candidate finds faces with recall (at IoU 0.4) within :data:`MAX_RECALL_DROP` of the float model's.

A candidate that misses a limit by one face is refused: the limits are strict inequalities on every item.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

MIN_COSINE: Final = 0.999
MAX_DECISION_CHANGES: Final = 0.002  # share of the pairs
MAX_RECALL_DROP: Final = 0.005  # 0.5 percentage points of recall


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``a`` with the same row of ``b``: ``(N, D)``, ``(N, D)`` → ``(N,)`` float64.

    Raises:
        ValueError: the shapes differ.
    """
    if a.shape != b.shape:
        raise ValueError(f"descriptor arrays differ in shape: {a.shape} vs {b.shape}")
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na = np.maximum(np.linalg.norm(a64, axis=1), 1e-12)
    nb = np.maximum(np.linalg.norm(b64, axis=1), 1e-12)
    return np.asarray(np.sum(a64 * b64, axis=1) / (na * nb), np.float64)


def pair_cosines(fused: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Cosine of each pair of descriptors: ``fused`` ``(N, D)``, ``pairs`` ``(P, 2)`` row indices → ``(P,)``."""
    return row_cosines(fused[pairs[:, 0]], fused[pairs[:, 1]])


@dataclass(frozen=True, slots=True)
class EmbedderParity:
    """An embedder candidate against the float model.

    Attributes:
        descriptors: descriptors compared (faces × passes).
        min_cosine: the lowest cosine to the float descriptor.
        mean_cosine: the mean cosine.
        below: descriptors under :data:`MIN_COSINE`.
        pairs: verification pairs compared.
        decision_changes: pairs whose decision at ``threshold`` differs from the float model's.
        threshold: the cosine a pair must reach to be called the same person (the shipped match threshold).
    """

    descriptors: int
    min_cosine: float
    mean_cosine: float
    below: int
    pairs: int
    decision_changes: int
    threshold: float

    @property
    def change_rate(self) -> float:
        """Share of the pairs whose decision changed."""
        return self.decision_changes / self.pairs if self.pairs else 0.0

    @property
    def passed(self) -> bool:
        """Every descriptor at or above the cosine limit, and few enough decision changes."""
        return self.descriptors > 0 and self.below == 0 and self.change_rate <= MAX_DECISION_CHANGES

    def summary(self) -> str:
        """One line: the figures against their limits."""
        cos = f"min cosine {self.min_cosine:.4f} {'≥' if self.below == 0 else '<'} {MIN_COSINE}"
        if self.below:
            cos += f" on {self.below} of {self.descriptors} descriptors"
        dec = (
            f"decisions changed on {self.decision_changes} of {self.pairs} pairs ({100 * self.change_rate:.2f}% "
            f"{'≤' if self.change_rate <= MAX_DECISION_CHANGES else '>'} {100 * MAX_DECISION_CHANGES:.1f}%)"
        )
        return f"{cos}; {dec}"

    def figures(self) -> dict[str, float | int]:
        """The figures by name (for the parity record and the bench JSON)."""
        return {
            "descriptors": self.descriptors,
            "min_cosine": self.min_cosine,
            "mean_cosine": self.mean_cosine,
            "below_min_cosine": self.below,
            "pairs": self.pairs,
            "decision_changes": self.decision_changes,
            "threshold": self.threshold,
        }


def embedder_parity(
    reference: np.ndarray,
    candidate: np.ndarray,
    reference_scores: np.ndarray,
    candidate_scores: np.ndarray,
    threshold: float,
) -> EmbedderParity:
    """Judge an embedder candidate.

    Args:
        reference: ``(M, D)`` float descriptors of every face pass (each face's chip and mirror image).
        candidate: ``(M, D)`` the candidate's descriptors of the same chips, in the same order.
        reference_scores: ``(P,)`` verification pair cosines with the float model's (fused) descriptors.
        candidate_scores: ``(P,)`` the same pairs with the candidate's.
        threshold: the match threshold (cosine) a pair's decision is taken at.

    Raises:
        ValueError: mismatched shapes.
    """
    if reference_scores.shape != candidate_scores.shape:
        raise ValueError(f"pair scores differ in shape: {reference_scores.shape} vs {candidate_scores.shape}")
    cos = row_cosines(reference, candidate)
    changed = (reference_scores >= threshold) != (candidate_scores >= threshold)
    return EmbedderParity(
        descriptors=len(cos),
        min_cosine=float(cos.min()) if len(cos) else float("nan"),
        mean_cosine=float(cos.mean()) if len(cos) else float("nan"),
        below=int(np.sum(cos < MIN_COSINE)),
        pairs=len(changed),
        decision_changes=int(np.sum(changed)),
        threshold=float(threshold),
    )


@dataclass(frozen=True, slots=True)
class DetectorParity:
    """A detector candidate against the float model on one annotated set.

    Attributes:
        faces: annotated faces.
        reference_found: faces the float model found (IoU ≥ 0.4).
        candidate_found: faces the candidate found.
    """

    faces: int
    reference_found: int
    candidate_found: int

    @property
    def reference_recall(self) -> float:
        return self.reference_found / self.faces if self.faces else 0.0

    @property
    def candidate_recall(self) -> float:
        return self.candidate_found / self.faces if self.faces else 0.0

    @property
    def drop(self) -> float:
        """Recall lost (a fraction; negative when the candidate finds more)."""
        return self.reference_recall - self.candidate_recall

    @property
    def passed(self) -> bool:
        return self.faces > 0 and self.drop <= MAX_RECALL_DROP + 1e-12

    def summary(self) -> str:
        """One line: the recalls against the limit."""
        op = "≤" if self.passed else ">"
        return (
            f"recall {100 * self.candidate_recall:.2f}% vs float {100 * self.reference_recall:.2f}% on "
            f"{self.faces} faces (drop {100 * self.drop:.2f} points {op} {100 * MAX_RECALL_DROP:.1f})"
        )

    def figures(self) -> dict[str, float | int]:
        """The figures by name."""
        return {
            "faces": self.faces,
            "reference_found": self.reference_found,
            "candidate_found": self.candidate_found,
            "reference_recall": self.reference_recall,
            "candidate_recall": self.candidate_recall,
            "recall_drop_points": 100 * self.drop,
        }
