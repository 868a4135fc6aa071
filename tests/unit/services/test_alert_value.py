"""One alert value from the matcher to the store: the matcher's match becomes an :class:`AlertV1` once (the bus
payload, unchanged on the wire), and that same value is what the store keeps — person, entries, score, times, run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from metrosight.bus.payloads import AlertV1
from metrosight.core.types import Category, EntryRef, Match, Rival
from metrosight.policy.rules import Actor, Authorisation
from metrosight.services.sinks import AlertSink
from metrosight.store.repo import Store

ADMIN = Actor("ada", frozenset({"admin", "approver", "operator"}))
BOB = Actor("bob", frozenset({"approver", "operator"}))
WIRE_FIELDS = {
    "version", "event_id", "camera_id", "track_id", "subject_id", "subject", "watchlist", "category", "score",
    "distance", "first_seen", "last_seen", "samples", "crop_jpeg", "run_id", "person_id", "person", "entries",
    "group", "media_origin", "candidates",
}  # fmt: skip


def enrolled(tmp_path: Path) -> tuple[Store, Match]:
    """A store with Ann on two lists (one person) and the match a camera's matcher gives for her."""
    store = Store.for_home(tmp_path)
    auth = Authorisation("order", "court", "R-1", datetime.now(UTC) + timedelta(days=9))
    for wl, cat in (("wanted", Category.WANTED), ("missing", Category.MISSING)):
        store.watchlists.create(wl, cat, ADMIN)
        person = None if wl == "wanted" else store.persons.person_of("wanted", "Ann")
        v = np.random.default_rng(1).normal(size=128).astype(np.float32)
        store.entries.enroll(
            wl, "Ann", v / np.linalg.norm(v), "m", f"{wl}.jpg", wl[0] * 64, 0.9, ADMIN, auth, person_id=person
        )
        store.entries.approve(wl, "Ann", BOB)
    rows = sorted((e for e in store.entries.all() if e.name == "Ann"), key=lambda e: e.watchlist != "missing")
    refs = tuple(EntryRef(e.id, "Ann", e.watchlist, Category(e.watchlist), "R-1") for e in rows)
    first = next(e for e in rows if e.watchlist == "missing")
    rival = Rival(77, "Bea", "wanted", 0.61)
    return store, Match(
        first.id, "Ann", "missing", Category.MISSING, 0.6123456, 0.88, first.person_id, "Ann", refs, (rival,)
    )


def test_the_bus_payload_is_unchanged_on_the_wire(tmp_path: Path) -> None:
    _, m = enrolled(tmp_path)
    alert = AlertV1.of_match(
        m, event_id="cam-1:r:1", camera_id="cam-1", track_id=4, first_seen=1.23456, last_seen=2.5, samples=3
    )
    wire = json.loads(alert.model_dump_json())
    assert set(wire) == WIRE_FIELDS and wire["version"] == 1
    assert AlertV1.model_validate_json(alert.model_dump_json()) == alert
    assert (alert.score, alert.first_seen, alert.watchlists) == (0.6123, 1.235, ("missing", "wanted"))
    assert [c.name for c in alert.candidates] == ["Bea"]


def test_the_store_keeps_the_alert_the_camera_raised(tmp_path: Path) -> None:
    store, m = enrolled(tmp_path)
    run = store.runs.start("cam-1", "file.mp4")
    alert = AlertV1.of_match(
        m,
        event_id="cam-1:r:1",
        camera_id="cam-1",
        track_id=4,
        first_seen=1.0,
        last_seen=2.0,
        samples=3,
        run_id=run,
        media_origin=1_800_000_000.0,
    )
    stored = AlertSink(store, tmp_path / "media", None).on_alert(alert)
    assert stored is not None and stored.opened
    [row] = store.alerts.all(run)
    [sighting] = store.alerts.sightings(stored.alert_id)
    got = (row.subject_name, row.subject_id, row.watchlist, row.category, row.score, row.run_id, row.person_id)
    assert got == ("Ann", m.subject_id, "missing", "missing", 0.6123, run, m.person_id)
    assert sorted(e["watchlist"] for e in row.entries) == ["missing", "wanted"]
    assert sighting.event_id == "cam-1:r:1"
    assert (sighting.first_at, sighting.last_at, sighting.run_id) == (1_800_000_001.0, 1_800_000_002.0, run)
