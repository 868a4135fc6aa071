"""The service layer's start-up step and its shared state: what every host and the API rely on."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.services.live_policy import PolicySource
from metrosight.services.models import Models
from metrosight.services.suite import Services
from tests.unit.fakes import ColourEmbedder, ScriptedDetector


class CountingPolicy:
    """The store's policy reads with the calls a camera's policy makes counted (like the cluster's cache)."""

    def __init__(self, inner: PolicySource) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def version(self) -> int:
        self.calls.append("version")
        return self.inner.version()

    def allows(self, camera_id: str | None, line: str | None, now: datetime | None = None) -> bool:
        self.calls.append("allows")
        return self.inner.allows(camera_id, line, now)

    def expire_due(self, now: datetime | None = None) -> int:
        self.calls.append("expire_due")
        return self.inner.expire_due(now)


def services(tmp_path: Path, **settings: object) -> Services:
    svc = Services.open(Home(tmp_path / "home"), Settings.model_validate(settings))
    return Services.of(svc.installation, Models(svc.settings, svc.home.cache, ScriptedDetector({}), ColourEmbedder()))


def test_open_creates_the_home_and_its_store(tmp_path: Path) -> None:
    svc = services(tmp_path)
    assert (tmp_path / "home" / "metrosight.db").is_file() and (tmp_path / "home" / "media").is_dir()
    assert svc.store is svc.installation.store and svc.settings is svc.installation.settings
    assert svc.enrolment.installation is svc.installation and svc.identification.matching is svc.matching


def test_a_camera_policy_reads_through_the_source_given_to_with_policy(tmp_path: Path) -> None:
    """The cluster worker puts a cache in front of the store's policy reads: every policy read of its cameras must
    go through it, and the store and models stay the ones already opened."""
    svc = services(tmp_path, cameras=[{"id": "cam-1", "source": "rtsp://10.0.0.9/s", "line": "red"}])
    counting = CountingPolicy(svc.store.policy)
    cached = svc.with_policy(counting)
    policy = cached.live_policy("cam-1")
    matcher, allowed = policy.current()
    assert allowed and len(matcher.gallery) == 0
    assert counting.calls == ["version", "allows"]
    policy.every = 0.0  # poll now: the version, the windows and expiries are read through the cache too
    policy.poll()
    assert counting.calls[2:] == ["version", "allows", "expire_due"]
    assert cached.models is svc.models and cached.store is svc.store
    assert svc.live_policy("cam-1").policy is svc.store.policy  # the original is left as it was


def test_a_changed_clock_is_seen_by_every_service(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from metrosight.core.when import Clock

    svc = services(tmp_path)
    svc.installation.clock = Clock(UTC, datetime(2030, 1, 1, tzinfo=UTC))
    assert svc.enrolment.installation.clock.now().year == 2030 and svc.matching.installation.clock.now().year == 2030
