"""LFW-protocol verification (1:1) of a scoring method over encoded photos."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metrosight.eval.datasets import Pair
from metrosight.eval.extract import FaceRecord
from metrosight.eval.identify import MethodSpec, record_vector, unit
from metrosight.eval.metrics import MetricError, VerificationResult, rate_at, stratified_folds, verification


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
    a = np.stack([record_vector(recs[pr.a], method.flip) if o else zero for pr, o in zip(pairs, ok, strict=True)])
    b = np.stack([record_vector(recs[pr.b], method.flip) if o else zero for pr, o in zip(pairs, ok, strict=True)])
    s = np.where(ok, pair_scores(a, b, method), -np.inf)
    same = np.array([pr.same for pr in pairs], dtype=bool)
    file_folds = np.array([pr.fold for pr in pairs])
    f = file_folds if len(np.unique(file_folds)) > 1 else stratified_folds(same, folds)
    finite = np.where(np.isfinite(s), s, np.nanmin(s[np.isfinite(s)]) - 1.0 if np.isfinite(s).any() else 0.0)
    res = verification(finite, same, f, fars)
    all_rows, curve, ng, ni = all_pairs_roc(records, method, fars)
    return VerificationRun(method, res, s, same, int((~ok).sum()), all_rows, curve, ng, ni)


#: rows of the all-pairs score matrix computed at a time: memory is ``BLOCK_ROWS × photos`` scores, whatever the
#: number of pairs (full LFW: 13,233 photos, 87.5 million pairs)
BLOCK_ROWS = 512
#: histogram bins of the impostor scores (the ROC curve away from the exactly kept highest impostor scores)
CURVE_BINS = 4096


def _pair_stats(v: np.ndarray, method: MethodSpec) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Per-photo quantities the block scores need: the (unit, for cosine) vectors and the cohort statistics."""
    if method.scoring == "euclidean":
        v64 = np.asarray(v, np.float64)
        return v64, np.sum(v64 * v64, axis=1), None
    u = unit(v)
    if method.scoring == "asnorm":
        if method.cohort is None:
            raise MetricError(f"method {method.name!r} needs a cohort")
        mu, sd = method.cohort.stats(u)
        return u, np.asarray(mu, np.float64), np.asarray(sd, np.float64)
    return u, None, None


def _block_scores(
    rows: slice, v: np.ndarray, a: np.ndarray | None, b: np.ndarray | None, method: MethodSpec
) -> np.ndarray:
    """Scores ``(len(rows), N)`` of photos ``rows`` against every photo, as :func:`pair_scores` computes them."""
    if method.scoring == "euclidean":
        if a is None:
            raise MetricError("euclidean scores need the squared norms (_pair_stats)")
        d2 = a[rows, None] + a[None, :] - 2.0 * (v[rows] @ v.T)
        return -np.sqrt(np.maximum(d2, 0.0))
    cos = np.asarray(v[rows] @ v.T, dtype=np.float64)
    if method.scoring == "asnorm":
        if a is None or b is None:
            raise MetricError(f"method {method.name!r} needs the cohort statistics (_pair_stats)")
        cos = 0.5 * ((cos - a[rows, None]) / b[rows, None] + (cos - a[None, :]) / b[None, :])
    return cos


def _upper_blocks(
    n: int, labels: np.ndarray, v: np.ndarray, a: np.ndarray | None, b: np.ndarray | None, method: MethodSpec
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(scores, same)`` of the pairs ``i < j`` of each block of rows, flattened; one block in memory at a time."""
    for r0 in range(0, n, BLOCK_ROWS):
        rows = slice(r0, min(n, r0 + BLOCK_ROWS))
        s = _block_scores(rows, v, a, b, method)
        idx = np.arange(rows.start, rows.stop)
        keep = np.arange(n)[None, :] > idx[:, None]
        same = labels[rows, None] == labels[None, :]
        yield s[keep], same[keep]


def all_pairs_roc(
    records: Sequence[FaceRecord], method: MethodSpec, fars: tuple[float, ...]
) -> tuple[list[tuple[float, float, float]], tuple[np.ndarray, np.ndarray], int, int]:
    """TAR at FAR over all pairs of distinct encoded photos (genuine: same label).

    The pairs are scored a block of rows at a time and never held together: genuine scores are kept (few), of the
    impostor scores only the highest ``max(fars) × impostors + 1`` (exact thresholds) and a histogram of
    :data:`CURVE_BINS` bins (the curve below them). Memory grows with the number of photos (``BLOCK_ROWS`` scores
    a photo), not with the number of pairs.

    Returns:
        ``(rows, (far, tar), n_genuine, n_impostor)``: one ``(far, tar, threshold)`` row per requested FAR, the
        ROC curve (FAR ascending), and the pair counts.
    """
    good = [r for r in records if r.ok]
    # De-duplicate photos (a photo can appear in several pairs).
    seen: dict[Path, FaceRecord] = {}
    for r in good:
        seen.setdefault(r.path, r)
    good = list(seen.values())
    n = len(good)
    empty: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))
    if n < 2:
        return [], empty, 0, 0
    v = np.stack([record_vector(r, method.flip) for r in good])
    names = [r.label for r in good]
    code = {lab: k for k, lab in enumerate(sorted(set(names)))}
    labels = np.array([code[x] for x in names], dtype=np.int64)
    counts = np.bincount(labels)
    n_gen = int(np.sum(counts * (counts - 1) // 2))
    n_imp = n * (n - 1) // 2 - n_gen
    if n_gen == 0 or n_imp == 0:
        return [], empty, n_gen, n_imp
    vv, a, b = _pair_stats(v, method)
    keep_top = min(n_imp, int(np.floor(max(fars, default=0.0) * n_imp + 1e-9)) + 1)
    genuine: list[np.ndarray] = []
    top = np.zeros(0, np.float64)
    lo, hi = np.inf, -np.inf
    for s, same in _upper_blocks(n, labels, vv, a, b, method):
        genuine.append(s[same])
        imp = s[~same]
        if imp.size:
            lo, hi = min(lo, float(imp.min())), max(hi, float(imp.max()))
            both = np.concatenate([top, imp])
            top = both if len(both) <= keep_top else -np.partition(-both, keep_top - 1)[:keep_top]
    g = np.concatenate(genuine)
    top = np.sort(top)[::-1]
    rows = []
    for far in fars:
        k = int(np.floor(far * n_imp + 1e-9))  # at most k impostor pairs may reach the threshold
        t = -np.inf if k >= n_imp else float(np.nextafter(top[k], np.inf))
        rows.append((far, rate_at(g, t), t))
    # Second sweep: histogram of the impostor scores for the curve.
    edges = np.linspace(lo, np.nextafter(hi, np.inf), CURVE_BINS + 1)
    hist = np.zeros(CURVE_BINS, np.int64)
    for s, same in _upper_blocks(n, labels, vv, a, b, method):
        hist += np.histogram(s[~same], bins=edges)[0]
    above = np.cumsum(hist[::-1])[::-1]  # impostors at or above each lower edge
    g_sorted = np.sort(g)
    ts = np.concatenate([top, edges[:-1][::-1]])
    fa = np.concatenate([np.arange(1, len(top) + 1), above[::-1]]) / n_imp
    ta = 1.0 - np.searchsorted(g_sorted, ts, side="left") / len(g)
    order = np.argsort(fa, kind="stable")
    return rows, (fa[order], ta[order]), len(g), n_imp
