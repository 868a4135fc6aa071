"""A running camera's policy: its matcher (the entries active now and in its scope) and whether identification is
allowed (no-identification windows), kept current while it runs."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Protocol

from metrosight.recognize.gallery import Matcher
from metrosight.services.installation import Installation
from metrosight.services.matching import Matching

STALE_SECONDS = 30.0  # rebuild at least this often: validity windows that opened or closed


class PolicySource(Protocol):
    """The policy reads a running camera makes every refresh period: the store's
    (:class:`metrosight.store.policy.PolicyReads`, ``store.policy``) or a cache in front of them (the cluster's
    :class:`~metrosight.pipeline.consumer.SharedPolicyReads`)."""

    def version(self) -> int:
        """The gallery version: changes whenever what may be matched changes."""
        ...

    def allows(self, camera_id: str | None, line: str | None, now: datetime | None = None) -> bool:
        """False while a no-identification window covers this camera (or line)."""
        ...

    def expire_due(self, now: datetime | None = None) -> int:
        """Retire the entries whose expiry has passed; how many (0: nothing changed)."""
        ...


class LivePolicy:
    """Keeps a running camera's gallery and no-identification state current: re-reads them at most every
    ``privacy.policy_refresh_seconds`` (wall clock) when the store's gallery version changed, an entry's expiry or
    window boundary passed. Approvals, revocations, expiries and windows thus apply within that period.

    ``policy``: where the policy reads go (default: the installation's ``store.policy``); the matcher's gallery is
    always read from the installation's store."""

    def __init__(
        self, installation: Installation, matching: Matching, camera_id: str, policy: PolicySource | None = None
    ) -> None:
        self.policy: PolicySource = policy if policy is not None else installation.store.policy
        self.matching = matching
        self.camera_id = camera_id
        self.line = installation.camera_line(camera_id)
        self.every = installation.settings.privacy.policy_refresh_seconds
        self._checked = self._built = 0.0
        self._version = -1
        self._state: tuple[Matcher, bool] | None = None

    def current(self) -> tuple[Matcher, bool]:
        """``(matcher, identification allowed)`` read now."""
        self._version = self.policy.version()
        self._checked = self._built = time.monotonic()
        self._state = (
            self.matching.matcher(self.camera_id),
            self.policy.allows(self.camera_id, self.line),
        )
        return self._state

    def poll(self) -> tuple[Matcher, bool] | None:
        """A new ``(matcher, identification allowed)`` when something changed, else None. Cheap between checks."""
        now = time.monotonic()
        if now - self._checked < self.every:
            return None
        self._checked = now
        old = self._state
        version = self.policy.version()
        allowed = self.policy.allows(self.camera_id, self.line)
        stale = now - self._built > STALE_SECONDS
        if version != self._version or self.policy.expire_due() or old is None or stale:
            return self.current()
        if allowed != old[1]:
            self._state = (old[0], allowed)
            return self._state
        return None
