"""The in-process bus (the embedded default): synchronous publish to subscribers in the same process."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

from pydantic import BaseModel

log = logging.getLogger(__name__)

TOPIC_ALERTS = "alerts"
TOPIC_ALERT_UPDATES = "alert-updates"
TOPIC_CAMERA_STATE = "camera-state"
TOPIC_CAMERA_STATS = "camera-stats"
TOPIC_CAMERA_SNAPSHOT = "camera-snapshot"
TOPIC_EVENTS = "events"
TOPIC_EVENT_UPDATES = "event-updates"

Handler = Callable[[BaseModel], None]


class InProcessBus:
    """Topic → handlers. A handler that raises stops the publish (the caller sees the error: nothing is lost
    silently)."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    def subscribe(self, topic: str, handler: Handler) -> None:
        self._handlers[topic].append(handler)

    def publish(self, topic: str, payload: BaseModel) -> None:
        for handler in self._handlers.get(topic, ()):
            handler(payload)
