"""Identification: who on the active watchlists is in decoded photos (:class:`~metrosight.ingest.images.Photo`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from metrosight.core.types import Match
from metrosight.ingest.images import ImageError, Photo
from metrosight.policy.rules import Actor, require
from metrosight.policy.scope import View
from metrosight.recognize.gallery import Matcher
from metrosight.recognize.photo import faces_in_photo
from metrosight.services.installation import Installation
from metrosight.services.matching import Matching
from metrosight.services.models import Models


@dataclass(slots=True)
class PhotoResult:
    """One photo's identification: ``photo`` is its label; ``error`` why it could not be read (without the label)."""

    photo: str
    faces: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def match_fields(m: Match | None) -> dict[str, Any]:
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


def scoped_face(face: dict[str, Any], view: View) -> dict[str, Any]:
    """One face's result (:func:`match_fields` and its box) as a reader of ``view`` may see it: entries and
    candidates on other watchlists removed; no match at all when none of its entries is in the view."""
    if view.everything or not face.get("subject"):
        return face
    entries = [e for e in face.get("entries") or [] if view.watchlist(e["watchlist"])]
    if not entries:
        return {**face, **match_fields(None)}
    lists = [w for w in face.get("watchlists") or [] if view.watchlist(w)]
    first = entries[0]
    return {
        **face,
        "watchlist": face["watchlist"] if view.watchlist(face["watchlist"]) else first["watchlist"],
        "category": face["category"] if view.watchlist(face["watchlist"]) else first["category"],
        "watchlists": lists,
        "entries": entries,
        "candidates": [c for c in face.get("candidates") or [] if view.watchlist(c.get("watchlist"))],
    }


class Identification:
    """Searches decoded photos against the entries without a camera or line scope (see :meth:`identify`)."""

    def __init__(self, installation: Installation, models: Models, matching: Matching) -> None:
        self.installation = installation
        self.models = models
        self.matching = matching

    def identify(self, photos: Iterable[Photo | ImageError], actor: Actor) -> list[PhotoResult]:
        """Who on the active watchlists is in each photo (decoded by the caller through
        :mod:`metrosight.ingest.images`; an :class:`ImageError` gives a result with its reason). Boxes are in the
        photo's stored pixels. The call is audited (photo hashes and who was found); nothing about a face that
        matched no one is stored. Only entries on watchlists of the actor's scope are named: a face whose match
        lies wholly on other lists is reported as matching no one, and candidates on other lists are left out.

        Raises:
            Forbidden: ``actor`` is neither an operator nor an admin (before any photo is read).
        """
        require(actor, "identify photos", "operator", "admin")
        view = self.installation.store.scoping.view(actor, ("operator", "admin"))
        matcher = self.matching.matcher()
        out = []
        for photo in photos:
            if isinstance(photo, ImageError):
                out.append(PhotoResult(photo.label, error=photo.reason))
                continue
            faces = [scoped_face(f, view) for f in self._faces(photo, matcher)]
            out.append(PhotoResult(photo.label, faces=faces))
            self.installation.store.audit.record(
                actor.name,
                "identify",
                photo.name,
                {
                    "photo_sha256": photo.sha256,
                    "faces": len(faces),
                    "matched": [f["subject"] for f in faces if f.get("subject")],
                    "persons": [f["person_id"] for f in faces if f.get("person_id") is not None],
                    "entries": [e["entry_id"] for f in faces for e in f.get("entries") or []],
                },
            )
        return out

    def _faces(self, photo: Photo, matcher: Matcher) -> list[dict[str, Any]]:
        """Each face of ``photo``: its box (stored pixels) and match, or why it was skipped."""
        lim = self.installation.settings.photos
        usable, rejected = faces_in_photo(
            photo.image,
            self.models.detector,
            self.models.embedder,
            lim.min_face_px,
            lim.min_blur_var,
            lim.max_yaw_ratio,
            lim.jitter,
        )
        back = 1.0 / photo.scale  # boxes in the stored photo's pixels, also when it was decoded smaller
        faces: list[dict[str, Any]] = []
        for f in usable:
            box = [round(v * back, 1) for v in f.detection.box.as_tuple()]
            faces.append({"box": box} | match_fields(matcher.match(f.descriptor)))
        for d, q in rejected:
            faces.append({"box": [round(v * back, 1) for v in d.box.as_tuple()], "subject": None, "skipped": q.problem})
        return faces
