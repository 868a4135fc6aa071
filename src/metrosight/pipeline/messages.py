"""What a node's worker process sends its supervisor over its pipe: a tagged union of small frozen dataclasses.

Each message is one of the classes below (the class is the tag; the supervisor dispatches with ``match``); the
payloads inside are the bus payloads (:mod:`metrosight.bus.payloads`), so what a worker reports is what the node
publishes. Frames never cross the pipe; the largest message is a redacted snapshot or best-shot crop.
"""

from __future__ import annotations

from dataclasses import dataclass

from metrosight.bus.payloads import (
    AlertUpdateV1,
    AlertV1,
    CameraSnapshotV1,
    CameraStateV1,
    CameraStatsV1,
    EventUpdateV1,
    EventV1,
)
from metrosight.pipeline.runs import RunCounts


@dataclass(frozen=True, slots=True)
class Ready:
    """The worker loaded its models and starts its cameras."""

    worker: int


@dataclass(frozen=True, slots=True)
class StateChanged:
    """A camera changed state."""

    state: CameraStateV1


@dataclass(frozen=True, slots=True)
class AlertRaised:
    """A sighting; ``frame_wall`` is the Unix time the frame that raised it was decoded (alert latency)."""

    alert: AlertV1
    frame_wall: float | None


@dataclass(frozen=True, slots=True)
class AlertUpdated:
    """An alerted track ended: its final last-seen time."""

    update: AlertUpdateV1


@dataclass(frozen=True, slots=True)
class EventRaised:
    """A behaviour event (cameras under ``analytics.cameras``)."""

    event: EventV1


@dataclass(frozen=True, slots=True)
class EventUpdated:
    """A behaviour event's episode ended."""

    update: EventUpdateV1


@dataclass(frozen=True, slots=True)
class StatsReported:
    """A camera's counters (every ``node.stats_interval_seconds`` and when it stops)."""

    stats: CameraStatsV1


@dataclass(frozen=True, slots=True)
class SnapshotTaken:
    """A camera's newest frame, downscaled, every detected face blurred (for the operator UI)."""

    snapshot: CameraSnapshotV1


@dataclass(frozen=True, slots=True)
class CameraFinished:
    """A camera ended (its file ended, it gave up, or the worker stops): what its run row is closed with."""

    camera_id: str
    status: str
    error: str | None
    counts: RunCounts


@dataclass(frozen=True, slots=True)
class Fatal:
    """The worker failed; ``message`` says why (it exits with code 1)."""

    worker: int
    message: str


@dataclass(frozen=True, slots=True)
class Bye:
    """The worker's last message."""

    worker: int


WorkerMessage = (
    Ready
    | StateChanged
    | AlertRaised
    | AlertUpdated
    | EventRaised
    | EventUpdated
    | StatsReported
    | SnapshotTaken
    | CameraFinished
    | Fatal
    | Bye
)
