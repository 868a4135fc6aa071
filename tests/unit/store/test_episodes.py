"""Alert episodes: a person's sightings close in time on one camera, or on cameras of one group, are one alert
with one two-person review; a rejected episode is never extended; an actionable one is, and says so."""

import json
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from metrosight.bus.payloads import AlertV1
from metrosight.core.types import Category, EntryRef, Match
from metrosight.policy.rules import Actor, Authorisation
from metrosight.store.models import AlertRecord, Sighting
from metrosight.store.repo import Store
from metrosight.store.retention import Retention

ADMIN = Actor("ada", frozenset({"admin", "approver", "operator", "auditor"}))
BOB = Actor("bob", frozenset({"approver", "operator"}))
OP1 = Actor("olga", frozenset({"operator"}))
OP2 = Actor("oleg", frozenset({"operator"}))
T0 = 1_800_000_000.0  # a Unix time


def vec(seed):
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture()
def store(tmp_path):
    s = Store.for_home(tmp_path, episode_window_s=60, group_window_s=120)
    s.watchlists.create("wanted", Category.WANTED, ADMIN)
    s.watchlists.create("missing", Category.MISSING, ADMIN)
    for wl, ref in (("wanted", "R-1"), ("missing", "R-2")):
        person = None if wl == "wanted" else s.persons.person_of("wanted", "Ann")
        s.entries.enroll(
            wl,
            "Ann",
            vec(1),
            "m",
            f"{wl}.jpg",
            wl[0] * 64,
            0.9,
            ADMIN,
            Authorisation("order", "court", ref, datetime.now(UTC) + timedelta(days=9)),
            person_id=person,
        )
        s.entries.approve(wl, "Ann", BOB)
    return s


def sighting(store, event, camera="cam-1", origin=T0, first=1.0, last=2.0, group=None, wl="wanted", score=0.95):
    entry = next(e for e in store.entries.all(wl) if e.name == "Ann")
    refs = tuple(
        EntryRef(e.id, "Ann", e.watchlist, Category(e.watchlist)) for e in store.entries.all() if e.name == "Ann"
    )
    m = Match(entry.id, "Ann", wl, Category(wl), score, 0.3, entry.person_id, "Ann", refs)
    return store.alerts.store_sighting(
        AlertV1.of_match(
            m,
            camera_id=camera,
            track_id=1,
            first_seen=first,
            last_seen=last,
            event_id=event,
            samples=3,
            group=group,
            media_origin=origin,
        ),
        None,
    )


def test_a_track_broken_by_a_pillar_extends_the_alert(store):
    a = sighting(store, "c:r:1", first=0.0, last=1.3)
    b = sighting(store, "c:r:2", first=2.5, last=3.9)
    assert a.opened and not b.opened and b.alert_id == a.alert_id and b.sightings == 2
    [row] = store.alerts.all()
    assert (row.first_seen, row.last_seen, row.sightings) == (0.0, 3.9, 2)
    assert (row.first_at, row.last_at) == (T0, T0 + 3.9)
    assert {e["watchlist"] for e in row.entries} == {"wanted", "missing"}
    assert {e["reference"] for e in row.entries} == {"R-1", "R-2"}


def test_same_camera_after_the_window_is_a_new_alert(store):
    a = sighting(store, "c:r:1", first=0.0, last=1.0)
    b = sighting(store, "c:r:2", first=62.0, last=63.0)
    assert b.opened and b.alert_id != a.alert_id


def test_cameras_of_one_group_form_one_episode_others_do_not(store):
    ids = {
        sighting(store, f"cam-{i}:r:1", camera=f"cam-{i}", origin=T0 + 20 * i, group="red").alert_id for i in range(5)
    }
    assert len(ids) == 1
    [aid] = ids
    assert store.alerts.cameras(aid) == [f"cam-{i}" for i in range(5)]
    other_group = sighting(store, "x:r:1", camera="cam-9", group="blue")
    no_group = sighting(store, "y:r:1", camera="cam-8")
    assert other_group.opened and no_group.opened
    far = sighting(store, "z:r:1", camera="cam-7", origin=T0 + 82 + 120, group="red")  # seen from T0 + 203
    assert far.opened  # 121 s after the episode's last sighting (T0 + 80 + 2)


def test_one_two_person_review_covers_every_sighting(store):
    aid = sighting(store, "a:r:1", camera="a", group="red").alert_id
    sighting(store, "b:r:1", camera="b", group="red")
    assert store.reviews.review(aid, OP1, "confirm") == "confirmed_once"
    # half-way through the review the episode takes no new evidence: OP2's confirmation covers only what OP1 saw
    mid = sighting(store, "c:r:1", camera="c", group="red")
    assert mid.opened and mid.alert_id != aid and mid.status == "new"
    assert store.reviews.review(aid, OP2, "confirm") == "actionable"
    assert [sg.event_id for sg in store.alerts.sightings(aid)] == ["a:r:1", "b:r:1"]
    later = sighting(store, "d:r:1", camera="d", group="red", origin=T0 + 30)
    assert later.alert_id == aid and later.status == "actionable" and later.sightings == 3
    notes = [json.loads(e.details) for e in store.audit.entries() if e.action == "alert.sighting"]
    assert [n["operators_notified"] for n in notes] == [False, True]
    assert store.count(AlertRecord) == 2 and store.count(Sighting) == 4


def test_a_rejected_episode_is_never_extended(store):
    aid = sighting(store, "a:r:1").alert_id
    store.reviews.review(aid, OP1, "reject", "not her")
    again = sighting(store, "a:r:2", first=5.0, last=6.0)
    assert again.opened and again.alert_id != aid
    _, _, earlier = store.reviews.detail(again.alert_id, OP1)
    assert [r.reason for r in earlier] == ["not her"]  # the rejection shows as feedback


def test_redelivery_is_a_no_op_and_updates_extend_sighting_and_alert(store):
    a = sighting(store, "a:r:1", first=1.0, last=2.0)
    again = sighting(store, "a:r:1", first=1.0, last=2.0)
    assert not again.new and again.alert_id == a.alert_id and store.count(Sighting) == 1
    store.alerts.extend("a:r:1", 7.5)
    store.alerts.extend("a:r:1", 4.0)  # never backwards
    [row] = store.alerts.all()
    [sg] = store.alerts.sightings(row.id)
    assert (sg.last_seen, sg.last_at, row.last_seen, row.last_at) == (7.5, T0 + 7.5, 7.5, T0 + 7.5)
    assert store.alerts.has("a:r:1") and not store.alerts.has("a:r:9")


def test_purge_removes_every_sighting_crop(store, tmp_path):
    crops = []
    for i in range(2):
        p = tmp_path / f"crop{i}.enc"
        p.write_bytes(b"x")
        crops.append(p)
        entry = next(e for e in store.entries.all("wanted"))
        m = Match(entry.id, "Ann", "wanted", Category.WANTED, 0.95, 0.3, entry.person_id, "Ann")
        store.alerts.store_sighting(
            AlertV1.of_match(
                m,
                camera_id="cam",
                track_id=i,
                first_seen=1.0 + i,
                last_seen=2.0 + i,
                event_id=f"e{i}",
                samples=2,
                group=None,
                media_origin=T0,
            ),
            str(p),
        )
    assert store.count(AlertRecord) == 1
    counts = store.retention.purge(
        Retention(0.0000001, None, None, None), ADMIN, now=datetime.now(UTC) + timedelta(days=1)
    )
    assert counts["alerts"] == 1 and not any(p.exists() for p in crops) and store.count(Sighting) == 0


def test_no_camera_clock_uses_the_time_of_storage(store):
    a = sighting(store, "a:r:1", origin=None)
    assert abs(store.alerts.all()[0].first_at - time.time()) < 60 and a.opened


def test_a_run_s_sightings_are_listed_with_the_person(store):
    run = store.runs.start("cam-1", "x.mp4")
    entry = next(e for e in store.entries.all("wanted"))
    m = Match(entry.id, "Ann", "wanted", Category.WANTED, 0.95, 0.3, entry.person_id, "Ann")
    for i in range(2):
        store.alerts.store_sighting(
            AlertV1.of_match(
                m,
                camera_id="cam-1",
                track_id=i,
                first_seen=3.0 * i,
                last_seen=3.0 * i + 1,
                event_id=f"r:{i}",
                samples=2,
                group=None,
                media_origin=T0,
                run_id=run,
            ),
            None,
        )
    assert [(n, sg.first_seen) for n, sg in store.alerts.run_sightings(run)] == [("Ann", 0.0), ("Ann", 3.0)]


def test_a_line_written_in_another_case_or_script_is_the_same_group(store):
    """Cameras of line `Red` and of line `red` (or Cyrillic `Rеd`) are on one line by the identifier rule (scopes
    say so too): their sightings of one person form one episode, not one alert per spelling (red team)."""
    a = sighting(store, "a:r:1", camera="cam-1", group="Red")
    b = sighting(store, "b:r:1", camera="cam-2", origin=T0 + 10, group="red")
    c = sighting(store, "c:r:1", camera="cam-3", origin=T0 + 20, group="R\u0435d")  # Cyrillic e
    assert a.opened and not b.opened and not c.opened and len({a.alert_id, b.alert_id, c.alert_id}) == 1
    d = sighting(store, "d:r:1", camera="CAM-1", origin=T0 + 200)  # no group: the camera's own, typed in capitals
    e = sighting(store, "e:r:1", camera="cam-1", origin=T0 + 210)
    assert d.opened and not e.opened and e.alert_id == d.alert_id
