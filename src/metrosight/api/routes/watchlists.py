"""Watchlists and their entries: create, enrol photos (same refusals as the CLI), approve, revoke, shred."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Response, UploadFile
from fastapi.responses import JSONResponse

from metrosight.api.deps import Admin, Approver, Recorder, ServicesDep, StoreDep, WatchlistReader, requires
from metrosight.api.schemas import (
    EnrolPhotoPublic,
    EnrolPublic,
    EntryPublic,
    FoundFacePublic,
    IdentifyPublic,
    RevokeCreate,
    ShredCreate,
    WatchlistCreate,
    WatchlistPublic,
)
from metrosight.core.names import InvalidInput, human_name, identifiers, same_name
from metrosight.core.when import isoformat_local, parse_when, zone_name
from metrosight.ingest.images import ImageError, Photo, PhotoLimits, PhotoTooLarge, decode_photo
from metrosight.policy.rules import Actor, Authorisation, PolicyError
from metrosight.services.enrolment import EnrolResult
from metrosight.services.suite import Services
from metrosight.store.repo import Store
from metrosight.store.scoping import WATCHLIST_READERS

router = APIRouter(tags=["watchlists"])

Identifier = Annotated[Actor, Depends(requires("operator", "admin"))]

MAX_PHOTOS = 5  # photos per enrolment request


@router.get("/api/watchlists", response_model=list[WatchlistPublic])
def list_watchlists(actor: WatchlistReader, store: StoreDep) -> list[WatchlistPublic]:
    """Watchlists with their entry and template counts."""
    view = store.scoping.view(actor, WATCHLIST_READERS)
    return [WatchlistPublic.model_validate(w) for w in store.watchlists.all(view=view)]


@router.post("/api/watchlists", response_model=WatchlistPublic, status_code=201)
def create_watchlist(body: WatchlistCreate, actor: Admin, store: StoreDep) -> WatchlistPublic:
    """Create an empty watchlist (admin). Audited."""
    name = human_name(body.name, "watchlist name")  # InvalidInput: 422
    store.watchlists.create(name, body.category, actor)
    return next(WatchlistPublic.model_validate(w) for w in store.watchlists.all() if same_name(w.name, name))


@router.get("/api/entries", response_model=list[EntryPublic])
def list_entries(actor: WatchlistReader, store: StoreDep) -> list[EntryPublic]:
    """Every watchlist entry with its authorisation, status, scope and expiry."""
    view = store.scoping.view(actor, WATCHLIST_READERS)
    return [EntryPublic.model_validate(e) for e in store.entries.all(view=view)]


@router.get("/api/watchlists/{watchlist}/entries", response_model=list[EntryPublic])
def watchlist_entries(watchlist: str, actor: WatchlistReader, store: StoreDep) -> list[EntryPublic]:
    """The entries of one watchlist."""
    view = store.scoping.view(actor, WATCHLIST_READERS)
    store.watchlists.category(watchlist, view)  # 404 when unknown or outside the caller's scope
    return [EntryPublic.model_validate(e) for e in store.entries.all(watchlist, view=view)]


def _safe_name(filename: str | None, i: int) -> str:
    base = Path(filename or "").name
    base = re.sub(r"[^A-Za-z0-9._ -]", "_", base).strip(" .")[:100]
    return base or f"photo-{i + 1}"


def _authorisation(
    svc: Services,
    legal_basis: str | None,
    authority: str | None,
    reference: str | None,
    expires: str | None,
    valid_from: str | None,
    cameras: str | None,
    lines: str | None,
    urgent: bool,
) -> Authorisation | None:
    if not any([legal_basis, authority, reference, expires, valid_from, cameras, lines, urgent]):
        return None
    given = {
        "legal_basis": (legal_basis or "").strip(),
        "authority": (authority or "").strip(),
        "reference": (reference or "").strip(),
        "expires": (expires or "").strip(),
    }
    missing = [n for n, v in given.items() if not v]
    if missing:
        raise HTTPException(422, f"an authorisation needs {', '.join(missing)}")
    now, tz = svc.clock.now(), svc.clock.tz
    try:
        return Authorisation(
            legal_basis=given["legal_basis"],
            issuing_authority=given["authority"],
            reference=given["reference"],
            expires_at=parse_when(expires or "", now, tz, end=True, what="expires"),
            valid_from=parse_when(valid_from, now, tz, end=False, what="valid_from") if valid_from else None,
            cameras=identifiers(cameras, "camera id"),
            lines=identifiers(lines, "line"),
            urgent=urgent,
        )
    except (PolicyError, InvalidInput) as exc:
        raise HTTPException(422, str(exc)) from None


@router.post(
    "/api/watchlists/{watchlist}/entries",
    response_model=EnrolPublic,
    status_code=201,
    responses={
        413: {
            "description": "a photo file is larger than `photos.max_file_mb`, or every photo was refused and one "
            "of them declares more pixels than `photos.max_megapixels`"
        },
        422: {"description": "every photo refused (each with its reason)"},
    },
)
def enrol(
    watchlist: str,
    actor: Recorder,
    svc: ServicesDep,
    subject: Annotated[str, Form(min_length=1, max_length=256, description="the person's full name")],
    photos: Annotated[list[UploadFile], File(description=f"1–{MAX_PHOTOS} photos, each showing one face")],
    legal_basis: Annotated[str | None, Form(max_length=2000)] = None,
    authority: Annotated[str | None, Form(max_length=256)] = None,
    reference: Annotated[str | None, Form(max_length=256)] = None,
    expires: Annotated[
        str | None,
        Form(
            max_length=40,
            description="YYYY-MM-DD (the end of that day in the deployment's time zone), "
            "YYYY-MM-DDTHH:MM (that zone, or with an offset), or a duration such as 30d/12h (at most 3650 days)",
        ),
    ] = None,
    valid_from: Annotated[
        str | None, Form(max_length=40, description="YYYY-MM-DD (that day's start) or YYYY-MM-DDTHH:MM; default now")
    ] = None,
    cameras: Annotated[str | None, Form(max_length=2000, description="comma-separated camera ids")] = None,
    lines: Annotated[str | None, Form(max_length=2000, description="comma-separated metro lines")] = None,
    urgent: Annotated[bool, Form()] = False,
    face: Annotated[
        int | None,
        Form(
            ge=1,
            le=1000,
            description="with one photo: enrol its face number N (as numbered in a refusal's "
            "`faces`; 1 = leftmost) instead of the clearly dominant face",
        ),
    ] = None,
    person_id: Annotated[
        int | None, Form(ge=1, description="the new entry is this enrolled person (on another list)")
    ] = None,
) -> JSONResponse:
    """Record a watchlist entry from photos (approver or admin), with the CLI's checks: each photo must be an
    image (JPEG, PNG, HEIC/HEIF, AVIF, WebP, GIF, TIFF, BMP or PNM, recognised by its content) within the file size
    and pixel budget of the ``photos`` configuration, showing exactly one usable face (no face, several faces, too
    small, too blurred, cut by the edge, covered or turned away are refused, with the reason). Uploads are decoded
    in memory and never written to disk. A new entry needs its authorisation and stays *pending* until a different
    approver approves it. A photo showing several people is enrolled with the subject's face when it clearly
    dominates; otherwise it is refused with its faces numbered (``faces``) and ``face`` chooses one (one photo per
    request). 201 when at least one photo was enrolled (or already was), 422 when all were refused
    (413 when one of them for its size)."""
    limits = svc.installation.photo_limits
    subject = _checked_request(subject, photos, face, limits)
    svc.store.watchlists.category(watchlist, svc.store.scoping.view(actor, ("approver", "admin")))  # 404 first
    auth = _authorisation(svc, legal_basis, authority, reference, expires, valid_from, cameras, lines, urgent)
    uploads = _DecodedUploads(photos, subject, limits)
    results = svc.enrolment.enroll(watchlist, uploads, actor, auth, face=face, person_id=person_id)
    body = _enrol_public(svc, watchlist, subject, auth, results)
    ok = any(r.status in ("enrolled", "duplicate") for r in results)
    return JSONResponse(body.model_dump(mode="json"), status_code=201 if ok else 413 if uploads.too_large else 422)


def _checked_request(subject: str, photos: list[UploadFile], face: int | None, limits: PhotoLimits) -> str:
    """The subject's name normalised (NFC, trimmed, whitespace collapsed), once the request's shape is checked:
    1 to ``MAX_PHOTOS`` photos, ``face`` with one photo only, no photo declared larger than the limit.

    Raises:
        HTTPException: 422 (bad name, number of photos, ``face`` with several), 413 (a photo too large).
    """
    try:
        subject = human_name(subject, "subject: the person's name")
    except InvalidInput as exc:
        raise HTTPException(422, str(exc)) from None
    if not photos or len(photos) > MAX_PHOTOS:
        raise HTTPException(422, f"give 1 to {MAX_PHOTOS} photos")
    if face is not None and len(photos) != 1:
        raise HTTPException(422, "face chooses a face of one photo: send exactly one photo with it")
    for i, p in enumerate(photos):
        if p.size is not None and p.size > limits.max_bytes:
            raise HTTPException(
                413,
                f"{_safe_name(p.filename, i)}: {p.size / 1e6:.0f} MB is larger than the "
                f"{limits.max_bytes / 1e6:g} MB limit for a photo (photos.max_file_mb)",
            )
    return subject


class _DecodedUploads:
    """The uploaded photos decoded one at a time as ``(subject, photo or why not)`` (one decoded photo held at a
    time); ``too_large`` tells afterwards whether one was refused for its size."""

    def __init__(self, photos: list[UploadFile], subject: str, limits: PhotoLimits) -> None:
        self.photos, self.subject, self.limits = photos, subject, limits
        self.too_large = False

    def __iter__(self) -> Iterator[tuple[str, Photo | ImageError]]:
        for i, p in enumerate(self.photos):
            name = _safe_name(p.filename, i)
            try:
                photo: Photo | ImageError = decode_photo(
                    upload_bytes(p, self.limits.max_bytes, name), name, self.limits
                )
            except ImageError as exc:
                self.too_large |= isinstance(exc, PhotoTooLarge)
                photo = exc
            yield self.subject, photo


def _enrol_public(
    svc: Services, watchlist: str, subject: str, auth: Authorisation | None, results: list[EnrolResult]
) -> EnrolPublic:
    """The answer to an enrolment: the entry as it now stands and each photo's outcome."""
    entry = next((e for e in svc.store.entries.all(watchlist) if same_name(e.name, subject)), None)
    tz = svc.clock.tz
    return EnrolPublic(
        watchlist=watchlist,
        subject=entry.name if entry is not None else subject,
        entry_status=entry.status if entry is not None else None,
        expires_at=isoformat_local(entry.expires_at if entry is not None else None, tz),
        valid_from=isoformat_local(auth.valid_from if auth is not None else None, tz),
        timezone=zone_name(tz),
        person_id=next((r.person_id for r in results if r.person_id is not None), None),
        linked=next((r.linked for r in results if r.linked), None),
        warnings=[f"{r.photo}: {w}" for r in results for w in r.warnings],  # which photo each is about
        photos=[
            EnrolPhotoPublic(
                photo=r.photo,
                status=r.status,
                reason=r.reason,
                quality=r.quality,
                faces=[FoundFacePublic(**f) for f in r.faces] if r.faces else None,
            )
            for r in results
        ],
    )


def upload_bytes(upload: UploadFile, max_bytes: int, name: str) -> bytes:
    """An uploaded file's bytes, from memory (the app keeps uploads in memory, see
    :func:`metrosight.api.middleware.keep_uploads_in_memory`).

    Raises:
        PhotoTooLarge: more than ``max_bytes`` (when the client sent no size).
    """
    upload.file.seek(0)
    data = upload.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PhotoTooLarge(name, f"file is larger than the {max_bytes / 1e6:g} MB limit (photos.max_file_mb)")
    return data


@router.post("/api/watchlists/{watchlist}/entries/{entry}/approve", response_model=EntryPublic)
def approve(watchlist: str, entry: str, actor: Approver, store: StoreDep) -> EntryPublic:
    """Activate a pending entry (or confirm an urgent one). The approver must not be who recorded it."""
    store.entries.approve(watchlist, entry, actor)
    return _entry(store, watchlist, entry)


@router.post("/api/watchlists/{watchlist}/entries/{entry}/revoke", response_model=EntryPublic)
def revoke(watchlist: str, entry: str, body: RevokeCreate, actor: Recorder, store: StoreDep) -> EntryPublic:
    """Stop matching an entry at once and destroy its templates; the reason is audited."""
    store.entries.revoke(watchlist, entry, actor, body.reason)
    return _entry(store, watchlist, entry)


@router.post("/api/watchlists/{watchlist}/shred", status_code=204, response_class=Response)
def shred(watchlist: str, body: ShredCreate, actor: Admin, store: StoreDep) -> Response:
    """Destroy the watchlist's key and templates (crypto-shredding; its crops become unreadable). Admin only."""
    if body.confirm != watchlist:
        raise PolicyError("to shred, repeat the watchlist's name in `confirm`")
    store.watchlists.shred(watchlist, actor)
    return Response(status_code=204)


@router.post(
    "/api/identify",
    response_model=list[IdentifyPublic],
    responses={
        413: {
            "description": "a photo file is larger than `photos.max_file_mb`, or no photo could be read and one "
            "of them declares more pixels than `photos.max_megapixels`"
        },
        422: {"description": "no photo could be read (each with its reason)"},
    },
    tags=["identify"],
)
def identify(
    actor: Identifier,
    svc: ServicesDep,
    photos: Annotated[list[UploadFile], File(description=f"1–{MAX_PHOTOS} photos to search")],
) -> JSONResponse:
    """Who on the active watchlists is in these photos (operator or admin), as ``metrosight identify --json``:
    per face the person, the best-scoring entry's list, and every list and authorisation the person is on
    (entries scoped to cameras or lines are not searched from photos). Audited; nothing about a face that
    matched no one is stored. Photos are read like enrolment's (by content, the pixel budget before decoding,
    damaged files named by format, in memory only): 200 when at least one photo was read, 422 when none could be
    (413 when one of them for its size)."""
    if not photos or len(photos) > MAX_PHOTOS:
        raise HTTPException(422, f"give 1 to {MAX_PHOTOS} photos")
    limits = svc.installation.photo_limits
    for i, p in enumerate(photos):
        if p.size is not None and p.size > limits.max_bytes:
            raise HTTPException(
                413,
                f"{_safe_name(p.filename, i)}: {p.size / 1e6:.0f} MB is larger than the "
                f"{limits.max_bytes / 1e6:g} MB limit for a photo (photos.max_file_mb)",
            )
    too_large = False

    def decoded() -> Iterator[Photo | ImageError]:
        nonlocal too_large
        for i, p in enumerate(photos):  # one decoded photo held at a time, never written to disk
            name = _safe_name(p.filename, i)
            try:
                yield decode_photo(upload_bytes(p, limits.max_bytes, name), name, limits)
            except ImageError as exc:
                too_large |= isinstance(exc, PhotoTooLarge)
                yield exc

    results = svc.identification.identify(decoded(), actor)
    body = [
        IdentifyPublic.model_validate({"photo": r.photo, "faces": r.faces, "error": r.error}).model_dump(mode="json")
        for r in results
    ]
    ok = any(r.error is None for r in results)
    return JSONResponse(body, status_code=200 if ok else 413 if too_large else 422)


def _entry(store: Store, watchlist: str, name: str) -> EntryPublic:
    return next(EntryPublic.model_validate(e) for e in store.entries.all(watchlist) if same_name(e.name, name))
