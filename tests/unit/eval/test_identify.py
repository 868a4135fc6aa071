from pathlib import Path

import numpy as np

from metrosight.eval.datasets import OpenSetSplit
from metrosight.eval.extract import FaceRecord
from metrosight.eval.identify import MethodSpec, evaluate_open_set
from metrosight.recognize.gallery import l2_normalize
from metrosight.recognize.normalize import Cohort


def _set(seed: int = 0):
    """Four enrolled people (two of them near look-alikes), three probes each, and six strangers."""
    rng = np.random.default_rng(seed)
    centres = l2_normalize(rng.normal(size=(4, 128)))
    centres[3] = l2_normalize(centres[2] + 0.15 * rng.normal(size=128) / np.sqrt(128) * 10)  # look-alike of 2
    recs, gallery, mated, non_mated = [], {}, [], []
    for i, c in enumerate(centres):
        person = f"p{i}"
        photos = [Path(f"/x/{person}_{k}.jpg") for k in range(4)]
        for p in photos:
            recs.append(FaceRecord(p, person, (c + 0.05 * rng.normal(size=128)).astype(np.float32)))
        gallery[person] = photos[:1]
        mated += [(p, person) for p in photos[1:]]
    for j in range(6):
        p = Path(f"/x/stranger_{j}.jpg")
        recs.append(FaceRecord(p, f"s{j}", l2_normalize(rng.normal(size=128)).astype(np.float32)))
        non_mated.append((p, f"s{j}"))
    missing = Path("/x/p0_noface.jpg")
    recs.append(FaceRecord(missing, "p0", None, problem="no face found"))
    mated.append((missing, "p0"))
    return OpenSetSplit(gallery, mated, non_mated), recs


def test_open_set_methods_agree_on_an_easy_set_and_count_failures_as_misses():
    split, recs = _set()
    cohort = Cohort.build(np.random.default_rng(9).normal(size=(50, 128)), top_k=10)
    for m in (
        MethodSpec("e", "euclidean"),
        MethodSpec("c", "cosine"),
        MethodSpec("a", "asnorm", cohort=cohort),
    ):
        run = evaluate_open_set(split, recs, m, fpirs=(0.5, 0.0))
        r = run.result
        assert r.n_gallery == 4 and r.n_mated == 13 and r.n_non_mated == 6 and r.mated_fta == 1
        assert r.rank1 == 12 / 13  # every face found is named right; the photo without a face is a miss
        assert r.at_fpir[1].achieved == 0.0 and r.at_fpir[1].value >= 1 / 13 - 1e-9
        assert len(run.heldout) == 2 and run.by_gallery_size[-1]["gallery"] == 4


def test_margin_rule_withholds_ambiguous_candidates_without_changing_rank1():
    split, recs = _set()
    plain = evaluate_open_set(split, recs, MethodSpec("c", "cosine"), fpirs=(1.0,), size_sweep=False)
    strict = evaluate_open_set(split, recs, MethodSpec("c", "cosine", margin=0.5), fpirs=(1.0,), size_sweep=False)
    assert strict.result.rank1 == plain.result.rank1
    # With a huge margin every mated search of the look-alikes (p2, p3) returns no candidate.
    withheld = np.sum(~np.isfinite(strict.searches.mated_top)) - np.sum(~np.isfinite(plain.searches.mated_top))
    assert withheld >= 6
    assert strict.result.at_fpir[0].value > plain.result.at_fpir[0].value


def test_searches_in_blocks_of_probes_give_the_same_figures(monkeypatch):
    from metrosight.eval import identify

    split, recs = _set()
    cohort = Cohort.build(np.random.default_rng(9).normal(size=(50, 128)), top_k=10)
    for m in (MethodSpec("e", "euclidean"), MethodSpec("a", "asnorm", True, cohort, margin=0.05)):
        whole = evaluate_open_set(split, recs, m, size_sweep=False)
        monkeypatch.setattr(identify, "PROBE_BLOCK", 4)
        blocks = evaluate_open_set(split, recs, m, size_sweep=False)
        monkeypatch.undo()
        for a, b in zip(
            (whole.searches.mated_top, whole.searches.mated_rank, whole.searches.non_mated_top),
            (blocks.searches.mated_top, blocks.searches.mated_rank, blocks.searches.non_mated_top),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)
