"""All the services of one installation, opened together: what the CLI, the API and every host hold."""

from __future__ import annotations

from dataclasses import dataclass, replace

from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.core.when import Clock
from metrosight.services.enrolment import Enrolment
from metrosight.services.identification import Identification
from metrosight.services.installation import Installation
from metrosight.services.live_policy import LivePolicy, PolicySource
from metrosight.services.matching import Matching
from metrosight.services.models import Models
from metrosight.store.repo import Store


@dataclass(frozen=True, slots=True)
class Services:
    """One installation's services. ``home``, ``settings``, ``clock`` and ``store`` are the installation's (see
    :class:`~metrosight.services.installation.Installation`); the models load on first use. ``policy``: where the
    running cameras' policy reads go (None: the store's ``store.policy``; see :meth:`with_policy`)."""

    installation: Installation
    models: Models
    matching: Matching
    enrolment: Enrolment
    identification: Identification
    policy: PolicySource | None = None

    @classmethod
    def open(cls, home: Home, settings: Settings, clock: Clock | None = None) -> Services:
        """Open the installation (:meth:`Installation.open`) and build its services.

        Raises:
            OSError: the home cannot be created. StoreError: the database cannot be opened.
        """
        installation = Installation.open(home, settings, clock)
        return cls.of(installation, Models(settings, installation.home.cache, store=installation.store.gallery))

    @classmethod
    def of(cls, installation: Installation, models: Models) -> Services:
        """The services of an opened installation, with ``models`` (shared when given)."""
        matching = Matching(installation, models)
        return cls(
            installation,
            models,
            matching,
            Enrolment(installation, models, matching),
            Identification(installation, models, matching),
        )

    def with_policy(self, policy: PolicySource) -> Services:
        """The same services (same store, same models) whose running cameras read their policy through ``policy``
        (e.g. the cluster's cache in front of ``store.policy``)."""
        return replace(self, policy=policy)

    def live_policy(self, camera_id: str) -> LivePolicy:
        """The policy of a camera that starts running now."""
        return LivePolicy(self.installation, self.matching, camera_id, self.policy)

    @property
    def home(self) -> Home:
        return self.installation.home

    @property
    def settings(self) -> Settings:
        return self.installation.settings

    @property
    def clock(self) -> Clock:
        return self.installation.clock

    @property
    def store(self) -> Store:
        return self.installation.store
