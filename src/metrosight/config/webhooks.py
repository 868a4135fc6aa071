"""The ``outbound.webhooks`` section: how outbound webhooks are delivered (subscriptions live in the database)."""

from __future__ import annotations

from pydantic import Field

from metrosight.config.common import Section


class WebhooksConfig(Section):
    """Delivery of outbound webhooks (see README "Outbound webhooks")."""

    enabled: bool = Field(True, description="deliver to the subscriptions in the database (false: nothing is queued)")
    timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="connect, send and read timeouts of one delivery attempt, seconds each"
    )
    max_response_bytes: int = Field(
        4096, ge=0, le=1_048_576, description="at most this much of a receiver's response is read (kept in the log)"
    )
    backoff_initial_seconds: float = Field(2.0, gt=0, le=3600, description="wait before the first retry, seconds")
    backoff_max_seconds: float = Field(300.0, gt=0, le=86_400, description="longest wait between two attempts, seconds")
    jitter_seconds: float = Field(
        2.0,
        ge=0,
        le=3600,
        description="a random 0…jitter seconds added to each wait (receivers coming back are not stormed)",
    )
    give_up_hours: float = Field(
        24.0, gt=0, le=8760, description="a delivery still failing this long after it was queued is marked dead"
    )
    workers: int = Field(2, ge=1, le=32, description="delivery threads per process")
    poll_seconds: float = Field(1.0, gt=0, le=60, description="how often an idle delivery thread looks for work")
    drain_seconds: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="at the end of `metrosight run`, how long queued deliveries are still attempted",
    )
    keep_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="delivered, cancelled and dead deliveries and their log are purged this many days after",
    )
