"""Accuracy measures (pure functions on score arrays), as ISO/IEC 19795-1 and NIST FRTE define them.

Verification (1:1): genuine scores (same person) and impostor scores (different people); higher is more similar.
FAR(t) = share of impostor scores >= t; TAR(t) = share of genuine scores >= t; FRR = 1 - TAR.

Open-set identification (1:N): each probe is searched against a gallery of N enrolled people.
- A *mated* probe is of an enrolled person. It is a hit at threshold t when its mate's score is the top score
  (rank 1) and reaches t. FNIR(t) = share of mated searches that are not hits (a face that could not be found or
  encoded counts as a miss).
- A *non-mated* probe is of someone not enrolled. FPIR(t) = share of non-mated searches whose top score reaches t.
- FNIR at FPIR x: the threshold is the smallest t with FPIR(t) <= x, computed from the non-mated scores; with
  n non-mated searches, FPIR below 1/n cannot be resolved — such points are flagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


class MetricError(ValueError):
    """Scores cannot give the requested measure (e.g. no genuine or no impostor score)."""


def _arr(x: object) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    return a


def threshold_at_rate(negatives: np.ndarray, rate: float) -> float:
    """The smallest threshold t with ``share(negatives >= t) <= rate``.

    Ties are respected: t lies just above a block of equal scores when including it would exceed ``rate``. With no
    negatives the threshold is ``-inf`` (nothing to reject).

    Args:
        negatives: scores that should be rejected (impostors, non-mated top scores), higher = more similar.
        rate: the false-accept rate allowed, 0..1.
    """
    neg = np.sort(_arr(negatives))[::-1]
    n = len(neg)
    if n == 0:
        return -math.inf
    k = math.floor(rate * n + 1e-9)  # at most k negatives may reach the threshold
    if k >= n:
        return -math.inf
    # Threshold just above the (k+1)-th highest score, so at most k scores reach it.
    return float(np.nextafter(neg[k], math.inf))


def rate_at(scores: np.ndarray, threshold: float) -> float:
    """Share of ``scores`` that reach ``threshold`` (0 for no scores). ``-inf`` stands for "no score" (a failed
    search) and never reaches any threshold."""
    s = _arr(scores)
    return float(np.mean(np.isfinite(s) & (s >= threshold))) if len(s) else 0.0


@dataclass(frozen=True, slots=True)
class RatePoint:
    """A measure at a target false rate.

    Attributes:
        target: the false rate asked for (FAR or FPIR).
        threshold: the threshold reaching it.
        achieved: the false rate actually observed at that threshold.
        value: the measure (TAR or FNIR) at that threshold.
        resolved: whether the data can resolve the target (at least one negative per ``1/target``).
    """

    target: float
    threshold: float
    achieved: float
    value: float
    resolved: bool


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> RatePoint:
    """True accept rate at a false accept rate.

    Raises:
        MetricError: no genuine or no impostor scores.
    """
    g, i = _arr(genuine), _arr(impostor)
    if not len(g) or not len(i):
        raise MetricError(f"need genuine and impostor scores, got {len(g)} and {len(i)}")
    t = threshold_at_rate(i, far)
    return RatePoint(far, t, rate_at(i, t), rate_at(g, t), len(i) * far >= 1.0)


def det_curve(positives: np.ndarray, negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive and false-negative rates at every distinct threshold.

    Args:
        positives: scores that should be accepted (a missing score, e.g. a failed search, as ``-inf``).
        negatives: scores that should be rejected.

    Returns:
        ``(thresholds, fpr, fnr)``, each ``(K,)``, thresholds descending.
    """
    p, n = _arr(positives), _arr(negatives)
    ts = np.unique(np.concatenate([p[np.isfinite(p)], n[np.isfinite(n)]]))[::-1]
    if len(ts) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    n_sorted = np.sort(n)
    p_sorted = np.sort(p)
    fpr = (len(n) - np.searchsorted(n_sorted, ts, side="left")) / max(len(n), 1)
    fnr = np.searchsorted(p_sorted, ts, side="left") / max(len(p), 1)
    return ts, fpr, fnr


# -- verification -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class VerificationResult:
    """LFW-style verification.

    Attributes:
        accuracy: mean accuracy over the test folds.
        accuracy_std: standard deviation of the fold accuracies.
        fold_accuracies: accuracy of each test fold.
        fold_thresholds: threshold chosen on the other folds for each test fold.
        at_far: TAR at the requested FARs (over all pairs).
        eer: equal error rate (over all pairs).
        n_genuine: genuine pairs.
        n_impostor: impostor pairs.
    """

    accuracy: float
    accuracy_std: float
    fold_accuracies: list[float]
    fold_thresholds: list[float]
    at_far: list[RatePoint]
    eer: float
    n_genuine: int
    n_impostor: int


def best_accuracy_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold that maximises accuracy on these pairs (midpoint between neighbouring scores)."""
    s, y = _arr(scores), np.asarray(same, dtype=bool).reshape(-1)
    order = np.argsort(s)
    s, y = s[order], y[order]
    # Accepting everything at or above s[k]: correct = impostors below k + genuines from k on.
    neg_below = np.concatenate([[0], np.cumsum(~y)])
    pos_from = np.concatenate([np.cumsum(y[::-1])[::-1], [0]])
    correct = neg_below + pos_from  # for k = 0..n
    k = int(np.argmax(correct))
    if k == 0:
        return float(s[0]) - 1e-6
    if k == len(s):
        return float(s[-1]) + 1e-6
    return float((s[k - 1] + s[k]) / 2.0)


def eer(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Equal error rate: where FAR and FRR cross (their mean at the closest threshold)."""
    _, fpr, fnr = det_curve(_arr(genuine), _arr(impostor))
    if len(fpr) == 0:
        return float("nan")
    k = int(np.argmin(np.abs(fpr - fnr)))
    return float((fpr[k] + fnr[k]) / 2.0)


def verification(
    scores: np.ndarray, same: np.ndarray, folds: np.ndarray, fars: tuple[float, ...] = (1e-3, 1e-4)
) -> VerificationResult:
    """Accuracy with the threshold chosen on the training folds only (leave one fold out).

    Args:
        scores: ``(P,)`` similarity of each pair (higher = more alike).
        same: ``(P,)`` bool, whether the pair is of one person.
        folds: ``(P,)`` int fold of each pair; each fold in turn is the test fold.
        fars: FARs at which TAR is reported (over all pairs).

    Raises:
        MetricError: fewer than 2 folds, or a class missing.
    """
    s, y, f = _arr(scores), np.asarray(same, dtype=bool).reshape(-1), np.asarray(folds).reshape(-1)
    ids = np.unique(f)
    if len(ids) < 2:
        raise MetricError(f"need at least 2 folds for cross-validated accuracy, got {len(ids)}")
    if y.all() or (~y).all():
        raise MetricError("need both genuine and impostor pairs")
    accs, ths = [], []
    for k in ids:
        train, test = f != k, f == k
        t = best_accuracy_threshold(s[train], y[train])
        accs.append(float(np.mean((s[test] >= t) == y[test])))
        ths.append(t)
    g, i = s[y], s[~y]
    return VerificationResult(
        float(np.mean(accs)),
        float(np.std(accs)),
        accs,
        ths,
        [tar_at_far(g, i, far) for far in fars],
        eer(g, i),
        int(y.sum()),
        int((~y).sum()),
    )


def stratified_folds(same: np.ndarray, k: int = 10, seed: int = 0) -> np.ndarray:
    """Fold ids ``(P,)`` in ``0..k-1``, genuine and impostor pairs spread evenly (for a pairs file with one fold)."""
    y = np.asarray(same, dtype=bool).reshape(-1)
    rng = np.random.default_rng(seed)
    folds = np.zeros(len(y), dtype=np.int64)
    for cls in (True, False):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        folds[idx] = np.arange(len(idx)) % k
    return folds


# -- open-set identification ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SearchResults:
    """The outcome of searching every probe against a gallery.

    Attributes:
        mated_top: ``(M,)`` top score of each mated search (``-inf`` when the probe had no face).
        mated_rank1: ``(M,)`` bool, whether the top candidate was the probe's mate.
        mated_mate: ``(M,)`` score of the probe's mate (``-inf`` when the probe had no face).
        non_mated_top: ``(K,)`` top score of each non-mated search (``-inf`` when the probe had no face).
        mated_rank: ``(M,)`` rank of the mate (1 = top; 0 when the probe had no face).
    """

    mated_top: np.ndarray
    mated_rank1: np.ndarray
    mated_mate: np.ndarray
    non_mated_top: np.ndarray
    mated_rank: np.ndarray

    @property
    def hit_scores(self) -> np.ndarray:
        """Per mated search, the score that counts as a hit: its top score when rank 1 is right, else ``-inf``."""
        return np.where(self.mated_rank1, self.mated_top, -np.inf)


def search(
    scores: np.ndarray,
    gallery_labels: list[str],
    probe_labels: list[str],
    valid: np.ndarray,
    rank_scores: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Top score, top label index, mate score and mate rank of each probe.

    Args:
        scores: ``(P, N)`` probe-by-gallery decision scores (rows of invalid probes are ignored).
        gallery_labels: the N enrolled people.
        probe_labels: the P probes' people.
        valid: ``(P,)`` bool, whether the probe gave a descriptor.
        rank_scores: ``(P, N)`` scores that pick the candidate and rank the gallery (default ``scores``); the
            candidate's *decision* score is then ``scores`` at the candidate (as metrosight's matcher does with
            cohort normalisation: identity by cosine, acceptance by the normalised score).

    Returns:
        ``(top, top_index, mate_score, mate_rank)``; for probes without a mate in the gallery, mate score is
        ``-inf`` and rank 0; for invalid probes, top is ``-inf``.
    """
    s = np.asarray(scores, dtype=np.float64)
    rs = s if rank_scores is None else np.asarray(rank_scores, dtype=np.float64)
    pos = {g: k for k, g in enumerate(gallery_labels)}
    p = len(probe_labels)
    top = np.full(p, -np.inf)
    arg = np.full(p, -1, dtype=np.int64)
    mate = np.full(p, -np.inf)
    rank = np.zeros(p, dtype=np.int64)
    if s.size:
        arg_all = np.argmax(rs, axis=1)
        top_all = s[np.arange(p), arg_all]
        top = np.where(valid, top_all, -np.inf)
        arg = np.where(valid, arg_all, -1)
        for r in range(p):
            j = pos.get(probe_labels[r])
            if j is None or not valid[r]:
                continue
            mate[r] = s[r, j]
            rank[r] = 1 + int(np.sum(rs[r] > rs[r, j]))
    return top, arg, mate, rank


@dataclass(frozen=True, slots=True)
class IdentificationResult:
    """Open-set 1:N summary.

    Attributes:
        n_gallery: enrolled people.
        n_mated: mated searches (including failures to acquire).
        n_non_mated: non-mated searches (including failures to acquire).
        mated_fta: mated probes with no usable face.
        non_mated_fta: non-mated probes with no usable face.
        rank1: share of mated searches whose top candidate is the mate (closed-set rank-1, failures count as
            misses).
        rank5: same within the top five.
        at_fpir: FNIR at each target FPIR.
    """

    n_gallery: int
    n_mated: int
    n_non_mated: int
    mated_fta: int
    non_mated_fta: int
    rank1: float
    rank5: float
    at_fpir: list[RatePoint]


def fnir_at_fpir(res: SearchResults, fpir: float) -> RatePoint:
    """FNIR at the threshold where FPIR (from the non-mated top scores) is at most ``fpir``."""
    t = threshold_at_rate(res.non_mated_top, fpir)
    fnir = 1.0 - rate_at(res.hit_scores, t)
    return RatePoint(fpir, t, rate_at(res.non_mated_top, t), fnir, len(res.non_mated_top) * fpir >= 1.0)


def identification(
    res: SearchResults, n_gallery: int, fpirs: tuple[float, ...] = (0.1, 0.01, 0.003)
) -> IdentificationResult:
    """Summarise searches: rank-1/5 and FNIR at the target FPIRs."""
    m = len(res.mated_top)
    if m == 0:
        raise MetricError("no mated searches: nothing to find")
    return IdentificationResult(
        n_gallery,
        m,
        len(res.non_mated_top),
        int(np.sum(~np.isfinite(res.mated_top))),
        int(np.sum(~np.isfinite(res.non_mated_top))),
        float(np.mean(res.mated_rank1)),
        float(np.mean((res.mated_rank >= 1) & (res.mated_rank <= 5))),
        [fnir_at_fpir(res, x) for x in fpirs],
    )


def fnir_at_threshold(res: SearchResults, threshold: float) -> tuple[float, float]:
    """``(FPIR, FNIR)`` at a fixed threshold (e.g. one chosen on other data)."""
    return rate_at(res.non_mated_top, threshold), 1.0 - rate_at(res.hit_scores, threshold)
