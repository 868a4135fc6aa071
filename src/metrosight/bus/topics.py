"""The bus topics, each with the payload type it carries.

A :class:`Topic` is a typed constant: ``bus.publish(ALERTS, alert)`` type-checks only with an
:class:`~metrosight.bus.payloads.AlertV1`, and a handler subscribed to it receives one. Its :attr:`Topic.name` is
the wire name (the Redis stream is ``<prefix>:stream:<name>``), unchanged from the bare strings used before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from pydantic import BaseModel

from metrosight.bus.payloads import (
    AlarmV1,
    AlertReviewV1,
    AlertUpdateV1,
    AlertV1,
    CameraSnapshotV1,
    CameraStateV1,
    CameraStatsV1,
    EpisodeV1,
    EventUpdateV1,
    EventV1,
)

P = TypeVar("P", bound=BaseModel)


class TopicMismatch(TypeError):
    """A payload was published on a topic that carries another type; names both."""


@dataclass(frozen=True, slots=True)
class Topic(Generic[P]):
    """A topic: its wire ``name`` and the ``payload`` model every message on it is an instance of."""

    name: str
    payload: type[P]

    def __str__(self) -> str:
        return self.name

    def check(self, payload: BaseModel) -> P:
        """``payload`` when it is of this topic's type.

        Raises:
            TopicMismatch: it is not.
        """
        if not isinstance(payload, self.payload):
            raise TopicMismatch(f"topic {self.name} carries {self.payload.__name__}, not {type(payload).__name__}")
        return payload


ALERTS: Topic[AlertV1] = Topic("alerts", AlertV1)
ALERT_UPDATES: Topic[AlertUpdateV1] = Topic("alert-updates", AlertUpdateV1)
CAMERA_STATE: Topic[CameraStateV1] = Topic("camera-state", CameraStateV1)
CAMERA_STATS: Topic[CameraStatsV1] = Topic("camera-stats", CameraStatsV1)
CAMERA_SNAPSHOT: Topic[CameraSnapshotV1] = Topic("camera-snapshot", CameraSnapshotV1)  # in-process only
EVENTS: Topic[EventV1] = Topic("events", EventV1)
EVENT_UPDATES: Topic[EventUpdateV1] = Topic("event-updates", EventUpdateV1)
ALARMS: Topic[AlarmV1] = Topic("alarms", AlarmV1)  # alarm steps (claim, escalation …), published by `serve`
ALERT_REVIEWS: Topic[AlertReviewV1] = Topic("alert-reviews", AlertReviewV1)  # published where a review is made
EPISODES: Topic[EpisodeV1] = Topic("episodes", EpisodeV1)  # published by the host that stored the sighting

#: every topic, by wire name
TOPICS: Final[Mapping[str, Topic[BaseModel]]] = {
    t.name: t  # type: ignore[misc]
    for t in (
        ALERTS,
        ALERT_UPDATES,
        CAMERA_STATE,
        CAMERA_STATS,
        CAMERA_SNAPSHOT,
        EVENTS,
        EVENT_UPDATES,
        ALARMS,
        ALERT_REVIEWS,
        EPISODES,
    )
}

# the names used before topics were typed
TOPIC_ALERTS = ALERTS
TOPIC_ALERT_UPDATES = ALERT_UPDATES
TOPIC_CAMERA_STATE = CAMERA_STATE
TOPIC_CAMERA_STATS = CAMERA_STATS
TOPIC_CAMERA_SNAPSHOT = CAMERA_SNAPSHOT
TOPIC_EVENTS = EVENTS
TOPIC_EVENT_UPDATES = EVENT_UPDATES
