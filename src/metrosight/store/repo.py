"""The store: one repository per aggregate, sharing one audited unit of work (:mod:`metrosight.store.uow`).

Nothing outside the store touches a database session: every read and change goes through a repository of
:class:`Store` (``store.watchlists.create(…)``, ``store.entries.approve(…)``, ``store.alerts.store_sighting(…)``),
and every change writes its audit entry in its own transaction.
"""

from __future__ import annotations

import atexit
import os
import weakref
from datetime import UTC, tzinfo
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from metrosight.policy.crypto import KeyRing, load_master_key
from metrosight.policy.scope import NO_GROUPS, CameraGroups
from metrosight.store.accounts import Accounts
from metrosight.store.alarms import AlarmRepository
from metrosight.store.auditing import AuditRepository
from metrosight.store.db import StoreError, open_engine
from metrosight.store.entries import EntryRepository
from metrosight.store.episodes import AlertRepository
from metrosight.store.errors import Conflict, NotFound
from metrosight.store.events import EventRepository
from metrosight.store.feed import Feed
from metrosight.store.gallery import GalleryRepository
from metrosight.store.identities import Identities
from metrosight.store.outbox import Outbox
from metrosight.store.persons import PersonRepository
from metrosight.store.policy import PolicyReads
from metrosight.store.preferences import PreferenceRepository
from metrosight.store.retention import RetentionRepository
from metrosight.store.reviews import ReviewRepository
from metrosight.store.runs import RunRepository
from metrosight.store.second_factor import SecondFactors
from metrosight.store.uow import UnitOfWork
from metrosight.store.users import UserRepository
from metrosight.store.watchlists import WatchlistRepository
from metrosight.store.webhooks import WebhookRepository
from metrosight.store.windows import WindowRepository

__all__ = ["CHECKPOINTS_ENV", "Conflict", "NotFound", "Store", "checkpoint_path"]

CHECKPOINTS_ENV = "METROSIGHT_AUDIT_CHECKPOINTS"


def checkpoint_path(root: Path) -> Path:
    """Where a home's audit checkpoints go: ``METROSIGHT_AUDIT_CHECKPOINTS`` or ``<home>/audit.checkpoints``."""
    env = os.environ.get(CHECKPOINTS_ENV)
    return Path(env).expanduser() if env else root / "audit.checkpoints"


def _checkpoint_at_exit(ref: weakref.ReferenceType[Store]) -> None:
    """At a normal exit: the store (if still alive) signs the newest audit head this process wrote."""
    st = ref()
    if st is not None:
        st.checkpoint()


class Store:
    """The composition root of the store: its repositories over one database, keyring and audit chain.

    Attributes:
        uow: the shared unit of work (sessions, audit chain); repositories only.
        users, accounts: users; their passwords and API tokens.
        identities: people signing in through an OpenID provider (issuer + subject) and the users they act as.
        second_factor: their TOTP second factors and recovery codes.
        watchlists, entries, gallery: watchlists and their keys; entries and their templates; what may be matched.
        persons: which entries are one person.
        alerts, reviews, feed: alert episodes and sightings; their reviews and audited reads; live-view reads.
        alarms: watchlists' alert policies; alerts' alarms (claim, acknowledge, escalation) and their steps.
        runs, events: camera runs; behaviour events.
        windows: no-identification windows.
        policy: what running cameras re-read (gallery version, windows, expiry).
        webhooks, outbox: webhook subscriptions and their delivery log (admins); the durable outbox (workers).
        audit, retention: the audit log (reads, verification, standalone entries); the retention purge.
        scoping: the camera groups and each reader's view (``scoping.view(actor, roles)``), which every read of
            alerts, sightings, crops, events and snapshots takes (:mod:`metrosight.store.scoping`).

    Args:
        engine: the database.
        keyring: encrypts templates and crops with a key per watchlist; the audit chain's keys derive from it.
        checkpoints: the audit log's signed checkpoint file (see :mod:`metrosight.audit.log`); None keeps none.
        max_entry_days: the longest an entry may be authorised for.
        tz: the deployment's time zone (``deployment.timezone``): the last allowed expiry is the end of the day
            ``max_entry_days`` from now there.
        episode_window_s: a person's match on the same camera this soon after their alert extends it.
        group_window_s: a person's matches on cameras of one group this close in time form one episode.
        camera_groups: the configuration's camera groups (users' scopes name them; every read of a scoped user is
            filtered by them, see :mod:`metrosight.store.scoping`).
    """

    def __init__(
        self,
        engine: Engine,
        keyring: KeyRing,
        checkpoints: Path | None = None,
        max_entry_days: int = 365,
        tz: tzinfo = UTC,
        episode_window_s: float = 60.0,
        group_window_s: float = 120.0,
        camera_groups: CameraGroups = NO_GROUPS,
    ) -> None:
        self.uow = uow = UnitOfWork(engine, keyring, checkpoints, camera_groups)
        self.scoping = uow.scoping
        self.users = UserRepository(uow)
        self.accounts = Accounts(uow, self.users)
        self.identities = Identities(uow)
        self.second_factor = SecondFactors(uow)
        self.audit = AuditRepository(uow)
        self.watchlists = WatchlistRepository(uow)
        self.entries = EntryRepository(uow, max_entry_days, tz)
        self.gallery = GalleryRepository(uow, self.entries, self.audit)
        self.persons = PersonRepository(uow)
        self.alerts = AlertRepository(uow, episode_window_s, group_window_s)
        self.reviews = ReviewRepository(uow, self.watchlists)
        self.alarms = AlarmRepository(uow)
        self.feed = Feed(uow)
        self.runs = RunRepository(uow)
        self.events = EventRepository(uow)
        self.windows = WindowRepository(uow)
        self.policy = PolicyReads(uow, self.entries, self.windows)
        self.preferences = PreferenceRepository(uow)
        self.retention = RetentionRepository(uow, self.entries)
        self.webhooks = WebhookRepository(uow)
        self.outbox = Outbox(uow)
        atexit.register(_checkpoint_at_exit, weakref.ref(self))  # commands and services sign their head at exit

    @property
    def engine(self) -> Engine:
        return self.uow.engine

    @property
    def keyring(self) -> KeyRing:
        return self.uow.keyring

    @classmethod
    def for_home(
        cls,
        root: Path,
        url: str | None = None,
        max_entry_days: int = 365,
        tz: tzinfo = UTC,
        episode_window_s: float = 60.0,
        group_window_s: float = 120.0,
        camera_groups: CameraGroups = NO_GROUPS,
    ) -> Store:
        """The store of a home directory (SQLite there unless ``url`` is given); the audit checkpoints go to
        ``METROSIGHT_AUDIT_CHECKPOINTS`` or ``<home>/audit.checkpoints``."""
        engine = open_engine(url or f"sqlite:///{root / 'metrosight.db'}")
        return cls(
            engine,
            KeyRing(load_master_key(root)),
            checkpoint_path(root),
            max_entry_days,
            tz,
            episode_window_s=episode_window_s,
            group_window_s=group_window_s,
            camera_groups=camera_groups,
        )

    def checkpoint(self) -> None:
        """Sign the newest audit head this process wrote into the checkpoint file (at the end of a command)."""
        self.uow.checkpoint()

    def count(self, model: type) -> int:
        """How many rows the table of ``model`` (a :mod:`metrosight.store.models` class) holds."""
        try:
            with self.uow.read() as s:
                return int(s.scalar(select(func.count()).select_from(model)) or 0)
        except SQLAlchemyError as exc:
            raise StoreError(str(exc)) from None
