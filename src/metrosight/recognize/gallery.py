"""The gallery of active watchlist templates and the matcher over it.

Each enrolled entry has one template: the L2-normalised mean of its L2-normalised enrolment descriptors.
Matching is cosine similarity of a probe against the normalised template matrix (one matrix product), optionally
followed by cohort normalisation of the best candidate's score (:mod:`metrosight.recognize.normalize`).

Entries are grouped by *person*: the same person on two watchlists is one candidate (their best entry's score),
never two look-alikes that cancel out under the ambiguity rule, and a match names every entry of the person.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from metrosight.core.types import Category, EntryRef, Match, Rival
from metrosight.recognize.embedder import EmbedderError
from metrosight.recognize.normalize import Cohort, CohortNorm
from metrosight.recognize.operating import OperatingPoint

DIM = 128  # dlib's descriptor size: the shape of an empty gallery's matrix (other models' galleries take theirs)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit length (``(N, D)`` or ``(D,)``; zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def fuse(descriptors: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """One unit template from several descriptors ``(N, 128)``: the (weighted) mean of their unit vectors."""
    unit = l2_normalize(np.atleast_2d(descriptors))
    w = np.ones(len(unit), dtype=np.float32) if weights is None else np.asarray(weights, dtype=np.float32)
    return l2_normalize((unit * w[:, None]).sum(axis=0))


class ModelMismatch(EmbedderError):
    """The watchlists hold templates of a descriptor model other than the configured embedder's: they cannot be
    compared, so matching and enrolment refuse to start; the message says what to do."""


def check_gallery_model(models: dict[str, int], model_id: str) -> None:
    """Refuse a gallery with templates of another descriptor model than ``model_id``.

    Args:
        models: templates of pending or active entries per model id (``Store.template_models``).
        model_id: the configured embedder's.

    Raises:
        ModelMismatch: naming the models and what to do.
    """
    other = {m: n for m, n in models.items() if m != model_id}
    if other:
        held = ", ".join(f"{n} enrolled with {m!r}" for m, n in sorted(other.items()))
        raise ModelMismatch(
            f"the watchlists hold templates of another descriptor model ({held}); the configured embedder computes "
            f"{model_id!r} and cannot be compared with them: configure the embedder they were enrolled with "
            "(recognition.embedder), or delete those entries and enrol them again under the new model"
        )


@dataclass(frozen=True, slots=True)
class GalleryEntry:
    """One matchable entry: who, on which list, their unit template ``(128,)``, and the person it belongs to
    (``person_id`` ``None``: the entry is a person of its own)."""

    subject_id: int
    subject_name: str
    watchlist: str
    category: Category
    template: np.ndarray
    person_id: int | None = None
    person_name: str | None = None
    reference: str | None = None

    @property
    def person_key(self) -> int:
        """The person's id, or minus the entry id for an entry without one (never equal to a person id)."""
        return self.person_id if self.person_id is not None else -self.subject_id


class Gallery:
    """Active templates as one ``(N, 128)`` float32 matrix of unit rows."""

    def __init__(self, entries: list[GalleryEntry]) -> None:
        self.entries = list(entries)
        self.matrix = (
            np.stack([l2_normalize(e.template) for e in self.entries]).astype(np.float32)
            if self.entries
            else np.zeros((0, DIM), dtype=np.float32)
        )

        self.person_keys = np.array([e.person_key for e in self.entries], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def persons(self) -> int:
        """How many different persons the entries belong to."""
        return len(set(self.person_keys.tolist()))

    def scores(self, probe: np.ndarray) -> np.ndarray:
        """Cosine similarity of a probe ``(D,)`` to every entry, shape ``(N,)`` (``(0,)`` for an empty gallery,
        whatever the probe's size)."""
        if not self.entries:
            return np.zeros(0, dtype=np.float32)
        return self.matrix @ l2_normalize(probe)


class Matcher:
    """Decides whether a probe is someone on the gallery.

    The candidate is the *person* with the highest cosine similarity (the best of their entries). Without a cohort the
    decision score is that cosine; with one it is the candidate's AS-norm score against the cohort
    (:class:`~metrosight.recognize.normalize.CohortNorm`), which makes one threshold mean about the same false-match
    rate for every face. The identity (and so rank-1) is always that of the best cosine.

    The ambiguity rule: a probe is *ambiguous* when another person also reaches their own threshold and their cosine
    is within ``min_margin`` of the best. The match is then still returned, with those persons as ``rivals``, so that
    the operator sees every candidate (nothing is withheld). Entries of one person (e.g. the same person on two
    lists) never compete with each other. (The earlier rule withheld any match whose next-best different entry was
    within the margin, above the threshold or not: about 20% of genuine matches on LFW.)

    Args:
        gallery: active templates.
        threshold: minimum decision score for a match (cosine, or AS-norm units with a cohort); the threshold of
            every entry unless ``thresholds`` is given.
        min_margin: ambiguity margin (cosine), see above.
        cohort: background faces for score normalisation (``None``: raw cosine).
        thresholds: per-entry thresholds ``(N,)`` (e.g. from a per-list target FPIR); a person's threshold is the
            lowest of their entries'.
        operating: how the threshold was reached (:class:`~metrosight.recognize.operating.OperatingPoint`), for
            status and reports.
    """

    def __init__(
        self,
        gallery: Gallery,
        threshold: float,
        min_margin: float = 0.0,
        cohort: Cohort | None = None,
        thresholds: np.ndarray | None = None,
        operating: OperatingPoint | None = None,
    ) -> None:
        self.gallery = gallery
        self.threshold = threshold
        self.min_margin = min_margin
        self.cohort = cohort
        self.operating = operating
        self._norm = CohortNorm(cohort, gallery.matrix) if cohort is not None and len(gallery) else None
        if thresholds is None:
            thresholds = np.full(len(gallery), threshold, dtype=np.float64)
        thresholds = np.asarray(thresholds, dtype=np.float64)
        if thresholds.shape != (len(gallery),):
            raise ValueError(f"thresholds must have one value per entry ({len(gallery)}), got {thresholds.shape}")
        # a person's threshold: the lowest of their entries' (a person on a looser list is a candidate there)
        per_person: dict[int, float] = {}
        for key, t in zip(gallery.person_keys.tolist(), thresholds.tolist(), strict=True):
            per_person[key] = min(t, per_person.get(key, np.inf))
        self.thresholds = np.array([per_person[k] for k in gallery.person_keys.tolist()], dtype=np.float64)

    def threshold_of(self, i: int) -> float:
        """The threshold of entry ``i``'s person."""
        return float(self.thresholds[i])

    @property
    def scoring(self) -> str:
        """``"cohort"`` (AS-norm) or ``"cosine"``."""
        return "cohort" if self.cohort is not None else "cosine"

    def decision_scores(self, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(cosines, decision scores)`` of a probe ``(128,)`` against every entry, each ``(N,)``."""
        cos = self.gallery.scores(probe)
        if self._norm is None:
            return cos, cos
        return cos, self._norm.normalize(probe, cos)

    def best(self, probe: np.ndarray) -> Match | None:
        """The most similar person, whatever the score (``None`` for an empty gallery)."""
        if len(self.gallery) == 0:
            return None
        cos, dec = self.decision_scores(probe)
        i = int(np.argmax(cos))
        return self._as_match(i, float(dec[i]), float(cos[i]), cos)

    def match(self, probe: np.ndarray) -> Match | None:
        """The most similar person if they reach their threshold, else ``None``; other persons who also reach theirs
        within ``min_margin`` (cosine) of the best are named in the match's ``rivals`` (an ambiguous match)."""
        if len(self.gallery) == 0:
            return None
        cos, dec = self.decision_scores(probe)
        i = int(np.argmax(cos))
        if dec[i] < self.thresholds[i]:
            return None
        keys = self.gallery.person_keys
        rivals: dict[int, int] = {}  # person key -> their best entry
        near = np.flatnonzero((keys != keys[i]) & (dec >= self.thresholds) & (float(cos[i]) - cos < self.min_margin))
        for j in sorted(near.tolist(), key=lambda j: -float(cos[j])):
            rivals.setdefault(int(keys[j]), j)
        m = self._as_match(i, float(dec[i]), float(cos[i]), cos)
        if not rivals:
            return m
        rv = tuple(
            Rival(e.person_id, e.person_name or e.subject_name, e.watchlist, round(float(dec[j]), 4))
            for e, j in ((self.gallery.entries[j], j) for j in rivals.values())
        )
        return replace(m, rivals=rv)

    def _as_match(self, i: int, score: float, cosine: float, cos: np.ndarray | None = None) -> Match:
        e = self.gallery.entries[i]
        distance = float(np.sqrt(max(0.0, 2.0 - 2.0 * cosine)))
        rows = [int(j) for j in np.flatnonzero(self.gallery.person_keys == self.gallery.person_keys[i])]
        if cos is not None:
            rows.sort(key=lambda j: -float(cos[j]))
        rows = [i] + [j for j in rows if j != i]
        entries = tuple(
            EntryRef(g.subject_id, g.subject_name, g.watchlist, g.category, g.reference)
            for g in (self.gallery.entries[j] for j in rows)
        )
        return Match(
            e.subject_id,
            e.subject_name,
            e.watchlist,
            e.category,
            score,
            distance,
            e.person_id,
            e.person_name or e.subject_name,
            entries,
        )
