"""The policy reads a running camera makes every refresh period: has what may be matched changed (the gallery
version), is identification switched off here now (no-identification windows), and retiring expired entries."""

from __future__ import annotations

from datetime import datetime

from metrosight.store import version
from metrosight.store.entries import EntryRepository
from metrosight.store.uow import UnitOfWork
from metrosight.store.windows import WindowRepository


class PolicyReads:
    """``store.policy``: what a camera's live policy (and the cluster's shared cache of it) reads."""

    def __init__(self, uow: UnitOfWork, entries: EntryRepository, windows: WindowRepository) -> None:
        self.uow = uow
        self.entries = entries
        self.windows = windows

    def version(self) -> int:
        """The gallery version: bumped by every change to what may be matched (entries, templates, keys, windows,
        persons)."""
        with self.uow.read() as s:
            return version.current(s)

    def allows(self, camera_id: str | None, line: str | None, now: datetime | None = None) -> bool:
        """False while a no-identification window covers this camera (or line)."""
        return self.windows.allows(camera_id, line, now)

    def expire_due(self, now: datetime | None = None) -> int:
        """Retire the entries whose expiry has passed (:meth:`EntryRepository.expire_due`); how many."""
        return self.entries.expire_due(now)
