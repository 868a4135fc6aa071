"""Enrolment: decoded photos (:class:`~metrosight.ingest.images.Photo`) in, watchlist entries out.

Photos are decoded at the edge (files at the CLI, uploaded bytes in the API, both through
:mod:`metrosight.ingest.images`); this service never reads a file.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Literal

import numpy as np

from metrosight.core.names import InvalidInput, human_name, same_name
from metrosight.core.types import Category
from metrosight.ingest.images import ImageError, Photo
from metrosight.policy.rules import Actor, Authorisation, PolicyError, require
from metrosight.policy.scope import EVERYTHING, View
from metrosight.recognize.consistency import closer_face, disagreement
from metrosight.recognize.gallery import Gallery, GalleryEntry, Matcher, fuse
from metrosight.recognize.persons import PersonDecision, candidates, decide, name_key
from metrosight.recognize.photo import PhotoFace, PhotoRefused, enrolment_face
from metrosight.services.installation import Installation
from metrosight.services.matching import Matching
from metrosight.services.models import Models
from metrosight.store.errors import Conflict, NotFound


@dataclass(frozen=True, slots=True)
class EnrolResult:
    """One photo's outcome: ``photo`` is its label (a path on the CLI, the uploaded file's name in the API);
    ``reason`` says why it was refused (without the label). ``person_id``: the person the entry belongs to;
    ``linked``: why it joined a person enrolled before (same name and face), if it did; ``warnings``: look-alikes
    the operator should link or mark distinct."""

    subject: str
    photo: str
    status: Literal["enrolled", "duplicate", "refused"]
    reason: str | None
    quality: float | None
    #: when refused with several faces: each as ``{"number", "box": [x1, y1, x2, y2], "problem"}``, box in the
    #: stored photo's pixels; the operator enrols one of them by its number (``face``)
    faces: list[dict[str, Any]] | None = None
    person_id: int | None = None
    linked: str | None = None
    warnings: tuple[str, ...] = ()
    #: when refused because the entry's photos are not all of one person: the photo(s) that disagree
    disagrees: tuple[str, ...] = ()


class _EnrolmentIndex:
    """The pending and active templates of every person on the watchlists ``view`` sees (the recorder's scope: a
    person on other lists is neither linked nor named in a warning), read once per enrolment call and kept up to
    date as photos are enrolled, so a folder of photos is compared without re-reading the store per photo."""

    def __init__(self, installation: Installation, matching: Matching, view: View = EVERYTHING) -> None:
        self.store = installation.store
        self.matching = matching
        self.entries: list[GalleryEntry] = [
            e for e in self.store.gallery.for_enrolment(matching.models.model_id) if view.watchlist(e.watchlist)
        ]
        self.names: dict[str, dict[int, str]] = {}
        for p in self.store.persons.all():
            for e in p.entries:
                if e.status in ("active", "pending") and view.watchlist(e.watchlist):
                    self.names.setdefault(name_key(e.name), {})[p.id] = p.name
        self.distinct = self.store.persons.distinct_pairs()
        self._matcher: Matcher | None = None

    def matcher(self) -> Matcher:
        if self._matcher is None:
            self._matcher = self.matching.matcher_for(Gallery(self.entries))
        return self._matcher

    def decide(self, watchlist: str, subject: str, descriptor: np.ndarray, person_id: int | None) -> PersonDecision:
        try:
            own = self.store.persons.person_of(watchlist, subject)
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
        return decide(subject, found, self.names.get(name_key(subject), {}), self.distinct, own)

    def add(self, entry_id: int, subject: str, watchlist: str, person_id: int, descriptor: np.ndarray) -> None:
        same = [e for e in self.entries if e.subject_id == entry_id]
        if same:  # another photo of a known entry: its template is the fusion of all
            old = same[0]
            template = fuse(np.stack([old.template, descriptor]))
            self.entries = [e for e in self.entries if e.subject_id != entry_id]
        else:
            template = descriptor
        self.entries.append(GalleryEntry(entry_id, subject, watchlist, Category.WANTED, template, person_id, subject))
        self.names.setdefault(name_key(subject), {}).setdefault(person_id, subject)
        self._matcher = None


@dataclass(frozen=True, slots=True)
class _Ready:
    """A photo whose subject face was found, waiting for the consistency check of its entry's photos."""

    subject: str
    label: str
    name: str
    sha256: str
    face: PhotoFace


def _taken_face(req: _Request, ready: _Ready) -> tuple[str, ...]:
    """A warning when the subject's face was taken from a photo with other faces without the operator choosing
    it (only descriptors are kept, so approvers cannot see which face it was)."""
    face = ready.face
    if req.face is not None or face.found < 2:
        return ()
    return (
        f"face {face.number} of the photo's {face.found} was taken as {ready.subject}'s (the most central whole face; "
        "the others smaller, off-centre or unrecognisable); if it is someone else, revoke the entry and enrol the "
        "photo again choosing the face (--face N; face=N in the API)",
    )


@dataclass(slots=True)
class _Request:
    """What one enrolment call asks for (the same for every photo)."""

    watchlist: str
    actor: Actor
    auth: Authorisation | None
    face: int | None
    person_id: int | None
    first: str | None = None  # with person_id: the one subject it is given to


class Enrolment:
    """Enrols decoded photos on watchlists (see :meth:`enroll`)."""

    def __init__(self, installation: Installation, models: Models, matching: Matching) -> None:
        self.installation = installation
        self.models = models
        self.matching = matching

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
        is reported in the result's ``warnings`` for the operator to link or mark distinct. One entry's photos
        (consecutive items with the same name) must show one person, also with the templates of the person they
        join: when one is clearly another person (:mod:`metrosight.recognize.consistency`) all of them are refused
        (:attr:`EnrolResult.disagrees` names the odd ones) and nothing is stored for that entry.

        Raises:
            NotFound: the watchlist (or ``person_id``) does not exist. Forbidden: ``actor`` may not record entries
            (all checked before any photo is read).
        """
        store = self.installation.store
        require(actor, "record watchlist entries", "approver", "admin")
        view = store.scoping.view(actor, ("approver", "admin"))
        store.watchlists.category(watchlist, view)  # NotFound too for a list outside the recorder's scope
        if person_id is not None:
            store.persons.all(person_id)  # NotFound before any photo is read
        index = _EnrolmentIndex(self.installation, self.matching, view)
        request = _Request(watchlist, actor, auth, face, person_id)
        results = []
        for _, group in groupby(items, key=lambda it: it[0]):  # one entry's photos: consecutive, same name
            for res in self._entry(request, index, group):
                results.append(res)
                if on_result is not None:
                    on_result(res)
        return results

    def _entry(
        self, req: _Request, index: _EnrolmentIndex, group: Iterable[tuple[str, Photo | ImageError]]
    ) -> list[EnrolResult]:
        """One entry's photos: each photo's face first (one decoded photo at a time; only its descriptor kept),
        then the consistency check over them all and the templates of the person they join (:meth:`_mixed`):
        photos of two people, or a face taken from a photo with several while another of its faces is more like the
        others, refuse them all, nothing stored. Otherwise each is stored in its own transaction."""
        found = [self._one(req, subject, photo) for subject, photo in group]
        ready = [f for f in found if isinstance(f, _Ready)]
        mixed = self._mixed(req, index, ready) if ready else None
        if mixed is not None:
            why, odd = mixed
            return [
                EnrolResult(f.subject, f.label, "refused", why, None, disagrees=odd) if isinstance(f, _Ready) else f
                for f in found
            ]
        return [self._stored(req, index, f) if isinstance(f, _Ready) else f for f in found]

    def _mixed(self, req: _Request, index: _EnrolmentIndex, ready: list[_Ready]) -> tuple[str, tuple[str, ...]] | None:
        """Why one entry's photos must all be refused, and the odd photos: a face taken from a photo with several
        while another face of it is more like the entry's other photos and the templates of the person it joins
        (:func:`~metrosight.recognize.consistency.closer_face`: the dominance rule took a bystander), or photos of
        two people (:func:`~metrosight.recognize.consistency.disagreement`). None when they agree."""
        joins = req.person_id if req.person_id is not None else self._own(req.watchlist, ready[0].subject)
        existing = [e.template for e in index.entries if joins is not None and e.person_id == joins]
        for r in ready:
            refs = [q.face.descriptor for q in ready if q is not r] + existing
            closer = closer_face((r.face.number, r.face.descriptor), r.face.others, np.stack(refs) if refs else None)
            if closer is not None:
                return closer.message(r.label, r.subject), (r.label,)
        odd = disagreement(
            [r.face.descriptor for r in ready],
            [r.label for r in ready],
            np.stack(existing) if existing else None,
            f"person {joins}",
        )
        return None if odd is None else (odd.message(ready[0].subject), odd.odd)

    def _own(self, watchlist: str, subject: str) -> int | None:
        """The person of ``subject``'s entry on ``watchlist`` when it is enrolled already (more photos join it)."""
        try:
            return self.installation.store.persons.person_of(watchlist, subject)
        except NotFound:
            return None

    def _stored(self, req: _Request, index: _EnrolmentIndex, ready: _Ready) -> EnrolResult:
        """Store one checked photo's face; a refusal is a result, never an exception."""
        try:
            return self._store(req, index, ready)
        except (PolicyError, InvalidInput, Conflict) as exc:
            return EnrolResult(ready.subject, ready.label, "refused", str(exc), None)

    def _one(self, req: _Request, subject: str, photo: Photo | ImageError) -> _Ready | EnrolResult:
        """One photo's subject face (the photo itself is not kept), or its refusal as a result."""
        label = photo.label
        try:
            subject = human_name(subject, "the person's name")  # NFC, trimmed: an NFD folder name included
            if req.person_id is not None:  # --person makes ONE new entry that person: never two strangers
                req.first = req.first or subject
                if not same_name(subject, req.first):
                    raise InvalidInput(
                        f"--person {req.person_id} names one person, already given to {req.first!r}: enrol "
                        f"{subject!r} separately"
                    )
            if isinstance(photo, ImageError):
                raise photo
            return _Ready(subject, label, photo.name, photo.sha256, self._face(photo, req.face))
        except ImageError as exc:
            return EnrolResult(subject, label, "refused", exc.reason, None)
        except PhotoRefused as exc:
            back = 1.0 / photo.scale if isinstance(photo, Photo) else 1.0  # boxes in the stored photo's pixels
            numbered = [
                {"number": f.number, "box": [round(v * back, 1) for v in f.box.as_tuple()], "problem": f.problem}
                for f in exc.faces
            ]
            return EnrolResult(subject, label, "refused", str(exc), None, numbered or None)
        except InvalidInput as exc:
            return EnrolResult(subject, label, "refused", str(exc), None)

    def _store(self, req: _Request, index: _EnrolmentIndex, ready: _Ready) -> EnrolResult:
        """Decide the face's person and store the entry. Raises PolicyError, InvalidInput, Conflict."""
        subject, chosen = ready.subject, ready.face
        decision = index.decide(req.watchlist, subject, chosen.descriptor, req.person_id)
        store = self.installation.store
        sid, dup = store.entries.enroll(
            req.watchlist,
            subject,
            chosen.descriptor,
            self.models.model_id,
            ready.name,
            ready.sha256,
            chosen.quality.score,
            req.actor,
            req.auth,
            self.installation.clock.now(),
            person_id=decision.person_id,
            link_reason=decision.reason,
        )
        pid = store.persons.person_of(req.watchlist, subject)
        index.add(sid, subject, req.watchlist, pid, chosen.descriptor)
        return EnrolResult(
            subject,
            ready.label,
            "duplicate" if dup else "enrolled",
            None,
            chosen.quality.score,
            person_id=pid,
            linked=decision.reason if decision.person_id is not None and req.person_id is None else None,
            warnings=tuple(w.replace("NEW_PERSON", str(pid)) for w in decision.warnings) + _taken_face(req, ready),
        )

    def _face(self, photo: Photo, face: int | None) -> PhotoFace:
        """The subject's face in ``photo`` with the quality limits of still photos. Raises PhotoRefused."""
        lim = self.installation.settings.photos
        return enrolment_face(
            photo.image,
            self.models.detector,
            self.models.embedder,
            lim.min_face_px,
            lim.min_blur_var,
            face,
            lim.max_yaw_ratio,
            1.0 / photo.scale,  # a refusal's boxes in the photo file's pixels
            lim.jitter,
        )
