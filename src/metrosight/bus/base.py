"""The bus interface and the wire codec shared by its adapters.

A bus carries typed, versioned payloads (:mod:`metrosight.bus.payloads`) on typed topics (:mod:`metrosight.bus.topics`:
each topic names the one payload type it carries). Frames never travel on
it; the largest thing that does is a small redacted JPEG crop. Two adapters implement :class:`Bus`:
:class:`~metrosight.bus.inproc.InProcessBus` (the embedded default: synchronous, one process) and
:class:`~metrosight.bus.redis_streams.RedisStreamsBus` (many processes and machines: at-least-once delivery, so
every handler must be idempotent — alerts and events are keyed by their ``event_id``).

On the wire (Redis) a payload is a flat map: ``type`` (the payload class name, e.g. ``AlertV1``), ``json`` (every
field except bytes, as JSON), ``t`` (Unix time of publishing, seconds) and one raw ``b:<field>`` entry per bytes
field (no base64: Redis values are binary-safe).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Final, Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError

from metrosight.bus.payloads import (
    AlarmV1,
    AlertReviewV1,
    AlertUpdateV1,
    AlertV1,
    CameraStateV1,
    CameraStatsV1,
    EpisodeV1,
    EventUpdateV1,
    EventV1,
)
from metrosight.bus.topics import (
    TOPIC_ALERT_UPDATES,
    TOPIC_ALERTS,
    TOPIC_CAMERA_STATE,
    TOPIC_CAMERA_STATS,
    TOPIC_EVENT_UPDATES,
    TOPIC_EVENTS,
    P,
    Topic,
)

__all__ = [
    "PAYLOAD_TYPES",
    "TOPIC_ALERTS",
    "TOPIC_ALERT_UPDATES",
    "TOPIC_CAMERA_STATE",
    "TOPIC_CAMERA_STATS",
    "TOPIC_EVENTS",
    "TOPIC_EVENT_UPDATES",
    "Bus",
    "Handler",
    "PayloadError",
    "Retry",
    "Topic",
    "decode",
    "encode",
]

Handler = Callable[[BaseModel], None]

PAYLOAD_TYPES: Final[Mapping[str, type[BaseModel]]] = {
    cls.__name__: cls
    for cls in (
        AlertV1,
        AlertUpdateV1,
        EventV1,
        EventUpdateV1,
        CameraStateV1,
        CameraStatsV1,
        AlarmV1,
        AlertReviewV1,
        EpisodeV1,
    )
}


class PayloadError(ValueError):
    """A message on the bus cannot be decoded (unknown type, bad JSON, invalid fields); names what is wrong."""


class Retry(Exception):
    """Raised by a handler that cannot handle a message *yet* (e.g. an update whose alert is not stored yet): the
    message stays pending and is delivered again later."""


@runtime_checkable
class Bus(Protocol):
    """Publish typed payloads on topics; subscribe handlers to topics.

    ``publish`` returns once the bus has accepted the payload (in-process: once every handler ran; Redis: once the
    server appended it to the stream); a payload not of the topic's type raises
    :class:`~metrosight.bus.topics.TopicMismatch`. Handlers must be idempotent: the Redis adapter delivers at least
    once.
    """

    def publish(self, topic: Topic[P], payload: P) -> None: ...

    def subscribe(self, topic: Topic[P], handler: Callable[[P], object]) -> None: ...


def encode(payload: BaseModel, now: float | None = None) -> dict[str, bytes]:
    """The wire form of ``payload`` (see the module docstring)."""
    name = type(payload).__name__
    if name not in PAYLOAD_TYPES:
        raise PayloadError(f"{name} is not a bus payload type (known: {', '.join(sorted(PAYLOAD_TYPES))})")
    data = payload.model_dump(mode="python")
    fields: dict[str, bytes] = {}
    for key in [k for k, v in data.items() if isinstance(v, bytes)]:
        fields[f"b:{key}"] = data.pop(key)
    fields["type"] = name.encode()
    fields["json"] = json.dumps(data, separators=(",", ":"), default=str).encode()
    fields["t"] = repr(time.time() if now is None else now).encode()
    return fields


def decode(fields: Mapping[bytes | str, bytes | str]) -> tuple[BaseModel, float | None]:
    """The payload and its publishing time (Unix seconds, None if absent) from a wire map.

    Raises:
        PayloadError: unknown type, malformed JSON or fields the payload model refuses.
    """
    f = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
    raw_type = f.get("type")
    name = raw_type.decode(errors="replace") if isinstance(raw_type, bytes) else raw_type
    cls = PAYLOAD_TYPES.get(name or "")
    if cls is None:
        raise PayloadError(f"unknown payload type {name!r}")
    try:
        raw = f.get("json", b"{}")
        data = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"{name}: malformed JSON ({exc})") from None
    if not isinstance(data, dict):
        raise PayloadError(f"{name}: JSON body is not an object")
    for key, value in f.items():
        if key.startswith("b:"):
            data[key[2:]] = value if isinstance(value, bytes) else value.encode()
    try:
        payload = cls.model_validate(data)
    except ValidationError as exc:
        raise PayloadError(f"{name}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    t = f.get("t")
    try:
        sent = float(t.decode() if isinstance(t, bytes) else t) if t is not None else None
    except ValueError:
        sent = None
    return payload, sent
