"""The runs table seen from a host: one row per camera run, opened with the source as shown and closed once.

Every host (``run``, a node's supervisor, a cluster worker) opens and closes its camera runs here, so the source
stored is always :attr:`~metrosight.core.source.SourceSpec.display` — the address without its user, password or
credential parameters — and a run that cannot be closed is handled the same way everywhere.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from metrosight.core.source import SourceSpec
from metrosight.store.db import StoreError

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0  # between attempts to close a run on a store that cannot be written


@dataclass(frozen=True, slots=True)
class RunCounts:
    """What a camera run counted (the runs table's columns): frames analysed, faces, tracks, alert sightings."""

    frames: int = 0
    faces: int = 0
    tracks: int = 0
    alerts: int = 0


class RunTable(Protocol):
    """The store's run rows (``store.runs``, :class:`metrosight.store.runs.RunRepository`)."""

    def start(self, camera_id: str, source: str) -> int: ...

    def finish(
        self, run_id: int, status: str, frames: int, faces: int, tracks: int, alerts: int, error: str | None = None
    ) -> None: ...


class RunRows:
    """Opens and closes camera runs in ``runs``.

    Args:
        runs: the runs table (``store.runs``).
        wait_seconds: how long :meth:`close` keeps trying on a store that cannot be written (a full disk); 0 tries
            once. A run that stays open is closed as ``crashed`` by the next start on its host.
    """

    def __init__(self, runs: RunTable, wait_seconds: float = 0.0) -> None:
        self.runs = runs
        self.wait_seconds = wait_seconds

    def open(self, camera_id: str, source: SourceSpec) -> int:
        """A new ``running`` row for ``camera_id`` reading ``source``; returns its id. Only the source's display
        form (credentials removed) is stored."""
        return self.runs.start(camera_id, source.display)

    def close(self, run_id: int, status: str, counts: RunCounts, error: str | None) -> bool:
        """Close run ``run_id`` with ``status``, ``counts`` and ``error``; returns whether it was closed (else the
        failure is logged)."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                self.runs.finish(run_id, status, counts.frames, counts.faces, counts.tracks, counts.alerts, error)
                return True
            except (StoreError, SQLAlchemyError, OSError) as exc:
                if time.monotonic() >= deadline:
                    log.error("cannot close run %d (%s); the next start closes it as crashed", run_id, exc)
                    return False
                time.sleep(RETRY_SECONDS)
