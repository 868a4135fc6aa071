"""The composition root: builds stages from the configuration and wires them to the store and the bus.

The CLI (and later the API) call the functions here; they hold no logic of their own beyond wiring and I/O.
"""

from __future__ import annotations

import logging
import os
import shlex
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metrosight.bus.inproc import TOPIC_ALERT_UPDATES, TOPIC_ALERTS, TOPIC_CAMERA_STATE, InProcessBus
from metrosight.bus.payloads import AlertUpdateV1, AlertV1, CameraStateV1
from metrosight.config.home import Home, media_file
from metrosight.config.model import Settings
from metrosight.core.names import InvalidInput, human_name, identifier, same_name
from metrosight.core.types import Category, Match
from metrosight.core.when import Clock
from metrosight.detect.base import FaceDetector
from metrosight.detect.registry import face_detector_for
from metrosight.ingest.factory import live_source
from metrosight.ingest.images import ImageError, Photo, PhotoLimits
from metrosight.ingest.live import LiveSource
from metrosight.ingest.source import SourceBroken, SourceError, VideoSource, parse_source
from metrosight.ingest.state import StateChange
from metrosight.pipeline.camera import CameraPipeline, CameraStats
from metrosight.policy.crypto import CryptoError
from metrosight.policy.rules import Actor, Authorisation, PolicyError, require
from metrosight.recognize.embedder import DLIB_RESNET_MODEL_ID, Embedder
from metrosight.recognize.gallery import Gallery, Matcher, ModelMismatch, check_gallery_model
from metrosight.recognize.operating import ImpostorSample, OperatingPoint
from metrosight.recognize.photo import PhotoRefused, enrolment_face, faces_in_photo
from metrosight.recognize.registry import embedder_for
from metrosight.store.db import StoreError
from metrosight.store.governance import Conflict
from metrosight.store.repo import Store

log = logging.getLogger(__name__)

MODEL_ID = DLIB_RESNET_MODEL_ID  # the default embedder's model id; the runtime uses its embedder's (model_id)


def make_face_detector(settings: Settings) -> FaceDetector:
    """The face detector the configuration names (the registry: :func:`metrosight.detect.registry.face_detector_for`)."""
    return face_detector_for(settings)


class Runtime:
    """One installation: its home, settings, store and (lazily) models."""

    def __init__(self, home: Home, settings: Settings, clock: Clock | None = None) -> None:
        self.home = home.ensure()
        self.settings = settings
        self.clock = clock or Clock(settings.deployment.tz())  # now, and the zone typed dates are read in
        self.store = Store.for_home(
            home.root,
            settings.storage.database_url,
            settings.privacy.max_entry_days,
            self.clock.tz,
            episode_window_s=settings.alerts.episode_window_s,
            group_window_s=settings.alerts.group_window_s,
        )
        self.store.close_dead_runs()  # runs of killed processes end as crashed at the next start
        self.storage_wait_seconds = STORAGE_WAIT_SECONDS
        self._impostor_cache: dict[object, ImpostorSample] = {}
        self._nonmated: tuple[object, np.ndarray | None] | None = None
        self._detector: FaceDetector | None = None
        self._embedder: Embedder | None = None

    @property
    def detector(self) -> FaceDetector:
        if self._detector is None:
            self._detector = make_face_detector(self.settings)
        return self._detector

    @property
    def embedder(self) -> Embedder:
        """The configured embedder (built on first use, refused when the watchlists hold templates of another
        descriptor model: :func:`check_gallery_model`)."""
        if self._embedder is None:
            embedder = embedder_for(self.settings, self.home.cache / "models")
            check_gallery_model(self.store.template_models(), embedder.model_id)
            self._embedder = embedder
        return self._embedder

    @property
    def model_id(self) -> str:
        """The descriptor model of the configured embedder: templates are stored and matched under it."""
        return self.embedder.model_id

    def camera_line(self, camera_id: str | None) -> str | None:
        cam = self.settings.camera(camera_id)
        return cam.line if cam is not None else None

    def camera_group(self, camera_id: str | None) -> str | None:
        """The camera's episode group: its ``group`` (station), else its line, else None (the camera alone)."""
        cam = next((c for c in self.settings.cameras if c.id == camera_id), None)
        return None if cam is None else (cam.group or cam.line)

    def matcher(self, camera_id: str | None = None) -> Matcher:
        """The matcher over the entries active now and in scope for ``camera_id`` (``None``, a photo: only entries
        without a camera or line scope)."""
        return self.matcher_for(
            Gallery(self.store.active_gallery(self.model_id, camera_id, line=self.camera_line(camera_id)))
        )

    def matcher_for(self, gallery: Gallery) -> Matcher:
        """A matcher over ``gallery`` with the threshold that gives ``recognition.target_fpir`` for its persons (per
        list where ``watchlists.<name>.target_fpir`` says so), the ambiguity margin and the score normalisation.

        The threshold is recomputed for every gallery (enrolment, approval, revocation and expiry all change it) from
        the impostor pairs of the gallery and the calibration faces (:mod:`metrosight.recognize.operating`). With
        ``normalization: cohort`` the configured ``match_threshold`` (AS-norm units) is used as it is.
        """
        rec = self.settings.recognition
        cohort = None
        if rec.normalization == "cohort":
            from metrosight.recognize.normalize import COHORT_FILE, Cohort, CohortError

            cohort = Cohort.load(self.home.root / "calibration" / COHORT_FILE)  # CohortError names the file
            if cohort.model != self.model_id:
                raise CohortError(
                    f"the cohort ({COHORT_FILE}) was built with descriptor model {cohort.model!r}, the configured "
                    f"embedder computes {self.model_id!r}: build it again with `metrosight calibrate --cohort DIR`"
                )
            return Matcher(gallery, rec.match_threshold, rec.min_margin, cohort)
        points = self.operating_points(gallery)
        default = points[rec.target_fpir]
        thresholds = np.array([points[self.list_target(e.watchlist)].threshold for e in gallery.entries])
        return Matcher(gallery, default.threshold, rec.min_margin, None, thresholds, default)

    def list_target(self, watchlist: str) -> float:
        """The target FPIR of ``watchlist``: ``watchlists.<name>.target_fpir``, else ``recognition.target_fpir``."""
        wl = self.settings.watchlists.get(watchlist)
        return (
            wl.target_fpir if wl is not None and wl.target_fpir is not None else self.settings.recognition.target_fpir
        )

    def operating_points(self, gallery: Gallery) -> dict[float, OperatingPoint]:
        """The operating point of every target in use (the default and each list's) for ``gallery``."""
        from metrosight.recognize.operating import FLOOR_COSINE, operating_point

        rec = self.settings.recognition
        sample = self._impostors(gallery)
        floor = max(FLOOR_COSINE, rec.match_threshold)
        targets = {rec.target_fpir} | {self.list_target(e.watchlist) for e in gallery.entries}
        return {t: operating_point(t, gallery.persons, sample, floor) for t in targets}

    def _impostors(self, gallery: Gallery) -> ImpostorSample:
        """Impostor scores of ``gallery`` (cached per gallery: a camera's matcher is rebuilt on every change)."""
        from metrosight.recognize.operating import gallery_impostors

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

    def searches_per_day(self, live_tracks: int = 0, live_seconds: float = 0.0, days: float = 7.0) -> float | None:
        """Watchlist searches a day (one per face track): the larger of two rates — the tracks of the runs finished
        in the last ``days`` days over the time since the earliest of them started, and ``live_tracks`` seen by
        running cameras over ``live_seconds`` (each over at least an hour); ``None`` before any track was counted."""
        from datetime import timedelta

        now = self.clock.now()
        n, first = self.store.tracks_since(now - timedelta(days=days))
        rates = []
        if n and first is not None:
            rates.append(n * 86400.0 / max((now - first).total_seconds(), 3600.0))
        if live_tracks and live_seconds > 0:
            rates.append(live_tracks * 86400.0 / max(live_seconds, 3600.0))
        return max(rates) if rates else None

    def operating_status(
        self, searches_per_day: float | None = None, live_tracks: int = 0, live_seconds: float = 0.0
    ) -> dict[str, object]:
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
        rec = self.settings.recognition
        m = self.matcher_for(Gallery(self.store.active_gallery(self.model_id)))
        op = m.operating
        spd = searches_per_day if searches_per_day is not None else self.searches_per_day(live_tracks, live_seconds)
        lists: dict[str, dict[str, float]] = {}
        fpir = rec.target_fpir
        if isinstance(op, OperatingPoint):
            from metrosight.recognize.operating import per_comparison_fmr

            points = self.operating_points(m.gallery)
            # each person at their loosest list's target: the FPIR of one search over the whole gallery
            per_person: dict[int, float] = {}
            for e in m.gallery.entries:
                per_person[e.person_key] = max(self.list_target(e.watchlist), per_person.get(e.person_key, 0.0))
            n = max(len(per_person), 1)
            fpir = (
                float(-np.expm1(sum(np.log1p(-per_comparison_fmr(t, n)) for t in per_person.values())))
                if per_person
                else rec.target_fpir
            )
            for name in sorted({e.watchlist for e in m.gallery.entries} | set(self.settings.watchlists)):
                t = self.list_target(name)
                thr = points[t].threshold if t in points else None
                lists[name] = {"target_fpir": t, "threshold": thr}
        return {
            "target_fpir": rec.target_fpir,
            "fpir_per_search": round(fpir, 6),
            "persons": m.gallery.persons,
            "threshold": round(float(m.threshold), 4),
            "scoring": m.scoring,
            "method": op.method if isinstance(op, OperatingPoint) else "fixed (cohort AS-norm)",
            "impostor_pairs": op.impostor_pairs if isinstance(op, OperatingPoint) else 0,
            "fmr_target": op.fmr_target if isinstance(op, OperatingPoint) else None,
            "fpir_resolution": op.resolution if isinstance(op, OperatingPoint) else None,
            "floor": op.floor if isinstance(op, OperatingPoint) else rec.match_threshold,
            "lists": lists,
            "searches_per_day": None if spd is None else round(spd, 1),
            "expected_false_candidates_per_day": None if spd is None else round(fpir * spd, 3),
        }

    def calibration_faces(self) -> np.ndarray | None:
        """Unit descriptors ``(F, 128)`` of the operator's calibration faces (people on no list), stored by
        ``metrosight calibrate --non-mated`` in ``<home>/calibration/nonmated.npz``; ``None`` when there are none."""
        from metrosight.eval.calibrate import load_nonmated, nonmated_path

        path = nonmated_path(self.home.root)
        try:
            st = path.stat()
            stamp: object = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if self._nonmated is None or self._nonmated[0] != stamp:
            self._nonmated = (stamp, load_nonmated(self.home.root, self.model_id) if stamp is not None else None)
        return self._nonmated[1]

    @property
    def photo_limits(self) -> PhotoLimits:
        """The pixel budget and working size of still photos (``photos`` section of the configuration)."""
        return PhotoLimits.of(self.settings.photos)

    # -- enrolment --------------------------------------------------------------------------------------------
    def enroll(
        self,
        watchlist: str,
        items: Iterable[tuple[str, Photo | ImageError]],
        actor: Actor,
        auth: Authorisation | None = None,
        on_result: Callable[[EnrolResult], None] | None = None,
        face: int | None = None,
        person_id: int | None = None,
    ) -> list[EnrolResult]:
        """Enrol decoded photos: ``items`` are ``(subject name, photo)``, where a photo that could not be read is
        given as its :class:`ImageError` (refused with that reason). Photos are decoded by the caller through
        :mod:`metrosight.ingest.images` (files at the CLI, uploaded bytes in the API); a lazy iterable keeps one
        photo in memory at a time. Each photo is checked and stored in its own audited transaction, so a refused or
        failing photo never affects the others. New entries are *pending* until a second approver approves them
        (see :mod:`metrosight.policy.rules`). A photo may show other people: the subject's face is taken when it
        clearly dominates; otherwise the refusal numbers the faces (:attr:`EnrolResult.faces`) and ``face`` (1 =
        leftmost) enrols the chosen one (see :func:`metrosight.recognize.photo.enrolment_face`).

        A new entry joins person ``person_id`` when given; otherwise an enrolled person with the same name whose
        face matches (:mod:`metrosight.recognize.persons`), else a new person. A face that matches another person
        is reported in the result's ``warnings`` for the operator to link or mark distinct.

        Raises:
            NotFound: the watchlist (or ``person_id``) does not exist. Forbidden: ``actor`` may not record entries
            (all checked before any photo is read).
        """
        from metrosight.recognize.persons import name_key

        self.store.watchlist_category(watchlist)
        require(actor, "record watchlist entries", "approver", "admin")
        if person_id is not None:
            self.store.persons(person_id)  # NotFound before any photo is read
        lim = self.settings.photos  # the quality limits of still photos
        index = _EnrolmentIndex(self, name_key)
        results = []
        first: str | None = None  # with person_id: the one subject it is given to
        for subject, photo in items:
            label = photo.label
            try:
                subject = human_name(subject, "the person's name")  # NFC, trimmed: an NFD folder name included
                if person_id is not None:  # --person makes ONE new entry that person: never two strangers
                    first = first or subject
                    if not same_name(subject, first):
                        raise InvalidInput(
                            f"--person {person_id} names one person, already given to {first!r}: enrol "
                            f"{subject!r} separately"
                        )
                if isinstance(photo, ImageError):
                    raise photo
                chosen = enrolment_face(
                    photo.image,
                    self.detector,
                    self.embedder,
                    lim.min_face_px,
                    lim.min_blur_var,
                    face,
                    lim.max_yaw_ratio,
                )
                decision = index.decide(watchlist, subject, chosen.descriptor, person_id)
                sid, dup = self.store.enroll(
                    watchlist,
                    subject,
                    chosen.descriptor,
                    self.model_id,
                    photo.name,
                    photo.sha256,
                    chosen.quality.score,
                    actor,
                    auth,
                    self.clock.now(),
                    person_id=decision.person_id,
                    link_reason=decision.reason,
                )
                pid = self.store.person_of(watchlist, subject)
                index.add(sid, subject, watchlist, pid, chosen.descriptor)
                warnings = tuple(w.replace("NEW_PERSON", str(pid)) for w in decision.warnings)
                res = EnrolResult(
                    subject,
                    label,
                    "duplicate" if dup else "enrolled",
                    None,
                    chosen.quality.score,
                    person_id=pid,
                    linked=decision.reason if decision.person_id is not None and person_id is None else None,
                    warnings=warnings,
                )
            except ImageError as exc:
                res = EnrolResult(subject, label, "refused", exc.reason, None)
            except PhotoRefused as exc:
                back = 1.0 / photo.scale if isinstance(photo, Photo) else 1.0  # boxes in the stored photo's pixels
                numbered = [
                    {"number": f.number, "box": [round(v * back, 1) for v in f.box.as_tuple()], "problem": f.problem}
                    for f in exc.faces
                ]
                res = EnrolResult(subject, label, "refused", str(exc), None, numbered or None)
            except (PolicyError, InvalidInput, Conflict) as exc:
                res = EnrolResult(subject, label, "refused", str(exc), None)
            results.append(res)
            if on_result is not None:
                on_result(res)
        return results

    # -- identification ---------------------------------------------------------------------------------------
    def identify(self, photos: Iterable[Photo | ImageError], actor: Actor) -> list[PhotoResult]:
        """Who on the active watchlists is in each photo (decoded by the caller, see :meth:`enroll`; an
        :class:`ImageError` gives a result with its reason). Boxes are in the photo's stored pixels. The call is
        audited (photo hashes and who was found); nothing about a face that matched no one is stored."""
        require(actor, "identify photos", "operator", "admin")
        matcher = self.matcher()
        lim = self.settings.photos  # the quality limits of still photos
        out = []
        for photo in photos:
            if isinstance(photo, ImageError):
                out.append(PhotoResult(photo.label, error=photo.reason))
                continue
            usable, rejected = faces_in_photo(
                photo.image, self.detector, self.embedder, lim.min_face_px, lim.min_blur_var, lim.max_yaw_ratio
            )
            back = 1.0 / photo.scale  # boxes in the stored photo's pixels, also when it was decoded smaller
            faces = []
            for f in usable:
                m = matcher.match(f.descriptor)
                faces.append({"box": [round(v * back, 1) for v in f.detection.box.as_tuple()]} | match_fields(m))
            for d, q in rejected:
                faces.append(
                    {"box": [round(v * back, 1) for v in d.box.as_tuple()], "subject": None, "skipped": q.problem}
                )
            out.append(PhotoResult(photo.label, faces=faces))
            self.store.record(
                actor.name,
                "identify",
                photo.name,
                {
                    "photo_sha256": photo.sha256,
                    "faces": len(faces),
                    "matched": [f["subject"] for f in faces if f.get("subject")],
                    "persons": [f["person_id"] for f in faces if f.get("person_id") is not None],
                    "entries": [e["entry_id"] for f in faces for e in f.get("entries") or []],  # type: ignore[union-attr]
                },
            )
        return out

    # -- video ------------------------------------------------------------------------------------------------
    def camera_pipeline(
        self,
        camera_id: str,
        run_id: int | None,
        publish_alert: Callable[[AlertV1], None],
        publish_update: Callable[[AlertUpdateV1], None],
    ) -> CameraPipeline:
        """The stages of one camera, kept current with approvals, revocations and no-identification windows."""
        from metrosight.detect.landmarks import FivePointLandmarker

        live = LivePolicy(self, camera_id)
        matcher, allowed = live.current()
        pipe = CameraPipeline(
            self.settings,
            self.detector,
            self.embedder,
            matcher,
            publish_alert=publish_alert,
            publish_update=publish_update,
            run_id=run_id,
            landmarker=FivePointLandmarker(),
            policy=live.poll,
            group=self.camera_group(camera_id),
        )
        pipe.identification_allowed = allowed
        return pipe

    def _finish_run(self, run_id: int, status: str, s: CameraStats, error: str | None) -> None:
        """Close the run row; on a full disk keep trying for :attr:`storage_wait_seconds` (else the next start
        closes it as crashed)."""
        from sqlalchemy.exc import SQLAlchemyError

        from metrosight.store.db import StoreError

        deadline = time.monotonic() + self.storage_wait_seconds
        while True:
            try:
                self.store.finish_run(run_id, status, s.frames, s.faces, s.tracks, s.alerts, error)
                return
            except (StoreError, SQLAlchemyError) as exc:
                if time.monotonic() >= deadline:
                    log.error("cannot close run %d (%s); the next start closes it as crashed", run_id, exc)
                    return
                time.sleep(RETRY_SECONDS)

    def run(
        self,
        source: str,
        camera_id: str,
        on_alert: Callable[..., None] | None = None,
        on_frame: Callable[[CameraStats], None] | None = None,
        bus: InProcessBus | None = None,
        analytics_only: bool = False,
        on_event: Callable[..., None] | None = None,
        rtsp_transport: str | None = None,
    ) -> RunReport:
        """Run the pipeline over one source until it ends. Alerts are stored as they happen.

        With ``analytics_only`` no face model is used: only the behaviour analytics run (people tracking, loitering,
        fast movement, counting). Without it they run alongside face recognition for cameras that have an entry
        under ``analytics.cameras``. Behaviour events are stored as they happen and passed to ``on_event``.

        ``rtsp_transport`` (``auto``, ``tcp``, ``udp``) defaults to that of the configured camera ``camera_id``,
        else ``auto``. The run row, states and messages carry the source without its credentials.

        Raises:
            SourceError: the source cannot be parsed or opened (nothing is stored). InvalidInput: ``camera_id``
            breaks the camera id rule (:func:`metrosight.core.names.identifier`).
        """
        camera_id = identifier(camera_id, "camera id")
        configured = self.settings.camera(camera_id)
        if configured is not None:  # `--camera CAM-1` is the configured camera cam-1: its line, windows, analytics
            camera_id = configured.id
        if rtsp_transport is None:
            rtsp_transport = configured.rtsp_transport if configured is not None else "auto"
        spec = parse_source(source, rtsp_transport)
        bus = bus or InProcessBus()
        video: VideoSource | LiveSource
        if spec.kind == "file":
            video = VideoSource(
                spec, camera_id, self.settings.ingest.analysis_fps, self.settings.ingest.open_timeout_seconds
            )
            frames = video.frames()
        else:  # a live stream: reconnects with backoff, watchdog, newest frame first; gives up once down
            video = live_source(spec, camera_id, self.settings.ingest, keep_trying=False)
            frames = video.frames(on_state=lambda ch: bus.publish(TOPIC_CAMERA_STATE, camera_state_payload(ch)))
        first = next(frames, None)  # opens the source before anything is written
        run_id = self.store.start_run(camera_id, spec.display)  # no camera credentials stored
        sink = AlertSink(self.store, self.home.media, on_alert)
        bus.subscribe(TOPIC_ALERTS, sink.on_alert)  # type: ignore[arg-type]
        bus.subscribe(TOPIC_ALERT_UPDATES, sink.on_update)  # type: ignore[arg-type]
        from metrosight.pipeline import analytics as an

        analytics = None
        if an.wants_analytics(self.settings.analytics, camera_id, analytics_only):
            events = an.EventSink(self.store, self.home.media, on_event)
            bus.subscribe(an.TOPIC_EVENTS, events.on_event)  # type: ignore[arg-type]
            bus.subscribe(an.TOPIC_EVENT_UPDATES, events.on_update)  # type: ignore[arg-type]
            analytics = an.make_analytics_worker(
                self.settings.analytics,
                camera_id,
                run_id,
                lambda e: bus.publish(an.TOPIC_EVENTS, e),
                lambda u: bus.publish(an.TOPIC_EVENT_UPDATES, u),
                face_boxes=lambda image: [d.box for d in self.detector.detect(image)],
            )
        pipe = (
            an.AnalyticsOnly(analytics)  # type: ignore[arg-type]
            if analytics_only
            else self.camera_pipeline(
                camera_id,
                run_id,
                publish_alert=lambda a: bus.publish(TOPIC_ALERTS, a),
                publish_update=lambda u: bus.publish(TOPIC_ALERT_UPDATES, u),
            )
        )
        if analytics is not None and not analytics_only:
            pipe = an.Alongside(pipe, analytics)  # type: ignore[assignment]
        segment = 0
        started = time.perf_counter()
        error: str | None = None
        status = "finished"
        try:
            if first is not None:
                pipe.process(first)
                if on_frame:
                    on_frame(pipe.stats)
                for frame in frames:
                    if video.segment != segment:  # reconnected: no track carries across the outage
                        segment = video.segment
                        pipe.finish()
                    pipe.process(frame)
                    sink.retry()  # held alerts are stored as soon as the store can be written again
                    if on_frame:
                        on_frame(pipe.stats)
        except SourceBroken as exc:
            error, status = str(exc), "broken"
        except KeyboardInterrupt:
            error, status = "interrupted by the user", "interrupted"
        finally:
            pipe.finish()
            elapsed = time.perf_counter() - started
            s = pipe.stats
            if not sink.drain(self.storage_wait_seconds):
                held = len(sink.held)
                error = (
                    f"{sink.failure}: {held} alert(s) could not be stored (they were printed above); the run is "
                    "closed as crashed at the next start" + (f" ({error})" if error else "")
                )
                status = "storage-full"
            self._finish_run(run_id, status, s, error)
        stats = analytics.stats if analytics is not None else None
        return RunReport(
            run_id, status, error, pipe.stats, elapsed, len(pipe.matcher.gallery), stats, len(sink.alert_ids)
        )


class LivePolicy:
    """Keeps a running camera's gallery and no-identification state current: re-reads them at most every
    ``privacy.policy_refresh_seconds`` (wall clock) when the store's gallery version changed, an entry's expiry or
    window boundary passed. Approvals, revocations, expiries and windows thus apply within that period."""

    def __init__(self, runtime: Runtime, camera_id: str) -> None:
        self.rt = runtime
        self.camera_id = camera_id
        self.line = runtime.camera_line(camera_id)
        self.every = runtime.settings.privacy.policy_refresh_seconds
        self._checked = self._built = 0.0
        self._version = -1
        self._state: tuple[Matcher, bool] | None = None

    def current(self) -> tuple[Matcher, bool]:
        self._version = self.rt.store.gallery_version()
        self._checked = self._built = time.monotonic()
        self._state = (
            self.rt.matcher(self.camera_id),
            self.rt.store.identification_allowed(self.camera_id, self.line),
        )
        return self._state

    def poll(self) -> tuple[Matcher, bool] | None:
        """A new ``(matcher, identification allowed)`` when something changed, else None. Cheap between checks."""
        now = time.monotonic()
        if now - self._checked < self.every:
            return None
        self._checked = now
        old = self._state
        version = self.rt.store.gallery_version()
        allowed = self.rt.store.identification_allowed(self.camera_id, self.line)
        stale = now - self._built > 30.0  # validity windows that opened or closed
        if version != self._version or self.rt.store.expire_due() or old is None or stale:
            return self.current()
        if allowed != old[1]:
            self._state = (old[0], allowed)
            return self._state
        return None


@dataclass(frozen=True, slots=True)
class EnrolResult:
    """One photo's outcome: ``photo`` is its label (a path on the CLI, the uploaded file's name in the API);
    ``reason`` says why it was refused (without the label). ``person_id``: the person the entry belongs to;
    ``linked``: why it joined a person enrolled before (same name and face), if it did; ``warnings``: look-alikes
    the operator should link or mark distinct."""

    subject: str
    photo: str
    status: str  # enrolled | duplicate | refused
    reason: str | None
    quality: float | None
    #: when refused with several faces: each as ``{"number", "box": [x1, y1, x2, y2], "problem"}``, box in the
    #: stored photo's pixels; the operator enrols one of them by its number (``face``)
    faces: list[dict[str, Any]] | None = None
    person_id: int | None = None
    linked: str | None = None
    warnings: tuple[str, ...] = ()


class _EnrolmentIndex:
    """The pending and active templates of every person, read once per enrolment call and kept up to date as
    photos are enrolled, so a folder of photos is compared without re-reading the store per photo."""

    def __init__(self, rt: Runtime, name_key: Callable[[str], str]) -> None:
        from metrosight.recognize.gallery import GalleryEntry

        self.rt = rt
        self.key = name_key
        self.entries: list[GalleryEntry] = rt.store.enrolment_gallery(rt.model_id)
        self.names: dict[str, dict[int, str]] = {}
        for p in rt.store.persons():
            for e in p.entries:
                if e.status in ("active", "pending"):
                    self.names.setdefault(name_key(e.name), {})[p.id] = p.name
        self.distinct = rt.store.distinct_pairs()
        self._matcher: Matcher | None = None

    def matcher(self) -> Matcher:
        if self._matcher is None:
            self._matcher = self.rt.matcher_for(Gallery(self.entries))
        return self._matcher

    def decide(self, watchlist: str, subject: str, descriptor: np.ndarray, person_id: int | None):  # type: ignore[no-untyped-def]
        from metrosight.recognize.persons import PersonDecision, candidates, decide
        from metrosight.store.governance import NotFound

        try:
            own = self.rt.store.person_of(watchlist, subject)
        except NotFound:
            own = None
        found = candidates(self.matcher(), descriptor)
        if own is None and person_id is not None:
            if any(c.person_id == person_id for c in found):
                return PersonDecision(person_id, "linked by the operator (--person)", ())
            return PersonDecision(
                person_id,
                "linked by the operator (--person)",
                (
                    f"this face does not match person {person_id} at the match threshold: linked as asked; if the id "
                    f'was wrong, run `metrosight person unlink {watchlist} {shlex.quote(subject)} --reason "…"`',
                ),
            )
        return decide(subject, found, self.names.get(self.key(subject), {}), self.distinct, own)

    def add(self, entry_id: int, subject: str, watchlist: str, person_id: int, descriptor: np.ndarray) -> None:
        from metrosight.recognize.gallery import GalleryEntry, fuse

        same = [e for e in self.entries if e.subject_id == entry_id]
        if same:  # another photo of a known entry: its template is the fusion of all
            old = same[0]
            template = fuse(np.stack([old.template, descriptor]))
            self.entries = [e for e in self.entries if e.subject_id != entry_id]
        else:
            template = descriptor
        self.entries.append(GalleryEntry(entry_id, subject, watchlist, Category.WANTED, template, person_id, subject))
        self.names.setdefault(self.key(subject), {}).setdefault(person_id, subject)
        self._matcher = None


@dataclass(slots=True)
class PhotoResult:
    """One photo's identification: ``photo`` is its label; ``error`` why it could not be read (without the label)."""

    photo: str
    faces: list[dict[str, object]] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RunReport:
    run_id: int
    status: str
    error: str | None
    stats: CameraStats
    seconds: float
    gallery_size: int
    analytics: object | None = None  # AnalyticsStats when the behaviour analytics ran
    episodes: int = 0  # alerts (episodes) the run's sightings were stored in (stats.alerts counts sightings)

    @property
    def fps(self) -> float:
        return self.stats.frames / self.seconds if self.seconds > 0 else 0.0


STORAGE_WAIT_SECONDS = 30.0  # how long a run that ends waits for space to store what it still holds
RETRY_SECONDS = 1.0  # between attempts to store held alerts


def storage_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or quota) is full: ENOSPC/EDQUOT, or SQLite's "database or disk is full"."""
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    return "disk is full" in text or "no space left" in text or "disk quota" in text


class AlertSink:
    """Stores alert sightings (crop file first, then the row: a new alert or a sighting appended to the person's
    open episode, see :mod:`metrosight.store.episodes`) and passes them on to ``on_alert`` — called as
    ``on_alert(alert, crop_path, stored)`` when it takes three arguments (``stored``: the
    :class:`~metrosight.store.episodes.SightingStored`, None while held), else ``on_alert(alert, crop_path)``.

    When they cannot be stored (a full disk, a database that is down) the alerts — crops included — and their
    updates are held in memory, in order, and stored as soon as a write succeeds again (:meth:`retry`, called as
    frames go by, and :meth:`drain` at the end of a run). ``on_alert`` is called at once either way (``crop`` is
    None while the alert is held), so an alert is printed even when it cannot be stored yet. ``failure`` holds the
    reason while something is held.
    """

    def __init__(self, store: Store, media: Path, on_alert: Callable[..., None] | None) -> None:
        import inspect

        self.store = store
        self.media = media
        self.on_alert_cb = on_alert
        self.held: list[AlertV1] = []
        self.held_updates: dict[str, float] = {}
        self.failure: str | None = None
        self._next_try = 0.0
        self.alert_ids: set[int] = set()  # the alerts (episodes) this sink's sightings went to
        self._with_episode = False
        if on_alert is not None:
            try:
                params = inspect.signature(on_alert).parameters.values()
                self._with_episode = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params) >= 3
            except (TypeError, ValueError):
                pass

    def _write_crop(self, alert: AlertV1) -> str | None:
        if not alert.crop_jpeg:
            return None
        target = media_file(self.media, "alerts", alert.camera_id, alert.event_id, ".jpg.enc")  # never a raw id
        sealed = self.store.encrypt_for(alert.watchlist, alert.crop_jpeg)  # encrypted at rest, key per watchlist
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(sealed)
            os.replace(tmp, target)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(target)

    def _store(self, alert: AlertV1):  # type: ignore[no-untyped-def]
        """Crop, then the sighting (a new alert or appended to the person's episode). Returns ``(crop path,
        SightingStored)``. Raises OSError/StoreError/SQLAlchemyError when storage fails (the caller holds it)."""
        try:
            crop_path = self._write_crop(alert)
        except CryptoError as exc:
            log.error("cannot encrypt the best-shot crop of %s (%s); storing the alert without it", alert.event_id, exc)
            crop_path = None
        except OSError as exc:
            if storage_full(exc):
                raise
            log.error("cannot write best-shot crop for %s (%s); storing the alert without it", alert.event_id, exc)
            crop_path = None
        stored = self.store.store_sighting(_to_core_alert(alert), crop_path, alert.run_id)
        self.alert_ids.add(stored.alert_id)
        return crop_path, stored

    def retry(self, force: bool = False) -> bool:
        """Store what is held, oldest first (at most every :data:`RETRY_SECONDS` unless ``force``). Returns
        whether nothing is held any more."""
        from sqlalchemy.exc import SQLAlchemyError

        from metrosight.store.db import StoreError

        if not self.held and not self.held_updates:
            return True
        if not force and time.monotonic() < self._next_try:
            return False
        try:
            while self.held:
                self._store(self.held[0])
                self.held.pop(0)
            while self.held_updates:
                event_id, last_seen = next(iter(self.held_updates.items()))
                self.store.extend_alert(event_id, last_seen)
                del self.held_updates[event_id]
        except (OSError, StoreError, SQLAlchemyError) as exc:
            self._held_because(exc)
            return False
        if self.failure is not None:
            log.warning("storage is back: the held alerts are stored")
        self.failure = None
        return True

    def _held_because(self, exc: BaseException) -> None:
        self._next_try = time.monotonic() + RETRY_SECONDS
        reason = "the disk is full" if storage_full(exc) else f"the store cannot be written ({exc.__class__.__name__})"
        if self.failure is None:
            log.error(
                "%s: %d alert(s) are held in memory and will be stored when it can be written again",
                reason,
                len(self.held),
            )
        self.failure = reason

    def drain(self, wait_seconds: float = STORAGE_WAIT_SECONDS) -> bool:
        """At the end of a run: keep trying to store what is held for up to ``wait_seconds``. Returns whether
        everything is stored."""
        deadline = time.monotonic() + wait_seconds
        while not self.retry(force=True):
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(RETRY_SECONDS, max(0.0, deadline - time.monotonic())))
        return True

    def on_alert(self, alert: AlertV1):  # type: ignore[no-untyped-def]
        """Store one sighting (or hold it); returns its :class:`~metrosight.store.episodes.SightingStored`, or None
        while it is held."""
        from sqlalchemy.exc import SQLAlchemyError

        from metrosight.store.db import StoreError

        crop_path: str | None = None
        stored = None
        if self.held or self.held_updates:
            self.held.append(alert)  # keep the order: this one is stored after the ones held before it
            self.retry()
        else:
            try:
                crop_path, stored = self._store(alert)
            except (OSError, StoreError, SQLAlchemyError) as exc:
                self.held.append(alert)
                self._held_because(exc)
        if self.on_alert_cb is not None:
            if self._with_episode:
                self.on_alert_cb(alert, crop_path, stored)
            else:
                self.on_alert_cb(alert, crop_path)
        return stored

    def on_update(self, update: AlertUpdateV1) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        from metrosight.store.db import StoreError

        if self.held or self.held_updates:
            self.held_updates[update.event_id] = max(update.last_seen, self.held_updates.get(update.event_id, 0.0))
            self.retry()
            return
        try:
            self.store.extend_alert(update.event_id, update.last_seen)
        except (StoreError, SQLAlchemyError) as exc:
            self.held_updates[update.event_id] = update.last_seen
            self._held_because(exc)


def match_fields(m: Match | None) -> dict[str, object]:
    """What ``identify`` reports of one face's match: the person and every entry (list, authorisation reference)
    they are matched on, the primary (best-scoring) entry's name, list and category first; ``ambiguous`` and the
    other ``candidates`` (persons also above their threshold within the ambiguity margin, shown to the operator
    rather than dropped); all ``None`` for no match."""
    if m is None:
        return {
            "subject": None,
            "person_id": None,
            "watchlist": None,
            "watchlists": [],
            "category": None,
            "score": None,
            "entries": [],
            "ambiguous": False,
            "candidates": [],
        }
    return {
        "subject": m.person_name or m.subject_name,
        "person_id": m.person_id,
        "watchlist": m.watchlist,
        "watchlists": list(m.watchlists),
        "category": str(m.category),
        "score": round(m.score, 4),
        "entries": [
            {
                "entry_id": e.entry_id,
                "name": e.name,
                "watchlist": e.watchlist,
                "category": str(e.category),
                "reference": e.reference,
            }
            for e in m.entries
        ],
        "ambiguous": m.ambiguous,
        "candidates": [
            {"person_id": r.person_id, "subject": r.name, "watchlist": r.watchlist, "score": r.score} for r in m.rivals
        ],
    }


def camera_state_payload(change: StateChange, worker: int | None = None) -> CameraStateV1:
    """The bus payload of a camera state change."""
    return CameraStateV1(
        camera_id=change.camera_id,
        state=change.state.value,  # type: ignore[arg-type]
        previous=change.previous.value if change.previous is not None else None,
        reason=change.reason,
        attempt=change.attempt,
        wall_time=change.wall_time,
        worker=worker,
    )


def _to_core_alert(a: AlertV1):  # type: ignore[no-untyped-def]
    from metrosight.core.types import Alert, EntryRef, Match

    entries = tuple(EntryRef(e.entry_id, e.name, e.watchlist, Category(e.category), e.reference) for e in a.entries)
    m = Match(
        a.subject_id, a.subject, a.watchlist, Category(a.category), a.score, a.distance, a.person_id, a.person, entries
    )
    return Alert(
        a.camera_id, a.track_id, m, a.first_seen, a.last_seen, None, a.event_id, a.samples, a.group, a.media_origin
    )


__all__ = [
    "MODEL_ID",
    "EnrolResult",
    "ModelMismatch",
    "PhotoResult",
    "RunReport",
    "Runtime",
    "SourceError",
    "StoreError",
    "check_gallery_model",
]
