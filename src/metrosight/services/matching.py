"""Matchers and their operating points: which threshold gives the configured false-positive identification rate
for the gallery in force (per list where configured), recomputed whenever the gallery changes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np

from metrosight.recognize.gallery import Gallery, Matcher
from metrosight.recognize.normalize import COHORT_FILE, Cohort, CohortError
from metrosight.recognize.operating import (
    FLOOR_COSINE,
    ImpostorSample,
    OperatingPoint,
    gallery_impostors,
    operating_point,
    per_comparison_fmr,
)
from metrosight.services.calibration import cohort_path, load_nonmated, nonmated_path
from metrosight.services.installation import Installation
from metrosight.services.models import Models


class Matching:
    """Builds matchers for one installation; keeps the impostor scores of the last gallery and the calibration
    faces (re-read when their file changes). Galleries are read under the embedder's descriptor model."""

    def __init__(self, installation: Installation, models: Models) -> None:
        self.installation = installation
        self.models = models
        self._impostor_cache: dict[object, ImpostorSample] = {}
        self._nonmated: tuple[object, np.ndarray | None] | None = None

    def matcher(self, camera_id: str | None = None) -> Matcher:
        """The matcher over the entries active now and in scope for ``camera_id`` (``None``, a photo: only entries
        without a camera or line scope)."""
        inst = self.installation
        line = inst.camera_line(camera_id)
        return self.matcher_for(Gallery(inst.store.gallery.active(self.models.model_id, camera_id, line=line)))

    def matcher_for(self, gallery: Gallery) -> Matcher:
        """A matcher over ``gallery`` with the threshold that gives ``recognition.target_fpir`` for its persons (per
        list where ``watchlists.<name>.target_fpir`` says so), the ambiguity margin and the score normalisation.

        The threshold is recomputed for every gallery (enrolment, approval, revocation and expiry all change it) from
        the impostor pairs of the gallery and the calibration faces (:mod:`metrosight.recognize.operating`). With
        ``normalization: cohort`` the configured ``match_threshold`` (AS-norm units) is used as it is.

        Raises:
            CohortError: normalization is ``cohort`` and the cohort file is missing, unreadable (names the file) or
            of another descriptor model.
        """
        rec = self.installation.settings.recognition
        if rec.normalization == "cohort":
            cohort = Cohort.load(cohort_path(self.installation.home.root))
            model = self.models.model_id
            if cohort.model != model:
                raise CohortError(
                    f"the cohort ({COHORT_FILE}) was built with descriptor model {cohort.model!r}, the configured "
                    f"embedder computes {model!r}: build it again with `metrosight calibrate --cohort DIR`"
                )
            return Matcher(gallery, rec.match_threshold, rec.min_margin, cohort)
        points = self.operating_points(gallery)
        default = points[rec.target_fpir]
        thresholds = np.array([points[self.list_target(e.watchlist)].threshold for e in gallery.entries])
        return Matcher(gallery, default.threshold, rec.min_margin, None, thresholds, default)

    def list_target(self, watchlist: str) -> float:
        """The target FPIR of ``watchlist``: ``watchlists.<name>.target_fpir``, else ``recognition.target_fpir``."""
        settings = self.installation.settings
        wl = settings.watchlists.get(watchlist)
        return wl.target_fpir if wl is not None and wl.target_fpir is not None else settings.recognition.target_fpir

    def operating_points(self, gallery: Gallery) -> dict[float, OperatingPoint]:
        """The operating point of every target in use (the default and each list's) for ``gallery``."""
        rec = self.installation.settings.recognition
        sample = self._impostors(gallery)
        floor = max(FLOOR_COSINE, rec.match_threshold)
        targets = {rec.target_fpir} | {self.list_target(e.watchlist) for e in gallery.entries}
        return {t: operating_point(t, gallery.persons, sample, floor) for t in targets}

    def _impostors(self, gallery: Gallery) -> ImpostorSample:
        """Impostor scores of ``gallery`` (cached per gallery: a camera's matcher is rebuilt on every change)."""
        probes = self.calibration_faces()
        key = (
            tuple(e.subject_id for e in gallery.entries),
            gallery.person_keys.tobytes(),
            None if probes is None else (len(probes), float(probes.sum())),
        )
        hit = self._impostor_cache.get(key)
        if hit is None:
            hit = gallery_impostors(gallery.matrix, gallery.person_keys, probes)
            self._impostor_cache = {key: hit}
        return hit

    def calibration_faces(self) -> np.ndarray | None:
        """Unit descriptors ``(F, 128)`` of the operator's calibration faces (people on no list), stored by
        ``metrosight calibrate --non-mated`` in ``<home>/calibration/nonmated.npz``; ``None`` when there are none."""
        root = self.installation.home.root
        try:
            st = nonmated_path(root).stat()
            stamp: object = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if self._nonmated is None or self._nonmated[0] != stamp:
            self._nonmated = (stamp, load_nonmated(root, self.models.model_id) if stamp is not None else None)
        return self._nonmated[1]

    def searches_per_day(self, live_tracks: int = 0, live_seconds: float = 0.0, days: float = 7.0) -> float | None:
        """Watchlist searches a day (one per face track): the larger of two rates — the tracks of the runs finished
        in the last ``days`` days over the time since the earliest of them started, and ``live_tracks`` seen by
        running cameras over ``live_seconds`` (each over at least an hour); ``None`` before any track was counted."""
        now = self.installation.clock.now()
        n, first = self.installation.store.runs.tracks_since(now - timedelta(days=days))
        rates = []
        if n and first is not None:
            rates.append(n * 86400.0 / max((now - first).total_seconds(), 3600.0))
        if live_tracks and live_seconds > 0:
            rates.append(live_tracks * 86400.0 / max(live_seconds, 3600.0))
        return max(rates) if rates else None

    def operating_status(
        self, searches_per_day: float | None = None, live_tracks: int = 0, live_seconds: float = 0.0
    ) -> dict[str, Any]:
        """The operating point now, over the persons active for photos and every camera without a scope.

        Returns:
            ``target_fpir``, ``persons``, ``threshold`` (cosine, or AS-norm with a cohort), ``method``,
            ``fpir_per_search`` (the target over the whole gallery, each person at their loosest list's target),
            ``impostor_pairs``, ``fmr_target``, ``fpir_resolution`` (the smallest per-comparison rate the impostor
            pairs can observe), ``lists`` (each configured list's ``target_fpir`` and threshold),
            ``searches_per_day`` (``searches_per_day``, else :meth:`searches_per_day` of the live counts) and
            ``expected_false_candidates_per_day`` (``fpir_per_search`` × searches a day; ``None`` without a count).

        Raises:
            CohortError: normalization is ``cohort`` and the cohort file is missing or unreadable.
        """
        rec = self.installation.settings.recognition
        m = self.matcher_for(Gallery(self.installation.store.gallery.active(self.models.model_id)))
        op = m.operating
        spd = searches_per_day if searches_per_day is not None else self.searches_per_day(live_tracks, live_seconds)
        lists: dict[str, dict[str, float | None]] = {}
        if isinstance(op, OperatingPoint):
            fpir, lists = self._per_list(m.gallery)
            point: dict[str, Any] = {
                "method": op.method,
                "impostor_pairs": op.impostor_pairs,
                "fmr_target": op.fmr_target,
                "fpir_resolution": op.resolution,
                "floor": op.floor,
            }
        else:
            fpir = rec.target_fpir
            point = {
                "method": "fixed (cohort AS-norm)",
                "impostor_pairs": 0,
                "fmr_target": None,
                "fpir_resolution": None,
                "floor": rec.match_threshold,
            }
        return (
            {
                "target_fpir": rec.target_fpir,
                "fpir_per_search": round(fpir, 6),
                "persons": m.gallery.persons,
                "threshold": round(float(m.threshold), 4),
                "scoring": m.scoring,
            }
            | point
            | {
                "lists": lists,
                "searches_per_day": None if spd is None else round(spd, 1),
                "expected_false_candidates_per_day": None if spd is None else round(fpir * spd, 3),
            }
        )

    def _per_list(self, gallery: Gallery) -> tuple[float, dict[str, dict[str, float | None]]]:
        """The FPIR of one search over ``gallery`` (each person at their loosest list's target) and each list's
        target and threshold."""
        points = self.operating_points(gallery)
        per_person: dict[int, float] = {}
        for e in gallery.entries:
            per_person[e.person_key] = max(self.list_target(e.watchlist), per_person.get(e.person_key, 0.0))
        n = max(len(per_person), 1)
        fpir = (
            float(-np.expm1(sum(np.log1p(-per_comparison_fmr(t, n)) for t in per_person.values())))
            if per_person
            else self.installation.settings.recognition.target_fpir
        )
        lists: dict[str, dict[str, float | None]] = {}
        for name in sorted({e.watchlist for e in gallery.entries} | set(self.installation.settings.watchlists)):
            t = self.list_target(name)
            lists[name] = {"target_fpir": t, "threshold": points[t].threshold if t in points else None}
        return fpir, lists
