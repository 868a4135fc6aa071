"""LFW-protocol verification (1:1) of a scoring method over encoded photos."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metrosight.eval.datasets import Pair
from metrosight.eval.extract import FaceRecord
from metrosight.eval.identify import MethodSpec, record_vector, unit
from metrosight.eval.metrics import MetricError, VerificationResult, det_curve, stratified_folds, verification


def pair_scores(a: np.ndarray, b: np.ndarray, m: MethodSpec) -> np.ndarray:
    """Similarity of row-aligned descriptors ``a``, ``b`` ``(P, 128)`` under a method (higher = more alike)."""
    if m.scoring == "euclidean":
        return -np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=1)
    ua, ub = unit(a), unit(b)
    cos = np.sum(ua * ub, axis=1)
    if m.scoring == "asnorm":
        if m.cohort is None:
            raise MetricError(f"method {m.name!r} needs a cohort")
        mu_a, sd_a = m.cohort.stats(ua)
        mu_b, sd_b = m.cohort.stats(ub)
        cos = 0.5 * ((cos - mu_a) / sd_a + (cos - mu_b) / sd_b)
    return np.asarray(cos, dtype=np.float64)


@dataclass(slots=True)
class VerificationRun:
    """One method's verification.

    Attributes:
        method: the method.
        result: cross-validated accuracy, TAR at FAR, EER.
        scores: pair scores (a pair with a photo that gave no face scores ``-inf``: rejected).
        same: whether each pair is genuine.
        failed_pairs: pairs with a photo that gave no face.
        all_pairs: TAR at FAR over every pair of distinct photos in the set (``(far, tar, threshold)`` rows), which
            resolves lower FARs than the pairs file's impostor pairs.
        all_curve: ``(far, tar)`` arrays over all pairs.
        n_all_genuine: genuine pairs among all pairs.
        n_all_impostor: impostor pairs among all pairs.
    """

    method: MethodSpec
    result: VerificationResult
    scores: np.ndarray
    same: np.ndarray
    failed_pairs: int
    all_pairs: list[tuple[float, float, float]]
    all_curve: tuple[np.ndarray, np.ndarray]
    n_all_genuine: int
    n_all_impostor: int


def evaluate_pairs(
    pairs: Sequence[Pair],
    records: Sequence[FaceRecord],
    method: MethodSpec,
    fars: tuple[float, ...] = (1e-3, 1e-4),
    folds: int = 10,
) -> VerificationRun:
    """Verify every pair; accuracy is cross-validated over the file's folds, or over ``folds`` stratified folds of
    the pairs when the file has a single fold (the threshold is always chosen on the other folds).

    Raises:
        MetricError: a photo of a pair was not encoded.
    """
    recs = {r.path: r for r in records}
    for pr in pairs:
        for p in (pr.a, pr.b):
            if p not in recs:
                raise MetricError(f"photo not encoded: {p}")
    ok = np.array([recs[pr.a].ok and recs[pr.b].ok for pr in pairs], dtype=bool)
    zero = np.zeros(128, np.float32)
    a = np.stack(
        [record_vector(recs[pr.a], method.flip) if o else zero for pr, o in zip(pairs, ok, strict=True)]
    )
    b = np.stack(
        [record_vector(recs[pr.b], method.flip) if o else zero for pr, o in zip(pairs, ok, strict=True)]
    )
    s = np.where(ok, pair_scores(a, b, method), -np.inf)
    same = np.array([pr.same for pr in pairs], dtype=bool)
    file_folds = np.array([pr.fold for pr in pairs])
    f = file_folds if len(np.unique(file_folds)) > 1 else stratified_folds(same, folds)
    finite = np.where(np.isfinite(s), s, np.nanmin(s[np.isfinite(s)]) - 1.0 if np.isfinite(s).any() else 0.0)
    res = verification(finite, same, f, fars)
    all_rows, curve, ng, ni = all_pairs_roc(records, method, fars)
    return VerificationRun(method, res, s, same, int((~ok).sum()), all_rows, curve, ng, ni)


def all_pairs_roc(
    records: Sequence[FaceRecord], method: MethodSpec, fars: tuple[float, ...]
) -> tuple[list[tuple[float, float, float]], tuple[np.ndarray, np.ndarray], int, int]:
    """TAR at FAR over all pairs of distinct encoded photos (genuine: same label)."""
    good = [r for r in records if r.ok]
    # De-duplicate photos (a photo can appear in several pairs).
    seen: dict[Path, FaceRecord] = {}
    for r in good:
        seen.setdefault(r.path, r)
    good = list(seen.values())
    if len(good) < 2:
        return [], (np.zeros(0), np.zeros(0)), 0, 0
    v = np.stack([record_vector(r, method.flip) for r in good])
    labels = np.array([r.label for r in good], dtype=object)
    iu = np.triu_indices(len(good), k=1)
    s = pair_scores(v[iu[0]], v[iu[1]], method)
    same = labels[iu[0]] == labels[iu[1]]
    g, i = s[same], s[~same]
    rows = []
    if len(g) and len(i):
        from metrosight.eval.metrics import tar_at_far

        for far in fars:
            rp = tar_at_far(g, i, far)
            rows.append((far, rp.value, rp.threshold))
        _, fpr, fnr = det_curve(g, i)
        return rows, (fpr, 1.0 - fnr), len(g), len(i)
    return rows, (np.zeros(0), np.zeros(0)), len(g), len(i)
