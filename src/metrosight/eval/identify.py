"""Open-set 1:N evaluation of a scoring method over encoded photos.

A *method* is how templates and probes become scores:
- ``euclidean``: the face_recognition package's rule — negative Euclidean distance of raw descriptors to the
  nearest enrolment photo of each person (higher = more similar, so every measure reads the same way);
- ``cosine``: metrosight's raw rule — cosine of the probe to each person's template (the unit mean of the unit
  enrolment descriptors);
- ``asnorm``: ``cosine`` followed by cohort AS-norm (:mod:`metrosight.recognize.normalize`) against a background
  set that shares no photo with the gallery or the probes.

With ``flip`` the descriptor of each photo is the unit mean of the photo's and its mirror image's descriptors, for
enrolment photos and probes alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from metrosight.eval.datasets import OpenSetSplit
from metrosight.eval.extract import FaceRecord
from metrosight.eval.metrics import (
    IdentificationResult,
    MetricError,
    SearchResults,
    identification,
    rate_at,
    search,
    threshold_at_rate,
)
from metrosight.recognize.normalize import Cohort, CohortNorm

Scoring = Literal["euclidean", "cosine", "asnorm"]
FPIRS = (0.1, 0.01, 0.003)
#: probes scored at a time: memory holds ``PROBE_BLOCK × gallery`` scores, not ``probes × gallery``
PROBE_BLOCK = 1024


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def record_vector(rec: FaceRecord, flip: bool) -> np.ndarray:
    """The descriptor used for a photo: raw, or the unit mean with its mirror image's (``flip``)."""
    if rec.descriptor is None:
        raise MetricError(f"{rec.path}: no descriptor")
    if flip and rec.flipped is not None:
        return unit(unit(rec.descriptor) + unit(rec.flipped))
    return np.asarray(rec.descriptor, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """One way of scoring, named for tables."""

    name: str
    scoring: Scoring
    flip: bool = False
    cohort: Cohort | None = None
    norm_mode: str = "s"
    #: metrosight's margin rule (cosine units): a search whose best person does not beat the next by this much
    #: returns no candidate (a miss when mated); rank-1 is unaffected.
    margin: float = 0.0


@dataclass(slots=True)
class OpenSetRun:
    """Everything one method's open-set evaluation produced.

    Attributes:
        method: the method.
        result: the summary (rank-1, FNIR at FPIR).
        searches: per-search scores (for DET curves).
        heldout: FNIR/FPIR with each threshold chosen on half of the non-mated *people* and measured on the
            other half (averaged over the two halves): the honest operational figure.
        by_gallery_size: FPIR at a fixed threshold (the one giving FPIR 0.01 on the full gallery) for random
            sub-galleries of several sizes: how the meaning of a threshold drifts with watchlist size.
    """

    method: MethodSpec
    result: IdentificationResult
    searches: SearchResults
    heldout: list[dict[str, float]] = field(default_factory=list)
    by_gallery_size: list[dict[str, float]] = field(default_factory=list)


def _templates(
    split: OpenSetSplit, recs: dict[Path, FaceRecord], m: MethodSpec
) -> tuple[list[str], list[list[np.ndarray]]]:
    labels = list(split.gallery)
    vecs = [[record_vector(recs[p], m.flip) for p in split.gallery[g] if recs[p].ok] for g in labels]
    return labels, vecs


def score_matrices(
    probes: np.ndarray, gallery: Sequence[Sequence[np.ndarray]], m: MethodSpec
) -> tuple[np.ndarray, np.ndarray]:
    """``(decision, rank)`` score matrices ``(P, N)`` of probes ``(P, 128)`` against N people's enrolment vectors
    (a person with none scores ``-inf``). The rank matrix picks the candidate: for ``asnorm`` it is the cosine (the
    identity is the most similar template, its acceptance is decided on the normalised score), otherwise the same
    as the decision matrix.
    """
    p = np.asarray(probes, dtype=np.float32)
    n = len(gallery)
    if m.scoring == "euclidean":
        out = np.full((len(p), n), -np.inf)
        for j, vs in enumerate(gallery):
            if vs:
                d = np.linalg.norm(p[:, None, :] - np.stack(vs)[None, :, :], axis=2)
                out[:, j] = -d.min(axis=1)
        return out, out
    has = np.array([len(vs) > 0 for vs in gallery], dtype=bool)
    t = np.stack([unit(unit(np.stack(vs)).mean(axis=0)) if vs else np.zeros(128, np.float32) for vs in gallery])
    cos = np.asarray(unit(p) @ t.T if n else np.zeros((len(p), 0), np.float32), dtype=np.float64)
    cos[:, ~has] = -np.inf
    if m.scoring != "asnorm":
        return cos, cos
    if m.cohort is None:
        raise MetricError(f"method {m.name!r} needs a cohort")
    dec = np.asarray(CohortNorm(m.cohort, t, m.norm_mode).normalize_many(p, np.where(has, cos, 0.0)), dtype=np.float64)
    dec[:, ~has] = -np.inf
    return dec, cos


def _searches(
    split: OpenSetSplit, recs: dict[Path, FaceRecord], m: MethodSpec, keep: list[str] | None = None
) -> SearchResults:
    labels, vecs = _templates(split, recs, m)
    if keep is not None:
        idx = [labels.index(k) for k in keep]
        labels, vecs = [labels[i] for i in idx], [vecs[i] for i in idx]
    kept = set(labels)
    mated = [(p, lab) for p, lab in split.mated if lab in kept]
    probes = mated + split.non_mated
    valid = np.array([recs[p].ok for p, _ in probes], dtype=bool)
    pv = (
        np.stack([record_vector(recs[p], m.flip) if recs[p].ok else np.zeros(128, np.float32) for p, _ in probes])
        if probes
        else np.zeros((0, 128), np.float32)
    )
    parts = []
    # A block of probes at a time: the score matrices are PROBE_BLOCK × gallery, whatever the number of probes.
    for b0 in range(0, len(probes), PROBE_BLOCK):
        blk = slice(b0, b0 + PROBE_BLOCK)
        s, rs = score_matrices(pv[blk], vecs, m)
        top, arg, mate, rank = search(s, labels, [lab for _, lab in probes[blk]], valid[blk], rs)
        if m.margin > 0 and rs.shape[1] > 1:
            # metrosight's margin rule: no candidate when the best person does not beat the next one by the margin.
            two = -np.partition(-rs, 1, axis=1)[:, :2]
            top = np.where(two[:, 0] - two[:, 1] < m.margin, -np.inf, top)
        parts.append((top, arg, mate, rank))
    top, arg, mate, rank = (
        (np.concatenate([x[i] for x in parts]) for i in range(4))
        if parts
        else (np.zeros(0), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64))
    )
    k = len(mated)
    names = np.array(labels + [""], dtype=object)
    right = names[np.where(arg[:k] >= 0, arg[:k], len(labels))] == np.array([lab for _, lab in mated], dtype=object)
    return SearchResults(top[:k], right & valid[:k], mate[:k], top[k:], rank[:k])


def heldout_thresholds(
    res: SearchResults, non_mated_people: Sequence[str], fpirs: Sequence[float] = FPIRS
) -> list[dict[str, float]]:
    """FNIR and FPIR with thresholds chosen on other people: the non-mated people are split in two halves (by
    name order, alternating); each half's threshold is applied to the other half's searches and all mated searches.

    Returns:
        One row a target FPIR: ``target``, mean ``fpir`` measured on the held-out halves, mean ``fnir``.
    """
    people = sorted(set(non_mated_people))
    half = {p: i % 2 for i, p in enumerate(people)}
    fold = np.array([half[p] for p in non_mated_people])
    rows = []
    for x in fpirs:
        fp, fn = [], []
        for k in (0, 1):
            t = threshold_at_rate(res.non_mated_top[fold != k], x)
            fp.append(rate_at(res.non_mated_top[fold == k], t))
            fn.append(1.0 - rate_at(res.hit_scores, t))
        rows.append({"target": x, "fpir": float(np.mean(fp)), "fnir": float(np.mean(fn))})
    return rows


def fpir_by_gallery_size(
    split: OpenSetSplit,
    recs: dict[Path, FaceRecord],
    m: MethodSpec,
    threshold: float,
    sizes: Sequence[int] = (10, 25, 50, 100),
    repeats: int = 5,
    seed: int = 0,
) -> list[dict[str, float]]:
    """FPIR at a fixed threshold for random sub-galleries of several sizes (mean over ``repeats`` draws)."""
    rng = np.random.default_rng(seed)
    labels = list(split.gallery)
    rows = []
    for n in [s for s in sizes if s < len(labels)] + [len(labels)]:
        vals = []
        for _ in range(repeats if n < len(labels) else 1):
            keep = sorted(rng.choice(len(labels), size=n, replace=False).tolist())
            r = _searches(split, recs, m, [labels[i] for i in keep])
            vals.append(rate_at(r.non_mated_top, threshold))
        rows.append({"gallery": float(n), "fpir": float(np.mean(vals))})
    return rows


def evaluate_open_set(
    split: OpenSetSplit,
    records: Sequence[FaceRecord],
    method: MethodSpec,
    fpirs: Sequence[float] = FPIRS,
    size_sweep: bool = True,
) -> OpenSetRun:
    """Search every probe of ``split`` with ``method`` and summarise.

    Args:
        split: gallery, mated and non-mated probes.
        records: encoded photos (at least every photo of the split).
        method: how to score.
        fpirs: target FPIRs.
        size_sweep: also measure FPIR against gallery size at a fixed threshold.

    Raises:
        MetricError: a photo of the split was not encoded, or there are no mated probes.
    """
    recs = {r.path: r for r in records}
    missing = [p for p, _ in split.all_items() if p not in recs]
    if missing:
        raise MetricError(f"{len(missing)} photo(s) of the split were not encoded, e.g. {missing[0]}")
    res = _searches(split, recs, method)
    summary = identification(res, len(split.gallery), tuple(fpirs))
    run = OpenSetRun(method, summary, res)
    if split.non_mated:
        run.heldout = heldout_thresholds(res, [lab for _, lab in split.non_mated], fpirs)
        if size_sweep:
            t = threshold_at_rate(res.non_mated_top, 0.01)
            run.by_gallery_size = fpir_by_gallery_size(split, recs, method, t)
    return run
