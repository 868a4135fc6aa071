"""Alerts: list, detail, the redacted best-shot crop, two-person review, and the live feed (SSE)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from sqlalchemy.exc import SQLAlchemyError
from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from metrosight.api.deps import (
    ALERT_READERS,
    AlertReader,
    CropReader,
    Operator,
    RowId,
    StoreDep,
    services,
    signed_in_actor,
)
from metrosight.api.routes.alarms import alarm_public, step_public
from metrosight.api.schemas import (
    AlertDetailPublic,
    AlertPublic,
    RejectCreate,
    ReviewPublic,
    ReviewResult,
    SightingPublic,
)
from metrosight.api.state import AppState
from metrosight.bus.topics import ALERT_REVIEWS
from metrosight.policy.scope import View
from metrosight.store.db import StoreError
from metrosight.store.models import AlertRecord
from metrosight.store.repo import Store

router = APIRouter(tags=["alerts"])
log = logging.getLogger(__name__)

STATUSES = ("new", "confirmed_once", "actionable", "rejected")


def alert_public(
    a: AlertRecord, refs: dict[int, str | None] | None = None, cameras: list[str] | None = None
) -> AlertPublic:
    entries = list(a.entries or [])
    return AlertPublic(
        person_id=a.person_id,
        entries=entries,
        sightings=a.sightings or 1,
        cameras=cameras or [a.camera_id],
        watchlists=list(dict.fromkeys(e["watchlist"] for e in entries)) or [a.watchlist],
        first_at=a.first_at,
        last_at=a.last_at,
        id=a.id,
        event_id=a.event_id,
        camera_id=a.camera_id,
        track_id=a.track_id,
        subject_id=a.subject_id,
        subject_name=a.subject_name,
        watchlist=a.watchlist,
        category=a.category,
        score=a.score,
        distance=a.distance,
        first_seen=a.first_seen,
        last_seen=a.last_seen,
        samples=a.samples,
        status=a.status,
        has_crop=bool(a.crop_path),
        created_at=a.created_at,
        reference=(refs or {}).get(a.subject_id) if a.subject_id is not None else None,
        alarm=alarm_public(a),
    )


def alerts_public(store: Store, rows: list[AlertRecord], view: View) -> list[AlertPublic]:
    """Alerts as the reader of ``view`` sees them (rows already scoped by the store; their cameras too)."""
    refs = store.feed.entry_references([a.subject_id for a in rows if a.subject_id is not None])
    cams = store.feed.alert_cameras([a.id for a in rows], view)
    return [alert_public(a, refs, cams.get(a.id)) for a in rows]


@router.get("/api/alerts", response_model=list[AlertPublic])
def list_alerts(
    actor: AlertReader,
    store: StoreDep,
    status: Annotated[str | None, Query(pattern="^(new|confirmed_once|actionable|rejected)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AlertPublic]:
    """Alerts, newest first (metadata only), of the caller's scope. Audited."""
    return alerts_public(store, store.reviews.all(actor, status, limit), store.scoping.view(actor, ALERT_READERS))


@router.get(
    "/api/alerts/stream", response_class=EventSourceResponse, responses={200: {"content": {"text/event-stream": {}}}}
)
async def alert_stream(
    request: Request,
    actor: AlertReader,
    store: StoreDep,
    after: Annotated[int | None, Query(ge=0, le=2**62, description="deliver alerts with a larger id")] = None,
    last_event_id: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> EventSourceResponse:
    """Live feed (Server-Sent Events): ``alert`` events (an alert as in ``/api/alerts``) for each new alert, and
    again, with its new sighting count, whenever a sighting is appended to it (an actionable alert's operators are
    notified this way),
    ``status`` events (``{id, status, user, action}``) for each review, ``alarm`` events (``{id, step, alarm}``)
    for each step of an alarm (raised, claimed, released, taken over, acknowledged, escalated). New rows are read
    from the store (so alerts stored by other processes appear too) at once when the bus announces one, else every
    ``poll`` seconds. Only alerts (and alarms) of the caller's scope are sent, as they are in it; the scope is read
    again before every read, so a changed scope applies to an open feed at once. Every batch delivered is recorded
    in the audit log."""
    svc = services(request)
    start_alert, start_review = await run_in_threadpool(store.feed.last_ids)
    start_sighting = await run_in_threadpool(store.feed.last_sighting_id)
    start_step = await run_in_threadpool(store.alarms.last_step_id)
    if last_event_id and last_event_id.isdigit():
        after = int(last_event_id)
    if after is not None:
        start_alert = min(after, start_alert)
    await run_in_threadpool(store.audit.record, actor.name, "alert.stream", None, {"after": start_alert})
    return EventSourceResponse(
        _feed(request, svc, actor.name, start_alert, start_review, start_sighting, start_step),
        ping=15,
        headers={"Cache-Control": "no-store"},
    )


RETRY_MS = 2000  # the browser's reconnection delay after a dropped feed (sent in the first event)


async def _feed(
    request: Request,
    svc: AppState,
    user: str,
    last_alert: int,
    last_review: int,
    last_sighting: int = 0,
    last_step: int = 0,
) -> AsyncIterator[ServerSentEvent]:
    """The feed's loop. A failed read or audit write (the database busy or away) does not end the feed: nothing of
    that batch is sent (every delivery is audited first), and the same rows are tried again at the next wake-up.
    An alert that gained a sighting is sent again (same event, its new sighting count). Before each read the
    caller is read again (credentials, roles and scope): the rows read are those of their scope at that moment."""
    store = svc.services.store
    waiter = svc.hub.register()
    try:
        yield ServerSentEvent(event="hello", data=json.dumps({"after": last_alert}), retry=RETRY_MS)
        while True:
            try:
                reader = await run_in_threadpool(signed_in_actor, request, ALERT_READERS)
                if reader is None:
                    break  # the token was revoked, the password reset, the session ended: nothing more is sent
                view = store.scoping.view(reader, ALERT_READERS)
                rows = await run_in_threadpool(store.feed.alerts_after, last_alert, view)
                if rows:
                    await run_in_threadpool(
                        store.audit.record, user, "alert.stream_delivered", None, {"alert_ids": [a.id for a in rows]}
                    )
                    pubs = await run_in_threadpool(alerts_public, store, rows, view)
                    last_alert = rows[-1].id
                    for pub in pubs:
                        yield ServerSentEvent(event="alert", id=str(pub.id), data=pub.model_dump_json())
                upto, grown = await run_in_threadpool(store.feed.appended_after, last_sighting, last_alert, view)
                if grown:
                    await run_in_threadpool(
                        store.audit.record, user, "alert.stream_delivered", None, {"alert_ids": [a.id for a in grown]}
                    )
                    for pub in await run_in_threadpool(alerts_public, store, grown, view):
                        yield ServerSentEvent(event="alert", data=pub.model_dump_json())
                last_sighting = upto
                last_step, steps = await run_in_threadpool(_alarm_events, store, last_step, view)
                for ev in steps:
                    yield ev
                reviews = await run_in_threadpool(store.feed.reviews_after, last_review, view)
                for r, status in reviews:
                    last_review = r.id
                    yield ServerSentEvent(
                        event="status",
                        data=json.dumps({"id": r.alert_id, "status": status, "user": r.user, "action": r.action}),
                    )
            except (SQLAlchemyError, StoreError) as exc:
                log.warning("live feed of %s: %s; retrying", user, exc.__class__.__name__)
            if await request.is_disconnected():
                break
            with contextlib.suppress(TimeoutError):  # no news within the poll interval: look at the store again
                await asyncio.wait_for(waiter[1].wait(), timeout=svc.config.poll_seconds)
            waiter[1].clear()
    finally:
        svc.hub.unregister(waiter)


def _alarm_events(store: Store, after: int, view: View) -> tuple[int, list[ServerSentEvent]]:
    """``alarm`` events (``{id, step, alarm}``: the alert, the step taken, its alarm now) for alarm steps after
    ``after`` of alerts inside ``view``, and the newest step id read. No person's name: the alert itself comes as
    an ``alert`` event."""
    rows = store.alarms.steps_after(after, view)
    events = [
        ServerSentEvent(
            event="alarm",
            data=json.dumps(
                {
                    "id": a.id,
                    "step": step_public(t).model_dump(),
                    "alarm": alarm.model_dump() if (alarm := alarm_public(a)) is not None else None,
                }
            ),
        )
        for t, a in rows
    ]
    return (rows[-1][0].id if rows else after), events


@router.get("/api/alerts/{alert_id}", response_model=AlertDetailPublic)
def alert_detail(alert_id: RowId, actor: AlertReader, store: StoreDep) -> AlertDetailPublic:
    """One alert (an episode of one person): every list and authorisation they were matched on, every sighting
    (camera, times, score, whether a crop is stored), its reviews, and earlier rejected alerts of the same
    person. Audited."""
    a, reviews, earlier = store.reviews.detail(alert_id, actor)
    view = store.scoping.view(actor, ALERT_READERS)
    sightings = [
        SightingPublic(
            n=i,
            camera_id=sg.camera_id,
            track_id=sg.track_id,
            watchlist=sg.watchlist,
            score=sg.score,
            first_seen=sg.first_seen,
            last_seen=sg.last_seen,
            first_at=sg.first_at,
            last_at=sg.last_at,
            has_crop=bool(sg.crop_path),
        )
        for i, sg in enumerate(store.reviews.sightings(a.id, actor), 1)
    ]
    return AlertDetailPublic(
        **alerts_public(store, [a], view)[0].model_dump(),
        reviews=[ReviewPublic.model_validate(r) for r in reviews],
        earlier_rejections=[ReviewPublic.model_validate(r) for r in earlier],
        sighting_list=sightings,
        alarm_steps=[step_public(t) for t in store.alarms.history([a.id])[a.id]],
    )


@router.get(
    "/api/alerts/{alert_id}/crop",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {}, 410: {}},
)
def alert_crop(
    alert_id: RowId,
    actor: CropReader,
    store: StoreDep,
    sighting: Annotated[int | None, Query(ge=1, le=100000, description="the n-th sighting's crop")] = None,
) -> Response:
    """The redacted best-shot crop (JPEG; every other face blurred), decrypted; of the ``sighting``-th sighting
    when given. Each read is audited."""
    data = store.reviews.read_crop(alert_id, actor, sighting)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store, private"})


def announce_review(state: AppState, store: Store, alert_id: int, reviewer: str) -> None:
    """Publish a review just made for the outbound channels: on the bus the service's alarm steps go to (a Redis
    deployment's, else the app's). A bus that refuses it is logged; the review itself is stored."""
    bus = state.extras.get("alarm_bus", state.bus)
    payload = store.reviews.announcement(alert_id, reviewer)
    if bus is None or payload is None:
        return
    try:
        bus.publish(ALERT_REVIEWS, payload)
    except Exception:
        log.exception("the review of alert %d by %s could not be published to the channels", alert_id, reviewer)


@router.post("/api/alerts/{alert_id}/confirm", response_model=ReviewResult)
def confirm_alert(alert_id: RowId, actor: Operator, store: StoreDep, request: Request) -> ReviewResult:
    """Confirm an alert. A second, different operator's confirmation makes it *actionable*."""
    status = store.reviews.review(alert_id, actor, "confirm")
    announce_review(services(request), store, alert_id, actor.name)
    return ReviewResult(id=alert_id, status=status)


@router.post("/api/alerts/{alert_id}/reject", response_model=ReviewResult)
def reject_alert(
    alert_id: RowId, body: RejectCreate, actor: Operator, store: StoreDep, request: Request
) -> ReviewResult:
    """Reject an alert with a reason (kept as feedback for later alerts of the same entry)."""
    status = store.reviews.review(alert_id, actor, "reject", body.reason)
    announce_review(services(request), store, alert_id, actor.name)
    return ReviewResult(id=alert_id, status=status)
