"""One installation: its home, settings, clock and store, opened in one start-up step shared by every host and the
API (:meth:`Installation.open`)."""

from __future__ import annotations

from dataclasses import dataclass

from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.core.when import Clock
from metrosight.ingest.images import PhotoLimits
from metrosight.policy.scope import CameraGroups
from metrosight.store.repo import Store


@dataclass(slots=True)
class Installation:
    """An opened installation. ``store`` is the installation's store (keys loaded from the home, see
    :meth:`metrosight.store.repo.Store.for_home`); ``clock`` gives now and the zone typed dates are read in (tests
    may replace it: every service of the installation sees the change)."""

    home: Home
    settings: Settings
    clock: Clock
    store: Store

    @classmethod
    def open(cls, home: Home, settings: Settings, clock: Clock | None = None) -> Installation:
        """Create the home's folders (owner-only), open its store (master key, database) and close the runs of
        processes that were killed (they end as crashed).

        Raises:
            OSError: the home cannot be created. StoreError: the database cannot be opened or is too new/old.
        """
        home = home.ensure()
        clock = clock or Clock(settings.deployment.tz())
        store = Store.for_home(
            home.root,
            settings.storage.database_url,
            settings.privacy.max_entry_days,
            clock.tz,
            episode_window_s=settings.alerts.episode_window_s,
            group_window_s=settings.alerts.group_window_s,
            camera_groups=CameraGroups.of(settings.camera_group_members()),
        )
        store.runs.close_dead()  # runs of killed processes end as crashed at the next start
        return cls(home, settings, clock, store)

    @property
    def photo_limits(self) -> PhotoLimits:
        """The pixel budget and working size of still photos (``photos`` section of the configuration)."""
        return PhotoLimits.of(self.settings.photos)

    def camera_line(self, camera_id: str | None) -> str | None:
        """The configured camera's line, None for an unknown camera (or a photo)."""
        cam = self.settings.camera(camera_id)
        return cam.line if cam is not None else None

    def camera_group(self, camera_id: str | None) -> str | None:
        """The camera's episode group: its ``group`` (station), else its line, else None (the camera alone)."""
        cam = next((c for c in self.settings.cameras if c.id == camera_id), None)
        return None if cam is None else (cam.group or cam.line)
