"""The alert and event sinks of every host (run, node parent, cluster consumer) name their files by hashes: a
camera id that arrives from a bus payload, whatever it holds, never leads a file out of the home."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from metrosight.bus.payloads import AlertV1, EventV1
from metrosight.services.sinks import AlertSink, EventSink
from metrosight.store.episodes import SightingStored

HOSTILE = ["../../../x", "a/b", "/abs/olute", "..", "a\x00b", "x" * 300, "Платформа 1", "red/platform 1"]


class FakeStore:
    """The repositories the sinks use: ``watchlists.encrypt_for``, ``alerts.store_sighting``, ``events.save``;
    what they were given is kept in ``stored_alerts`` and ``stored_events``."""

    def __init__(self) -> None:
        self.stored_alerts: list[tuple[str, str | None]] = []
        self.stored_events: list[tuple[str, str | None]] = []
        self.watchlists = SimpleNamespace(encrypt_for=lambda watchlist, data: b"sealed:" + data)
        self.alerts = SimpleNamespace(store_sighting=self._store_sighting)
        self.events = SimpleNamespace(save=self._save_event)

    def _store_sighting(self, alert, crop_path, run_id=None):  # type: ignore[no-untyped-def]
        self.stored_alerts.append((alert.camera_id, crop_path))
        return SightingStored(len(self.stored_alerts), True, True, 1, "new")

    def _save_event(self, event_id, camera_id, kind, start_ts, end_ts, track_id, data, path, run_id):  # type: ignore[no-untyped-def]
        self.stored_events.append((camera_id, path))
        return True


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.parametrize("camera", HOSTILE)
def test_an_alert_crop_is_written_inside_the_home_and_kept(tmp_path, camera):
    home = tmp_path / "home"
    media = home / "media"
    store = FakeStore()
    AlertSink(store, media, None).on_alert(
        AlertV1(
            event_id=f"{camera}:scope:12.0",
            camera_id=camera,
            track_id=1,
            subject_id=1,
            subject="Eve",
            watchlist="wl",
            category="wanted",
            score=0.97,
            distance=0.2,
            first_seen=1.0,
            last_seen=2.0,
            samples=2,
            crop_jpeg=b"\xff\xd8x",
        )
    )
    [(cam, crop)] = store.stored_alerts
    assert cam == camera and crop is not None  # the best shot is kept
    assert Path(crop).resolve().is_relative_to(media.resolve()) and Path(crop).read_bytes() == b"sealed:\xff\xd8x"
    assert [p.resolve() for p in files_under(tmp_path)] == [Path(crop).resolve()]


@pytest.mark.parametrize("camera", HOSTILE)
def test_an_event_snapshot_is_written_inside_the_home_and_kept(tmp_path, camera):
    media = tmp_path / "home" / "media"
    store = FakeStore()
    EventSink(store, media).on_event(
        EventV1(
            event_id=f"{camera}:e:1",
            camera_id=camera,
            kind="loitering",
            start_ts=1.0,
            snapshot_jpeg=b"\xff\xd8y",
        )
    )
    [(cam, path)] = store.stored_events
    assert cam == camera and path is not None
    assert Path(path).resolve().is_relative_to(media.resolve())
    assert [p.resolve() for p in files_under(tmp_path)] == [Path(path).resolve()]
