"""The service layer's start-up step and its shared state: what every host and the API rely on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.services.models import Models
from metrosight.services.suite import Services
from tests.unit.fakes import ColourEmbedder, ScriptedDetector


class CountingStore:
    """The installation's store with the calls a camera's policy makes counted (like the cluster's cache)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self.inner, name)


def services(tmp_path: Path, **settings: object) -> Services:
    svc = Services.open(Home(tmp_path / "home"), Settings.model_validate(settings))
    return Services.of(svc.installation, Models(svc.settings, svc.home.cache, ScriptedDetector({}), ColourEmbedder()))


def test_open_creates_the_home_and_its_store(tmp_path: Path) -> None:
    svc = services(tmp_path)
    assert (tmp_path / "home" / "metrosight.db").is_file() and (tmp_path / "home" / "media").is_dir()
    assert svc.store is svc.installation.store and svc.settings is svc.installation.settings
    assert svc.enrolment.installation is svc.installation and svc.identification.matching is svc.matching


def test_a_camera_policy_reads_through_the_store_given_to_with_store(tmp_path: Path) -> None:
    """The cluster worker puts a cache in front of the store: every policy read of its cameras must go through
    it, and the models stay the ones already loaded."""
    svc = services(tmp_path, cameras=[{"id": "cam-1", "source": "rtsp://10.0.0.9/s", "line": "red"}])
    counting = CountingStore(svc.store)
    cached = svc.with_store(counting)  # type: ignore[arg-type]
    matcher, allowed = cached.live_policy("cam-1").current()
    assert allowed and len(matcher.gallery) == 0
    assert {"policy", "gallery"} <= set(counting.calls)  # store.policy.version/allows, store.gallery.active
    assert cached.models is svc.models and svc.store is not counting  # the original is left as it was


def test_a_changed_clock_is_seen_by_every_service(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from metrosight.core.when import Clock

    svc = services(tmp_path)
    svc.installation.clock = Clock(UTC, datetime(2030, 1, 1, tzinfo=UTC))
    assert svc.enrolment.installation.clock.now().year == 2030 and svc.matching.installation.clock.now().year == 2030
