"""Cameras (state, rates, redacted snapshot), behaviour events (no identity), the audit log, users."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from metrosight.api.deps import AccountsDep, Admin, AnyUser, Auditor, RowId, SignedIn, StoreDep, services
from metrosight.api.routes.auth import client_ip, limited
from metrosight.api.schemas import (
    AuditEntryPublic,
    CameraPublic,
    EventPublic,
    OperatingPointPublic,
    PasswordUpdate,
    Role,
    UserCreate,
    UserPublic,
    UserUpdate,
    VerifyPublic,
)
from metrosight.core.names import human_name, identifier, same_name
from metrosight.policy.rules import Forbidden
from metrosight.policy.scope import Scope
from metrosight.recognize.normalize import CohortError
from metrosight.store.models import EventRecord
from metrosight.store.scoping import CAMERA_READERS

router = APIRouter()


# -- recognition operating point ----------------------------------------------------------------------------------
@router.get("/api/recognition", response_model=OperatingPointPublic, tags=["recognition"])
async def operating_point(actor: AnyUser, request: Request, store: StoreDep) -> OperatingPointPublic:
    """The match threshold in force: the target FPIR per search, the active persons it is computed for, how it was
    estimated (impostor pairs, method, resolution), each list's target and threshold (the lists of the caller's
    scope), the watchlist searches a day (face tracks: finished runs of the last 7 days, or the live cameras) and
    the expected false candidates a day."""

    try:
        op = await run_in_threadpool(services(request).operating_status)
    except CohortError as exc:
        raise HTTPException(409, str(exc)) from None
    view = store.scoping.view(actor, CAMERA_READERS)  # every role reads it
    if isinstance(op.get("lists"), Mapping):
        op = {**op, "lists": {k: v for k, v in op["lists"].items() if view.watchlist(k)}}
    return OperatingPointPublic(**op)


# -- cameras ------------------------------------------------------------------------------------------------------
@router.get("/api/cameras", response_model=list[CameraPublic], tags=["cameras"])
def list_cameras(actor: AnyUser, request: Request, store: StoreDep) -> list[CameraPublic]:
    """Every configured camera of the caller's scope: state (starting, live, reconnecting, down, stopped;
    ``configured`` before its first report), frames and faces a second, newest frame time, counters."""
    view = store.scoping.view(actor, CAMERA_READERS)
    return [CameraPublic(**row) for row in services(request).cameras.rows(view.camera)]


@router.get(
    "/api/cameras/{camera_id}/snapshot",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {}},
    tags=["cameras"],
)
def camera_snapshot(camera_id: str, actor: AnyUser, request: Request, store: StoreDep) -> Response:
    """The camera's newest whole-frame snapshot with every detected face blurred (downscaled; kept in memory
    only), else the newest stored behaviour-event snapshot of that camera (heads and faces blurred). A camera
    outside the caller's scope has none (404)."""
    camera_id = identifier(camera_id, "camera id")  # the one rule (422 with the reason otherwise)
    view = store.scoping.view(actor, CAMERA_READERS)
    board = services(request).cameras
    snap = board.snapshot(camera_id) if view.camera(camera_id) else None
    if snap is not None:
        return Response(snap[0], media_type="image/jpeg", headers={"Cache-Control": "no-store, private"})
    path = store.feed.latest_event_snapshot(camera_id, view)
    if path and Path(path).is_file():
        return Response(Path(path).read_bytes(), media_type="image/jpeg", headers={"Cache-Control": "no-store"})
    raise HTTPException(404, f"no snapshot of camera {camera_id!r} yet")


# -- behaviour events ---------------------------------------------------------------------------------------------
def _event_public(e: EventRecord) -> EventPublic:
    return EventPublic(
        id=e.id,
        event_id=e.event_id,
        camera_id=e.camera_id,
        kind=e.kind,
        start_ts=e.start_ts,
        end_ts=e.end_ts,
        track_id=e.track_id,
        data=e.data,
        has_snapshot=bool(e.snapshot_path),
        created_at=e.created_at,
    )


@router.get("/api/events", response_model=list[EventPublic], tags=["events"])
def list_events(
    actor: AnyUser,
    store: StoreDep,
    camera: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[EventPublic]:
    """Behaviour events (loitering, fast movement, crossings) of the caller's scope, newest first. They carry no
    identity."""
    camera = identifier(camera, "camera") if camera is not None else None  # 422 for an id that breaks the rule
    view = store.scoping.view(actor, CAMERA_READERS)
    return [_event_public(e) for e in store.feed.recent_events(camera, kind, limit, view=view)]


@router.get(
    "/api/events/{event_id}/snapshot",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {}},
    tags=["events"],
)
def event_snapshot(event_id: RowId, actor: AnyUser, store: StoreDep) -> Response:
    """An event's whole-frame snapshot (every head and face blurred); 404 outside the caller's scope."""
    e = store.feed.event(event_id, store.scoping.view(actor, CAMERA_READERS))
    if e is None or not e.snapshot_path or not Path(e.snapshot_path).is_file():
        raise HTTPException(404, f"event {event_id} has no snapshot")
    return Response(Path(e.snapshot_path).read_bytes(), media_type="image/jpeg", headers={"Cache-Control": "no-store"})


# -- audit --------------------------------------------------------------------------------------------------------
@router.get("/api/audit", response_model=list[AuditEntryPublic], tags=["audit"])
def audit_log(
    actor: Auditor, store: StoreDep, limit: Annotated[int, Query(ge=1, le=5000)] = 200
) -> list[AuditEntryPublic]:
    """The newest audit entries, oldest first (auditor or admin). The read itself is recorded."""
    rows = store.audit.entries(actor, limit)
    store.audit.record(actor.name, "audit.read", None, {"entries": len(rows)})
    return [
        AuditEntryPublic(
            seq=e.seq,
            at=e.at,
            actor=e.actor,
            action=e.action,
            target=e.target,
            details=json.loads(e.details),
            hash=e.hash,
        )
        for e in rows
    ]


@router.post("/api/audit/verify", response_model=VerifyPublic, tags=["audit"])
async def audit_verify(actor: Auditor, store: StoreDep) -> VerifyPublic:
    """Check the hash chain; reports the first broken link after any edit, deletion or reordering, then every
    governed row (approval, template, alert review or status) the keyed log does not back (``mismatches``)."""
    res = await run_in_threadpool(store.audit.verify)
    await run_in_threadpool(
        store.audit.record, actor.name, "audit.verify", None, {"ok": res.ok, "checked": res.checked}
    )
    return VerifyPublic(
        ok=res.ok, checked=res.checked, broken_seq=res.broken_seq, reason=res.reason, mismatches=list(res.mismatches)
    )


# -- users --------------------------------------------------------------------------------------------------------
@router.get("/api/users", response_model=list[UserPublic], tags=["users"])
def list_users(actor: Admin, accounts: AccountsDep) -> list[UserPublic]:
    """Users and their roles (admin)."""
    return [UserPublic.model_validate(u) for u in accounts.users(actor)]


@router.post("/api/users", response_model=UserPublic, status_code=201, tags=["users"])
def add_user(body: UserCreate, actor: Admin, accounts: AccountsDep) -> UserPublic:
    """Add a user (admin); with a password they can sign in to the UI. Audited."""
    name = human_name(body.name, "user name")  # NFC, trimmed; look-alikes of existing users are refused (409)
    accounts.add_user(name, list(body.roles), body.password, actor, parse_scopes(body.scopes))
    return next(UserPublic.model_validate(u) for u in accounts.users(actor) if same_name(u.name, name))


@router.patch("/api/users/{name}", response_model=UserPublic, tags=["users"])
def update_user(name: str, body: UserUpdate, actor: Admin, accounts: AccountsDep) -> UserPublic:
    """Change a user's roles, their scopes, or disable/enable them (admin). Audited; a scope change applies to the
    user's next request and to their open live feeds within seconds."""
    roles: list[str] | None = list(body.roles) if body.roles is not None else None
    scopes = parse_scopes(body.scopes) if body.scopes is not None else None
    return UserPublic.model_validate(accounts.update_user(name, actor, roles, body.disabled, scopes))


def parse_scopes(body: Mapping[Role, list[str]] | None) -> dict[str, Scope]:
    """The scopes of a request body (role → items); InvalidInput (422) for an item that cannot be read."""
    return {role: Scope.parse(items) for role, items in (body or {}).items()}


@router.put(
    "/api/users/{name}/password",
    status_code=204,
    response_class=Response,
    tags=["users"],
    responses={403: {}, 409: {}, 429: {}},
)
def set_password(name: str, body: PasswordUpdate, actor: SignedIn, accounts: AccountsDep, request: Request) -> Response:
    """Set a password: your own (with `current_password`), or reset anyone's as an admin. Ends that user's
    sessions and revokes their API tokens. After a reset the account holds no role until its user sets their own
    password. Wrong current passwords count towards the sign-in rate limit. Audited."""

    svc = services(request)
    own, ip = same_name(actor.name, name), client_ip(request)
    if own:
        limited(svc, name, ip)
    try:
        accounts.set_password(name, body.password, actor, body.current_password)
    except Forbidden:
        if own:
            svc.limiter.failed(name, ip)
            svc.signin_audit.failed(name, ip)
        raise
    if own:
        svc.limiter.succeeded(name, ip)
    return Response(status_code=204)
