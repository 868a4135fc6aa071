"""Where a camera's outputs leave its host: one :class:`Outbox` protocol, one adapter per way out.

- :class:`BusOutbox`: onto a bus — the in-process bus of ``metrosight run`` (stored at once by the run's sinks) or
  the Redis Streams bus of a cluster worker (stored by the consumers).
- :class:`PipeOutbox`: over a node worker's pipe to its supervisor, as typed messages
  (:mod:`metrosight.pipeline.messages`), which the supervisor publishes on its own bus.

:class:`CameraOutputs` binds an outbox to one camera's processor: the processor publishes through its methods, and
the frame loop stamps each alert with the decode time of the frame that raised it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from metrosight.bus.base import Bus
from metrosight.bus.payloads import (
    AlertUpdateV1,
    AlertV1,
    CameraSnapshotV1,
    CameraStateV1,
    CameraStatsV1,
    EventUpdateV1,
    EventV1,
)
from metrosight.bus.topics import (
    ALERT_UPDATES,
    ALERTS,
    CAMERA_SNAPSHOT,
    CAMERA_STATE,
    CAMERA_STATS,
    EVENT_UPDATES,
    EVENTS,
)
from metrosight.pipeline.messages import (
    AlertRaised,
    AlertUpdated,
    EventRaised,
    EventUpdated,
    SnapshotTaken,
    StateChanged,
    StatsReported,
    WorkerMessage,
)


class Outbox(Protocol):
    """The way out of a host for what its cameras produce. ``frame_wall`` (Unix seconds, or None) is when the frame
    that raised an alert was decoded."""

    def alert(self, alert: AlertV1, frame_wall: float | None) -> None: ...

    def alert_update(self, update: AlertUpdateV1) -> None: ...

    def event(self, event: EventV1) -> None: ...

    def event_update(self, update: EventUpdateV1) -> None: ...

    def state(self, state: CameraStateV1) -> None: ...

    def stats(self, stats: CameraStatsV1) -> None: ...

    def snapshot(self, snapshot: CameraSnapshotV1) -> None: ...


class BusOutbox:
    """Publishes each output on its topic of ``bus``; ``on_alert`` is called after each alert is accepted."""

    def __init__(self, bus: Bus, on_alert: Callable[[AlertV1], None] | None = None) -> None:
        self.bus = bus
        self.on_alert = on_alert

    def alert(self, alert: AlertV1, frame_wall: float | None) -> None:
        self.bus.publish(ALERTS, alert)
        if self.on_alert is not None:
            self.on_alert(alert)

    def alert_update(self, update: AlertUpdateV1) -> None:
        self.bus.publish(ALERT_UPDATES, update)

    def event(self, event: EventV1) -> None:
        self.bus.publish(EVENTS, event)

    def event_update(self, update: EventUpdateV1) -> None:
        self.bus.publish(EVENT_UPDATES, update)

    def state(self, state: CameraStateV1) -> None:
        self.bus.publish(CAMERA_STATE, state)

    def stats(self, stats: CameraStatsV1) -> None:
        self.bus.publish(CAMERA_STATS, stats)

    def snapshot(self, snapshot: CameraSnapshotV1) -> None:
        self.bus.publish(CAMERA_SNAPSHOT, snapshot)


class PipeOutbox:
    """Sends each output as a :data:`~metrosight.pipeline.messages.WorkerMessage` through ``send`` (a node worker's
    pipe to its supervisor)."""

    def __init__(self, send: Callable[[WorkerMessage], None]) -> None:
        self.send = send

    def alert(self, alert: AlertV1, frame_wall: float | None) -> None:
        self.send(AlertRaised(alert, frame_wall))

    def alert_update(self, update: AlertUpdateV1) -> None:
        self.send(AlertUpdated(update))

    def event(self, event: EventV1) -> None:
        self.send(EventRaised(event))

    def event_update(self, update: EventUpdateV1) -> None:
        self.send(EventUpdated(update))

    def state(self, state: CameraStateV1) -> None:
        self.send(StateChanged(state))

    def stats(self, stats: CameraStatsV1) -> None:
        self.send(StatsReported(stats))

    def snapshot(self, snapshot: CameraSnapshotV1) -> None:
        self.send(SnapshotTaken(snapshot))


class CameraOutputs:
    """One camera's outputs into ``outbox``: what its processors call to publish. :meth:`at` (called by the frame
    loop before each frame) sets the decode time that alerts raised by that frame carry."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._frame_wall: float | None = None

    def at(self, frame_wall: float | None) -> None:
        """Alerts from now on were raised by a frame decoded at ``frame_wall`` (Unix seconds)."""
        self._frame_wall = frame_wall

    def alert(self, alert: AlertV1) -> None:
        self.outbox.alert(alert, self._frame_wall)

    def alert_update(self, update: AlertUpdateV1) -> None:
        self.outbox.alert_update(update)

    def event(self, event: EventV1) -> None:
        self.outbox.event(event)

    def event_update(self, update: EventUpdateV1) -> None:
        self.outbox.event_update(update)

    def state(self, state: CameraStateV1) -> None:
        self.outbox.state(state)
