"""Outbound webhooks (admins): subscriptions, the delivery log and retries. Every change is audited by the store;
a subscription's signing secret is in the response that creates it and nowhere else."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from metrosight.api.deps import Admin, RowId, StoreDep
from metrosight.outbound.events import EventType
from metrosight.outbound.webhooks import add_subscription, ping

router = APIRouter(tags=["webhooks"])

Label = Annotated[str, Field(min_length=1, max_length=128)]
DeliveryState = Literal["pending", "delivering", "delivered", "dead", "cancelled"]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=128, description="what receives it")
    url: str = Field(..., min_length=1, max_length=2048, description="http:// or https:// (kept encrypted)")
    event_types: list[EventType] = Field(default_factory=list, max_length=6, description="empty: every type")
    watchlists: list[Label] = Field(default_factory=list, max_length=100)
    categories: list[Label] = Field(default_factory=list, max_length=100)
    camera_groups: list[Label] = Field(default_factory=list, max_length=100)


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool


class WebhookPublic(BaseModel):
    """A subscription (its URL without credentials; never its secret)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    url: str
    event_types: list[str]
    watchlists: list[str]
    categories: list[str]
    camera_groups: list[str]
    enabled: bool
    created_at: datetime
    created_by: str
    removed_at: datetime | None
    pending: int
    dead: int
    delivered: int


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="the signing secret: shown in this response only, never again")


class DeliveryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    subscription_id: int
    event_id: str
    event_type: str
    idempotency_key: str
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    last_latency_ms: float | None
    finished_at: datetime | None


class AttemptPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    at: datetime
    status_code: int | None
    latency_ms: float
    error: str | None


class Retried(BaseModel):
    queued: int


class Pinged(BaseModel):
    """How the receiver answered a test request."""

    delivered: bool
    status_code: int | None
    latency_ms: float
    error: str | None


def _give_up(request: Request) -> timedelta:
    return timedelta(hours=request.app.state.services.services.settings.outbound.webhooks.give_up_hours)


@router.get("/api/webhooks", response_model=list[WebhookPublic])
def list_webhooks(actor: Admin, store: StoreDep, removed: bool = False) -> list[WebhookPublic]:
    """Webhooks with their filters and deliveries counted by state (admin)."""
    return [WebhookPublic.model_validate(w) for w in store.webhooks.all(actor, include_removed=removed)]


@router.post("/api/webhooks", response_model=WebhookCreated, status_code=201)
def create_webhook(body: WebhookCreate, actor: Admin, store: StoreDep) -> WebhookCreated:
    """Subscribe a receiver (admin). The response holds the signing secret, shown this once. Audited."""
    info, secret = add_subscription(
        store.webhooks,
        actor,
        body.name,
        body.url,
        body.event_types,
        body.watchlists,
        body.categories,
        body.camera_groups,
    )
    return WebhookCreated.model_validate({**WebhookPublic.model_validate(info).model_dump(), "secret": secret})


@router.patch("/api/webhooks/{webhook_id}", response_model=WebhookPublic)
def update_webhook(webhook_id: RowId, body: WebhookUpdate, actor: Admin, store: StoreDep) -> WebhookPublic:
    """Pause (``enabled: false``) or resume a webhook (admin). Audited."""
    store.webhooks.set_enabled(actor, webhook_id, body.enabled)
    return next(WebhookPublic.model_validate(w) for w in store.webhooks.all(actor) if w.id == webhook_id)


@router.delete("/api/webhooks/{webhook_id}", status_code=204, response_class=Response)
def remove_webhook(webhook_id: RowId, actor: Admin, store: StoreDep) -> Response:
    """Remove a webhook: URL and secret destroyed, queued deliveries cancelled, log kept (admin). Audited."""
    store.webhooks.remove(actor, webhook_id)
    return Response(status_code=204)


@router.get("/api/webhooks/deliveries", response_model=list[DeliveryPublic])
def list_deliveries(
    actor: Admin,
    store: StoreDep,
    webhook: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    state: DeliveryState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[DeliveryPublic]:
    """The delivery log, newest first (admin): state, attempts, last status, latency, error; never a body."""
    return [DeliveryPublic.model_validate(d) for d in store.webhooks.deliveries(actor, webhook, state, limit)]


@router.get("/api/webhooks/deliveries/{delivery_id}/attempts", response_model=list[AttemptPublic])
def list_attempts(delivery_id: RowId, actor: Admin, store: StoreDep) -> list[AttemptPublic]:
    """Every attempt of one delivery (admin)."""
    return [AttemptPublic.model_validate(a) for a in store.webhooks.attempts(actor, delivery_id)]


@router.post("/api/webhooks/deliveries/{delivery_id}/retry", response_model=Retried)
def retry_delivery(delivery_id: RowId, actor: Admin, store: StoreDep, request: Request) -> Retried:
    """Queue a dead delivery again, at once (admin; 409 unless it is dead). Audited."""
    return Retried(queued=store.webhooks.retry(actor, delivery_id, None, _give_up(request)))


@router.post("/api/webhooks/{webhook_id}/test", response_model=Pinged)
def test_webhook(webhook_id: RowId, actor: Admin, store: StoreDep, request: Request) -> Pinged:
    """Send the webhook a signed test request now (type ``ping``; not queued, not retried) and say how the
    receiver answered (admin). Audited."""
    cfg = request.app.state.services.services.settings.outbound.webhooks
    out = ping(store.webhooks, actor, webhook_id, cfg)
    return Pinged(
        delivered=out.delivered, status_code=out.status_code, latency_ms=round(out.latency_ms, 1), error=out.error
    )


@router.post("/api/webhooks/{webhook_id}/retry", response_model=Retried)
def retry_webhook(webhook_id: RowId, actor: Admin, store: StoreDep, request: Request) -> Retried:
    """Queue every dead delivery of a webhook again, at once (admin). Audited."""
    return Retried(queued=store.webhooks.retry(actor, None, webhook_id, _give_up(request)))
