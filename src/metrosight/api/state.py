"""What the operator service's routes share: the settings of the service itself (:class:`ApiConfig`) and, one per app,
the installation and the live state (:class:`AppState`, reached from a request through
:func:`metrosight.api.deps.services`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from prometheus_client import CollectorRegistry

from metrosight.api.live import AlertHub, CameraBoard
from metrosight.api.security import EndedSessions, LoginLimiter, SignInAudit
from metrosight.bus.inproc import InProcessBus
from metrosight.services.suite import Services
from metrosight.store.accounts import Accounts

StartupHook = Callable[["AppState"], Callable[[], None] | None]


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """Settings of the service itself.

    Attributes:
        session_max_age: seconds a UI session lasts (the cookie's signature expires with it).
        secure_cookies: mark the session cookie ``Secure`` (serve over HTTPS, e.g. behind a reverse proxy).
        poll_seconds: the live feed reads new alerts from the store at least this often.
        login_max_failures / login_max_per_ip / login_window: the sign-in rate limit (see ``LoginLimiter``).
        max_body_bytes: largest request body, except photo uploads.
        max_upload_bytes: largest photo-upload request body (each photo is limited on its own by
            ``photos.max_file_mb``); uploads are held in memory, never on disk.
        alarm_tick_seconds: how often the alarm clock escalates due alarms and publishes alarm steps.
    """

    session_max_age: int = 8 * 3600
    secure_cookies: bool = False
    poll_seconds: float = 0.5
    login_max_failures: int = 5
    login_max_per_ip: int = 30
    login_window: float = 300.0
    max_body_bytes: int = 1 << 20
    max_upload_bytes: int = 5 * 40 * (1 << 20) + (1 << 20)
    alarm_tick_seconds: float = 1.0


@dataclass(slots=True)
class AppState:
    """What the routes share: the installation and the live state. One per app."""

    services: Services
    accounts: Accounts
    config: ApiConfig
    hub: AlertHub
    cameras: CameraBoard
    limiter: LoginLimiter
    signin_audit: SignInAudit
    ended: EndedSessions
    bus: InProcessBus | None
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)  # the app's, made once it exists
    extras: dict[str, Any] = field(default_factory=dict)
    sign_in_slots: anyio.CapacityLimiter | None = None  # password checks at a time (routes/auth.py)
    started: float = field(default_factory=time.monotonic)  # when the app was built (live search rate)

    def operating_status(self) -> dict[str, Any]:
        """The recognition operating point (:meth:`~metrosight.services.matching.Matching.operating_status`) with
        the live cameras' search rate."""
        tracks = sum(int(t.get("tracks", 0)) for t in self.cameras.totals().values())
        return self.services.matching.operating_status(live_tracks=tracks, live_seconds=time.monotonic() - self.started)
