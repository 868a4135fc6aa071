"""The operating point: the match threshold that gives a target false-positive identification rate (FPIR).

Pure computation (no I/O). The operator states ``recognition.target_fpir``: the share of searches of people on no
list that may return a candidate (default 0.003). For a gallery of N persons, comparisons treated as independent,

    FPIR(t) = 1 − (1 − FMR(t))^N,   so the per-comparison target is   FMR* = 1 − (1 − target)^(1/N) ≈ target / N

and the threshold is the score whose impostor false-match rate is FMR*. (Real impostor scores of one search are
positively correlated — a face that looks like one enrolled person tends to look like others — which makes the
achieved FPIR at most this estimate: the approximation errs on the strict side.)

FMR(t) is estimated from *impostor scores the installation measures itself* (:class:`ImpostorSample`): its enrolled
persons' templates scored against each other (entries of one person excluded), and the faces of the operator's
calibration photos or video against every template. N persons give N(N−1)/2 pairs, so the resolution is about
1/pairs: 1,000 persons give 5·10⁵ pairs, while FMR* at N = 1,000 and target 0.003 is 3·10⁻⁶ — about 1.5 expected
exceedances, too few to read a quantile. So:

- *empirical* when the sample holds at least :data:`MIN_EXCEEDANCES` expected exceedances of FMR*: the threshold is
  the order statistic whose exceedance count has a one-sided 95% upper bound within FMR*·pairs;
- otherwise *tail*: a peaks-over-threshold fit of the upper tail. The top ``m`` scores (``m`` =
  :data:`TAIL_SHARE` of the pairs, between :data:`TAIL_MIN` and :data:`TAIL_MAX`) are taken as exceedances of the
  next score ``u``; above ``u`` the tail is a generalised Pareto distribution, FMR(t) = p_u·(1 + ξ(t−u)/σ)^(−1/ξ),
  with the shape ξ = :data:`TAIL_XI` fixed (cosines are bounded by 1, so their tail is lighter than exponential:
  ξ < 0) and ``p_u`` and σ replaced by their one-sided 95% upper confidence bounds (Poisson for the count,
  chi-square for the mean excess), which errs strict. The shape was chosen on the development fold by the
  achieved FPIR of repeated random galleries (thousands of non-mated searches each; ``bench/fpir_dev.py``): free
  fits give −0.13 … −0.17 but underestimate the extreme tail (FPIR 1.5× the target at 0.003); an exponential tail
  (ξ = 0) is ten times too strict (no false candidate in 21,000 searches at target 0.003); −0.10 gave 0.0030–0.0045
  at 0.003 and 0.005–0.007 at 0.01 there, and 0.0004–0.0021 at 0.003 and 0.004–0.006 at 0.01 on the held-out half;
- fewer than :data:`MIN_LOCAL_PAIRS` impostor pairs (a gallery of about 200 persons or fewer, without calibration
  faces): the *prior* tail measured offline on the development fold (:data:`PRIOR_TAIL`, fitted the same way on
  its 232,599 photo pairs of different people). A tail fitted on a few thousand pairs swings by more than the target
  itself (measured on the development fold: thresholds 0.97–0.99 for galleries of 60–110 persons, missing most
  genuine matches), so a small gallery borrows the development fold's tail until it has enough pairs of its own.

Whatever the estimate, the threshold is never below :data:`FLOOR_COSINE` (the development fold's cosine at a
per-comparison false-match rate of :data:`FLOOR_FMR`, measured by ``bench/fpir_dev.py``) nor below a configured
``recognition.match_threshold``. All constants here were chosen on the development fold only (att_faces, dlib_johns
and one half of the LFW fold-1 people; see ``bench/fpir_dev.py``) and measured on the other half.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# -- offline settings (bench/fpir_dev.py, development fold) ------------------------------------------------------
FLOOR_FMR = 1e-3
FLOOR_COSINE = 0.930  # dev-fold cosine (flip-fused dlib descriptors, photos jittered) at FMR 1e-3 (fpir_dev: 0.9302)
MIN_EXCEEDANCES = 100  # an empirical quantile needs this many expected exceedances of FMR*
MIN_LOCAL_PAIRS = 20_000  # fewer impostor pairs than this (≈ 200 persons, or calibration faces): the prior tail
TAIL_SHARE = 0.01  # exceedances used for the tail fit: this share of the pairs …
TAIL_MIN = 30  # … at least this many …
TAIL_MAX = 5000  # … at most this many
TAIL_XI = -0.10  # GPD shape of the tail, chosen on the development fold (bench/fpir_dev.py)
KEEP = TAIL_MAX + 1  # top scores an ImpostorSample keeps
CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class TailFit:
    """A generalised Pareto upper tail: for t ≥ ``u``, FMR(t) = ``p_u``·(1 + ``xi``·(t − ``u``)/``sigma``)^(−1/``xi``)
    (``xi`` = 0: the exponential tail ``p_u``·exp(−(t − ``u``)/``sigma``))."""

    u: float
    p_u: float
    sigma: float
    xi: float = 0.0

    def fmr_at(self, t: float) -> float:
        """Modelled share of impostor comparisons scoring ≥ ``t`` (``p_u`` below ``u``)."""
        if t < self.u:
            return float(self.p_u)
        z = (t - self.u) / self.sigma
        if abs(self.xi) < 1e-9:
            return float(self.p_u * math.exp(-z))
        base = 1.0 + self.xi * z
        return float(self.p_u * base ** (-1.0 / self.xi)) if base > 0 else 0.0

    def threshold(self, fmr: float) -> float:
        """The score with modelled FMR ``fmr`` (``u`` when ``fmr`` ≥ ``p_u``)."""
        if fmr >= self.p_u:
            return self.u
        r = self.p_u / fmr
        if abs(self.xi) < 1e-9:
            return float(self.u + self.sigma * math.log(r))
        return float(self.u + self.sigma / self.xi * (r**self.xi - 1.0))


# the development fold's impostor tail (cosine of photos embedded with ``photos.jitter``; 251,390 pairs of 712 faces of
# 269 people; bench/fpir_dev.py)
PRIOR_TAIL = TailFit(u=0.9134, p_u=0.01033, sigma=0.00861, xi=TAIL_XI)


@dataclass(frozen=True, slots=True)
class ImpostorSample:
    """The highest impostor scores of an installation and how many comparisons they were taken from.

    Attributes:
        top: the highest scores, descending, at most :data:`KEEP` of them.
        n: comparisons in all (``len(top) ≤ n``).
    """

    top: np.ndarray
    n: int

    @staticmethod
    def empty() -> ImpostorSample:
        return ImpostorSample(np.zeros(0, dtype=np.float64), 0)

    @staticmethod
    def of_scores(scores: np.ndarray, keep: int = KEEP) -> ImpostorSample:
        """From every impostor score ``(n,)``."""
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        k = min(keep, len(s))
        top = np.sort(np.partition(s, len(s) - k)[len(s) - k :])[::-1] if k else s[:0]
        return ImpostorSample(top, len(s))

    def merged(self, other: ImpostorSample, keep: int = KEEP) -> ImpostorSample:
        top = np.sort(np.concatenate([self.top, other.top]))[::-1][:keep]
        return ImpostorSample(top, self.n + other.n)


def gallery_impostors(
    templates: np.ndarray,
    person_keys: np.ndarray,
    probes: np.ndarray | None = None,
    keep: int = KEEP,
    block: int = 2048,
) -> ImpostorSample:
    """Impostor scores an installation can measure itself (cosine).

    Args:
        templates: unit templates ``(T, 128)`` of the active entries.
        person_keys: ``(T,)`` the person of each entry; two entries of one person are never an impostor pair
            (persons linked as the same person share a key).
        probes: unit descriptors ``(F, 128)`` of the operator's calibration faces (people on no list): every
            probe × template pair is an impostor pair.
        keep: highest scores kept.
        block: rows per block (memory ∝ block × T).

    Returns:
        The sample: template pairs of different persons (each unordered pair once) plus probe pairs.
    """
    t = np.asarray(templates, dtype=np.float32)
    keys = np.asarray(person_keys)
    tops: list[np.ndarray] = []
    n = 0
    for a in range(0, len(t), block):
        s = t[a : a + block] @ t.T  # (b, T)
        rows = np.arange(a, min(a + block, len(t)))[:, None]
        cols = np.arange(len(t))[None, :]
        mask = (cols > rows) & (keys[rows] != keys[cols])
        vals = s[mask]
        n += len(vals)
        if len(vals):
            k = min(keep, len(vals))
            tops.append(np.partition(vals, len(vals) - k)[len(vals) - k :])
    if probes is not None and len(probes) and len(t):
        p = np.asarray(probes, dtype=np.float32)
        for a in range(0, len(p), block):
            vals = (p[a : a + block] @ t.T).reshape(-1)
            n += len(vals)
            k = min(keep, len(vals))
            tops.append(np.partition(vals, len(vals) - k)[len(vals) - k :])
    if not tops:
        return ImpostorSample.empty()
    top = np.sort(np.concatenate(tops).astype(np.float64))[::-1][:keep]
    return ImpostorSample(top, n)


def per_comparison_fmr(target_fpir: float, persons: int) -> float:
    """FMR* = 1 − (1 − target)^(1/N): the per-comparison false-match rate giving ``target_fpir`` against ``persons``
    independent comparisons."""
    if not 0.0 < target_fpir < 1.0:
        raise ValueError(f"target FPIR must be between 0 and 1, got {target_fpir}")
    n = max(int(persons), 1)
    return float(-math.expm1(math.log1p(-target_fpir) / n))


def fpir_from_fmr(fmr: float, persons: int) -> float:
    """FPIR against ``persons`` independent comparisons of per-comparison rate ``fmr``."""
    fmr = min(max(fmr, 0.0), 1.0)
    return float(-math.expm1(max(int(persons), 0) * math.log1p(-fmr))) if fmr < 1.0 else 1.0


def _poisson_upper(count: int, confidence: float = CONFIDENCE) -> float:
    from scipy.stats import chi2  # SciPy: heavy, loaded on first use

    return float(chi2.ppf(confidence, 2 * (count + 1)) / 2.0)


def _conservative_count(expected: float, confidence: float = CONFIDENCE) -> int:
    """The most exceedances ``c`` whose one-sided upper confidence bound stays within ``expected``: the order
    statistic ``top[c]`` then has FMR ≤ the target with that confidence."""
    c = int(math.floor(expected))
    while c > 0 and _poisson_upper(c, confidence) > expected:
        c -= 1
    return c


def fit_tail(sample: ImpostorSample, confidence: float = CONFIDENCE, xi: float | None = None) -> TailFit:
    """The conservative generalised Pareto tail of ``sample`` with the shipped shape :data:`TAIL_XI` (or ``xi``; see
    the module docstring).

    Raises:
        ValueError: fewer than ``TAIL_MIN + 1`` scores.
    """
    from scipy.stats import chi2  # SciPy: heavy, loaded on first use

    xi = TAIL_XI if xi is None else xi
    m = int(min(TAIL_MAX, max(TAIL_MIN, round(TAIL_SHARE * sample.n)), len(sample.top) - 1))
    if m < TAIL_MIN:
        raise ValueError(f"a tail fit needs at least {TAIL_MIN + 1} impostor scores, got {len(sample.top)}")
    u = float(sample.top[m])
    excess = np.maximum(sample.top[:m] - u, 0.0)
    sigma_hat = _gpd_scale(excess, xi)
    sigma_up = 2.0 * m * sigma_hat / float(chi2.ppf(1.0 - confidence, 2 * m))
    p_up = min(1.0, _poisson_upper(m, confidence) / sample.n)
    return TailFit(u, p_up, sigma_up, xi)


def _gpd_scale(excess: np.ndarray, xi: float) -> float:
    """Maximum-likelihood scale of a generalised Pareto distribution of shape ``xi`` (fixed) for ``excess`` ≥ 0."""
    from scipy.optimize import minimize_scalar  # SciPy: heavy, loaded on first use

    mean = max(float(excess.mean()), 1e-9)
    if abs(xi) < 1e-9:
        return mean
    top = float(excess.max())
    lo = max(1e-9, -xi * top * (1.0 + 1e-9)) if xi < 0 else 1e-9  # support: 1 + xi·x/sigma > 0

    def nll(sigma: float) -> float:
        z = 1.0 + xi * excess / sigma
        if np.any(z <= 0):
            return np.inf
        return float(len(excess) * math.log(sigma) + (1.0 + 1.0 / xi) * np.log(z).sum())

    res = minimize_scalar(nll, bounds=(lo, max(lo * 10, mean * 20)), method="bounded")
    return float(res.x)


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """The threshold for a target FPIR and how it was reached.

    Attributes:
        threshold: the match threshold (cosine).
        target_fpir: the FPIR asked for (per search).
        persons: N, active persons the search runs against.
        fmr_target: FMR* per comparison.
        method: ``"empirical"``, ``"tail"``, ``"prior"`` (too few impostor pairs: the development fold's tail), or
            ``"floor"`` (an estimate fell below the shipped or configured floor).
        estimate: the estimate before the floor.
        floor: the floor applied.
        impostor_pairs: impostor comparisons measured.
        resolution: the smallest FMR the sample can observe (1/pairs; 1 when none).
    """

    threshold: float
    target_fpir: float
    persons: int
    fmr_target: float
    method: str
    estimate: float
    floor: float
    impostor_pairs: int
    resolution: float

    def expected_false_candidates(self, searches: float) -> float:
        """Searches of people on no list times the target FPIR: the expected false candidates."""
        return float(searches) * self.target_fpir

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__}


def operating_point(
    target_fpir: float,
    persons: int,
    sample: ImpostorSample,
    floor: float = FLOOR_COSINE,
    prior: TailFit = PRIOR_TAIL,
) -> OperatingPoint:
    """The threshold giving ``target_fpir`` against ``persons`` persons, never below ``floor``.

    Raises:
        ValueError: ``target_fpir`` outside (0, 1).
    """
    fmr = per_comparison_fmr(target_fpir, persons)
    if sample.n >= MIN_LOCAL_PAIRS and len(sample.top) > TAIL_MIN:
        expected = fmr * sample.n
        k = _conservative_count(expected)
        if expected >= MIN_EXCEEDANCES and k < len(sample.top):
            estimate, method = float(sample.top[k]), "empirical"
        else:
            estimate, method = fit_tail(sample).threshold(fmr), "tail"
    else:
        estimate, method = prior.threshold(fmr), "prior"
    threshold = max(estimate, floor)
    if threshold > estimate:
        method = "floor"
    threshold = min(threshold, 0.9999)
    return OperatingPoint(
        threshold=float(threshold),
        target_fpir=float(target_fpir),
        persons=int(persons),
        fmr_target=fmr,
        method=method,
        estimate=float(estimate),
        floor=float(floor),
        impostor_pairs=int(sample.n),
        resolution=1.0 / sample.n if sample.n else 1.0,
    )
