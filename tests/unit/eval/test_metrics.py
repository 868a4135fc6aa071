import math

import numpy as np
import pytest

from metrosight.eval.metrics import (
    MetricError,
    SearchResults,
    best_accuracy_threshold,
    det_curve,
    fnir_at_fpir,
    identification,
    rate_at,
    search,
    stratified_folds,
    tar_at_far,
    threshold_at_rate,
    verification,
)


def test_threshold_at_rate_respects_ties_and_counts():
    neg = np.array([0.9, 0.8, 0.8, 0.1, 0.0])
    t = threshold_at_rate(neg, 0.2)  # one negative of five may pass
    assert rate_at(neg, t) == pytest.approx(0.2) and t > 0.8
    t = threshold_at_rate(neg, 0.4)  # two may pass, but 0.8 is a tie of two: only 0.9 passes
    assert rate_at(neg, t) <= 0.4 and rate_at(neg, t) == pytest.approx(0.2)
    assert rate_at(neg, threshold_at_rate(neg, 0.0)) == 0.0
    assert threshold_at_rate(np.array([]), 0.1) == -math.inf


def test_tar_at_far_flags_unresolved_points():
    g = np.linspace(0.5, 1.0, 100)
    i = np.linspace(0.0, 0.6, 100)
    p = tar_at_far(g, i, 0.01)
    assert p.resolved and p.achieved <= 0.01 and 0.7 < p.value < 0.85
    assert not tar_at_far(g, i, 1e-3).resolved
    with pytest.raises(MetricError):
        tar_at_far(g, np.array([]), 0.1)


def test_det_curve_counts_missing_positives_as_misses():
    _ts, fpr, fnr = det_curve(np.array([0.9, -np.inf]), np.array([0.5]))
    assert fnr.min() == pytest.approx(0.5)  # the -inf positive is never accepted
    assert fpr[0] == 0.0 and fpr[-1] == 1.0


def test_verification_threshold_comes_from_other_folds():
    rng = np.random.default_rng(0)
    same = np.r_[np.ones(300, bool), np.zeros(300, bool)]
    scores = np.where(same, rng.normal(0.8, 0.05, 600), rng.normal(0.5, 0.05, 600))
    folds = stratified_folds(same, 10)
    assert sorted(np.bincount(folds)) == [60] * 10
    r = verification(scores, same, folds)
    assert r.accuracy > 0.98 and len(r.fold_thresholds) == 10
    assert all(0.55 < t < 0.75 for t in r.fold_thresholds)
    assert 0 <= r.eer < 0.05
    # A threshold picked on all data can only be as good or better than cross-validated accuracy.
    t = best_accuracy_threshold(scores, same)
    assert np.mean((scores >= t) == same) >= r.accuracy - 1e-9
    with pytest.raises(MetricError):
        verification(scores, same, np.zeros(600))


def test_open_set_search_and_fnir_at_fpir():
    gallery = ["a", "b"]
    # probes: a (rank-1 right), b (rank-1 wrong: looks like a), stranger x, and a probe with no face.
    scores = np.array([[0.9, 0.1], [0.7, 0.6], [0.5, 0.4], [0.0, 0.0]])
    labels = ["a", "b", "x", "a"]
    valid = np.array([True, True, True, False])
    top, arg, mate, rank = search(scores, gallery, labels, valid)
    assert list(arg) == [0, 0, 0, -1] and top[3] == -np.inf
    assert list(rank) == [1, 2, 0, 0] and mate[1] == pytest.approx(0.6)
    mated = [0, 1, 3]
    res = SearchResults(top[mated], np.array([True, False, False]), mate[mated], top[[2]], rank[mated])
    r = identification(res, 2, (0.5, 0.0))
    assert r.rank1 == pytest.approx(1 / 3) and r.mated_fta == 1
    at0 = fnir_at_fpir(res, 0.0)
    assert at0.threshold > 0.5 and at0.value == pytest.approx(2 / 3)


def test_search_ranks_by_rank_scores_but_decides_on_scores():
    dec = np.array([[1.0, 5.0]])
    cos = np.array([[0.9, 0.8]])
    top, arg, _mate, rank = search(dec, ["a", "b"], ["a"], np.array([True]), cos)
    assert arg[0] == 0 and top[0] == 1.0 and rank[0] == 1
