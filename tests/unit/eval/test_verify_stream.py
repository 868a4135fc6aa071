"""All-pairs verification is computed a block of rows at a time: the figures equal the all-at-once computation."""

from pathlib import Path

import numpy as np
import pytest

from metrosight.eval import verify
from metrosight.eval.extract import FaceRecord
from metrosight.eval.identify import MethodSpec, record_vector
from metrosight.eval.metrics import tar_at_far
from metrosight.recognize.gallery import l2_normalize
from metrosight.recognize.normalize import Cohort


def _records(n_people: int = 40, per: int = 4, seed: int = 0) -> list[FaceRecord]:
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n_people):
        c = l2_normalize(rng.normal(size=128))
        for k in range(per):
            d = (c + 0.08 * rng.normal(size=128)).astype(np.float32)
            f = (c + 0.08 * rng.normal(size=128)).astype(np.float32)
            recs.append(FaceRecord(Path(f"/x/p{i}_{k}.jpg"), f"p{i}", d, f))
    recs.append(FaceRecord(Path("/x/none.jpg"), "p0", None, problem="no face found"))
    recs.append(recs[0])  # a photo in several pairs counts once
    return recs


def _brute(recs, m, fars):
    good = list({r.path: r for r in recs if r.ok}.values())
    v = np.stack([record_vector(r, m.flip) for r in good])
    lab = np.array([r.label for r in good])
    iu = np.triu_indices(len(good), k=1)
    s = verify.pair_scores(v[iu[0]], v[iu[1]], m)
    same = lab[iu[0]] == lab[iu[1]]
    return [tar_at_far(s[same], s[~same], far) for far in fars], int(same.sum()), int((~same).sum())


@pytest.mark.parametrize("scoring", ["euclidean", "cosine", "asnorm"])
def test_blockwise_all_pairs_equal_the_all_at_once_figures(monkeypatch, scoring):
    recs = _records()
    cohort = Cohort.build(np.random.default_rng(5).normal(size=(60, 128)), top_k=10)
    m = MethodSpec("m", scoring, flip=scoring != "euclidean", cohort=cohort if scoring == "asnorm" else None)
    fars = (1e-1, 1e-2, 1e-3)
    monkeypatch.setattr(verify, "BLOCK_ROWS", 7)  # many blocks, the last one short
    rows, (far, tar), ng, ni = verify.all_pairs_roc(recs, m, fars)
    want, wg, wi = _brute(recs, m, fars)
    assert (ng, ni) == (wg, wi) == (40 * 6, 160 * 159 // 2 - 240)
    for (f, t, th), w in zip(rows, want, strict=True):
        assert f == w.target
        assert t == pytest.approx(w.value, abs=1e-12)
        assert th == pytest.approx(w.threshold, abs=1e-6)
    assert np.all(np.diff(far) >= 0) and far[-1] == pytest.approx(1.0) and tar.max() == pytest.approx(1.0)


def test_all_pairs_memory_does_not_grow_with_the_number_of_pairs():
    """3,000 photos are 4.5 million pairs: scored all at once that is ≈ 4.6 GB of pair rows; in blocks the
    allocations stay a few tens of MB (numpy reports its buffers to tracemalloc)."""
    import tracemalloc

    rng = np.random.default_rng(1)
    base = l2_normalize(rng.normal(size=(1000, 128))).astype(np.float32)
    recs = [
        FaceRecord(Path(f"/x/{i}_{k}.jpg"), f"p{i}", base[i] + 0.01 * k, None) for k in range(3) for i in range(1000)
    ]
    tracemalloc.start()
    try:
        rows, _curve, ng, ni = verify.all_pairs_roc(recs, MethodSpec("c", "cosine"), (1e-3, 1e-4))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ng == 3000 and ni == 3000 * 2999 // 2 - 3000
    assert rows[0][1] == 1.0  # each person's photos are near-identical: all genuine pairs accepted
    assert peak < 300e6, f"peak {peak / 1e6:.0f} MB"
