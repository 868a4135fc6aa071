"""The in-process bus (the embedded default): synchronous publish to subscribers in the same process."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from metrosight.bus.topics import (  # noqa: F401 - the topic constants, where callers have imported them from
    TOPIC_ALERT_UPDATES,
    TOPIC_ALERTS,
    TOPIC_CAMERA_SNAPSHOT,
    TOPIC_CAMERA_STATE,
    TOPIC_CAMERA_STATS,
    TOPIC_EVENT_UPDATES,
    TOPIC_EVENTS,
    P,
    Topic,
)

log = logging.getLogger(__name__)


class InProcessBus:
    """Topic → handlers. A handler that raises stops the publish (the caller sees the error: nothing is lost
    silently)."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Callable[[Any], object]]] = defaultdict(list)

    def subscribe(self, topic: Topic[P], handler: Callable[[P], object]) -> None:
        self._handlers[topic.name].append(handler)

    def publish(self, topic: Topic[P], payload: P) -> None:
        """Call every handler of ``topic`` with ``payload``.

        Raises:
            TopicMismatch: ``payload`` is not of the topic's type.
        """
        topic.check(payload)
        for handler in self._handlers.get(topic.name, ()):
            handler(payload)
