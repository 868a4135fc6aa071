"""The API side of persons and episodes: enrolling the same person on a second list links them, `/api/identify`
names the person once with every list, and an alert lists its sightings (each crop readable)."""

import time

from metrosight.bus.payloads import AlertV1
from metrosight.services.sinks import AlertSink
from tests.unit.api.conftest import Api, photo
from tests.unit.api.test_api import enrol, make_watchlist


def two_lists(api: Api) -> int:
    make_watchlist(api, "wl")
    assert api.as_("ada", "POST", "/api/watchlists", json={"name": "missing", "category": "missing"}).status_code == 201
    first = enrol(api, "ada", 1, "Eve", "wl").json()
    second = enrol(api, "ada", 1, "Eve", "missing").json()
    assert second["person_id"] == first["person_id"] and "same name and face" in second["linked"]
    for wl in ("wl", "missing"):
        assert api.as_("bob", "POST", f"/api/watchlists/{wl}/entries/Eve/approve").status_code == 200
    return first["person_id"]


def test_identify_names_the_person_once_with_both_lists(api: Api):
    person = two_lists(api)
    res = api.as_("carol", "POST", "/api/identify", files=[("photos", ("probe.png", photo(1), "image/png"))])
    assert res.status_code == 200, res.text
    [result] = res.json()
    [face] = [f for f in result["faces"] if f["subject"]]
    assert face["person_id"] == person and face["subject"] == "Eve"
    assert sorted(face["watchlists"]) == ["missing", "wl"] and len(face["entries"]) == 2
    assert (
        api.as_("vic", "POST", "/api/identify", files=[("photos", ("p.png", photo(1), "image/png"))]).status_code == 403
    )
    assert "identify" in api.actions()


def test_an_alert_lists_its_sightings(api: Api):
    two_lists(api)
    sink = AlertSink(api.rt.store, api.rt.home.media, None)
    entry = next(e for e in api.rt.store.entries.all("wl") if e.name == "Eve")
    origin = time.time()
    for i, (first, last) in enumerate(((0.0, 1.2), (2.4, 3.9))):  # one walk past, the track broken by a pillar
        sink.on_alert(
            AlertV1(
                event_id=f"cam-1:run:0.{i}",
                camera_id="cam-1",
                track_id=i,
                subject_id=entry.id,
                subject="Eve",
                watchlist="wl",
                category="wanted",
                score=0.95,
                distance=0.3,
                first_seen=first,
                last_seen=last,
                samples=3,
                crop_jpeg=b"\xff\xd8crop" + bytes([i]),
                person_id=entry.person_id,
                media_origin=origin,
            )
        )
    [alert] = api.as_("carol", "GET", "/api/alerts").json()
    assert alert["sightings"] == 2 and alert["cameras"] == ["cam-1"] and alert["last_seen"] == 3.9
    detail = api.as_("carol", "GET", f"/api/alerts/{alert['id']}").json()
    assert [s["first_seen"] for s in detail["sighting_list"]] == [0.0, 2.4]
    crop = api.as_("carol", "GET", f"/api/alerts/{alert['id']}/crop?sighting=2")
    assert crop.status_code == 200 and crop.content == b"\xff\xd8crop\x01"
    assert api.as_("carol", "GET", f"/api/alerts/{alert['id']}/crop?sighting=3").status_code == 404


def test_identify_shows_both_of_two_different_persons_who_look_alike(api: Api):
    """Two different persons with the same face: one ambiguous match naming both, neither dropped."""
    make_watchlist(api, "wl")
    for name in ("Eve", "Ida"):
        assert enrol(api, "ada", 1, name, "wl").status_code == 201
        assert api.as_("bob", "POST", f"/api/watchlists/wl/entries/{name}/approve").status_code == 200
    res = api.as_("carol", "POST", "/api/identify", files=[("photos", ("probe.png", photo(1), "image/png"))])
    assert res.status_code == 200, res.text
    [face] = [f for f in res.json()[0]["faces"] if f["subject"]]
    assert face["ambiguous"] and {face["subject"], face["candidates"][0]["subject"]} == {"Eve", "Ida"}
    assert face["candidates"][0]["person_id"] != face["person_id"]
