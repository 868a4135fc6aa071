"""The parity gate's verdicts on small fakes: a candidate failing a limit by one item is refused."""

from __future__ import annotations

import numpy as np
import pytest

from metrosight.recognize.parity import (
    MAX_DECISION_CHANGES,
    MIN_COSINE,
    DetectorParity,
    embedder_parity,
    pair_cosines,
    row_cosines,
)


def _descriptors(n: int = 500, dim: int = 128, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def _turned(v: np.ndarray, cosine: float, seed: int = 1) -> np.ndarray:
    """``v`` turned to exactly ``cosine`` with itself (same norm)."""
    u = v / np.linalg.norm(v)
    r = np.random.default_rng(seed).normal(size=v.shape)
    r -= (r @ u) * u
    r /= np.linalg.norm(r)
    return (np.linalg.norm(v) * (cosine * u + np.sqrt(1 - cosine**2) * r)).astype(np.float32)


def test_the_float_model_against_itself_passes_with_cosine_one() -> None:
    ref = _descriptors()
    scores = np.linspace(0.5, 1.0, 600)
    p = embedder_parity(ref, ref.copy(), scores, scores.copy(), 0.928)
    assert p.passed and p.min_cosine == pytest.approx(1.0) and p.below == 0 and p.decision_changes == 0
    assert "min cosine 1.0000 ≥ 0.999" in p.summary()


def test_one_face_below_the_cosine_limit_refuses_the_candidate() -> None:
    ref = _descriptors()
    cand = ref.copy()
    cand[137] = _turned(ref[137], 0.9985)
    scores = np.linspace(0.5, 1.0, 600)
    p = embedder_parity(ref, cand, scores, scores, 0.928)
    assert not p.passed and p.below == 1
    assert p.min_cosine == pytest.approx(0.9985, abs=1e-6)
    assert "min cosine 0.9985 < 0.999 on 1 of 500 descriptors" in p.summary()
    ok = ref.copy()
    ok[137] = _turned(ref[137], MIN_COSINE + 1e-5)  # just inside the limit
    assert embedder_parity(ref, ok, scores, scores, 0.928).passed


def test_decision_changes_above_the_share_refuse_the_candidate() -> None:
    ref = _descriptors()
    before = np.full(600, 0.5)
    before[:10] = 0.95  # ten pairs called the same person
    one = before.copy()
    one[0] = 0.92  # one pair crosses the threshold: 1/600 = 0.17% ≤ 0.2%
    assert embedder_parity(ref, ref, before, one, 0.928).passed
    two = one.copy()
    two[50] = 0.93  # a second one, the other way: 2/600 = 0.33% > 0.2%
    p = embedder_parity(ref, ref, before, two, 0.928)
    assert not p.passed and p.decision_changes == 2 and p.change_rate > MAX_DECISION_CHANGES
    assert "decisions changed on 2 of 600 pairs (0.33% > 0.2%)" in p.summary()


def test_cosines_of_rows_and_pairs() -> None:
    a = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
    b = np.array([[2.0, 0.0], [1.0, 0.0]], np.float32)
    assert row_cosines(a, b).tolist() == pytest.approx([1.0, 0.0])
    assert pair_cosines(a, np.array([[0, 1], [0, 0]])).tolist() == pytest.approx([0.0, 1.0])
    with pytest.raises(ValueError, match="shape"):
        row_cosines(a, b[:1])


def test_a_detector_within_half_a_point_of_recall_passes_and_one_face_more_lost_fails() -> None:
    assert DetectorParity(1000, 900, 895).passed  # 0.5 points exactly
    lost = DetectorParity(1000, 900, 894)  # 0.6 points
    assert not lost.passed
    assert "drop 0.60 points > 0.5" in lost.summary()
    assert DetectorParity(1000, 900, 910).passed  # finds more
    assert not DetectorParity(0, 0, 0).passed
