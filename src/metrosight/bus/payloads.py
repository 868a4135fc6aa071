"""Typed, versioned payloads that travel on the bus. Frames never travel; a small redacted JPEG crop may."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertV1(_Payload):
    """A track matched an active watchlist entry."""

    version: Literal[1] = 1
    event_id: str
    camera_id: str
    track_id: int
    subject_id: int
    subject: str
    watchlist: str
    category: str
    score: float
    distance: float
    first_seen: float = Field(description="media time, seconds")
    last_seen: float = Field(description="media time, seconds")
    samples: int
    crop_jpeg: bytes | None = Field(None, description="redacted best-shot crop, JPEG")
    run_id: int | None = None


class AlertUpdateV1(_Payload):
    """The track of an alert ended; its final last-seen time."""

    version: Literal[1] = 1
    event_id: str
    last_seen: float
