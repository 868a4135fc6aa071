"""The webhook admin API: admins only, the secret in the creating response only, credentials never shown, the
delivery log and retries, every change audited."""

from __future__ import annotations

import time
from datetime import timedelta

from metrosight.bus.payloads import AlertV1
from metrosight.core.types import Category
from metrosight.store.outbox import Outcome
from tests.unit.api.conftest import Api

URL = "https://hook:Sup3r-s3cret@receiver.example.org/in?token=tok-123456"


def test_only_admins(api: Api) -> None:
    for user in ("bob", "carol", "aud", "vic"):
        assert api.as_(user, "GET", "/api/webhooks").status_code == 403
        assert api.as_(user, "POST", "/api/webhooks", json={"name": "x", "url": URL}).status_code == 403
    assert api.client.get("/api/webhooks").status_code == 401
    assert api.rt.store.webhooks.all(api.rt.store.users.actor("ada")) == []


def test_create_list_pause_remove(api: Api) -> None:
    api.rt.store.watchlists.create("missing", Category.MISSING, api.rt.store.users.actor("ada"))
    r = api.as_(
        "ada",
        "POST",
        "/api/webhooks",
        json={"name": "VMS", "url": URL, "event_types": ["alert"], "watchlists": ["missing"]},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_") and created["event_types"] == ["alert"]
    listed = api.as_("ada", "GET", "/api/webhooks").json()
    assert [w["id"] for w in listed] == [created["id"]] and "secret" not in listed[0]
    text = r.text.replace(created["secret"], "") + str(listed) + str([e.details for e in api.rt.store.audit.entries()])
    assert "Sup3r-s3cret" not in text and "tok-123456" not in text
    assert created["secret"] not in str(listed) + str([e.details for e in api.rt.store.audit.entries()])
    assert api.as_("ada", "PATCH", f"/api/webhooks/{created['id']}", json={"enabled": False}).json()["enabled"] is False
    assert api.as_("ada", "DELETE", f"/api/webhooks/{created['id']}").status_code == 204
    assert api.as_("ada", "DELETE", f"/api/webhooks/{created['id']}").status_code == 404
    assert api.as_("ada", "GET", "/api/webhooks").json() == []
    assert {"webhook.add", "webhook.disable", "webhook.remove"} <= set(api.actions())


def test_bad_input_is_a_clear_422(api: Api) -> None:
    for body, word in [
        ({"name": "x", "url": "ftp://example.org/"}, "http:// or https://"),
        ({"name": "x", "url": "http://example.org/", "event_types": ["selfie"]}, "event_types"),
        ({"name": "x", "url": "http://u:pw9999@example.org:nope/"}, "cannot be parsed"),
    ]:
        r = api.as_("ada", "POST", "/api/webhooks", json=body)
        assert r.status_code == 422 and word in r.text and "pw9999" not in r.text


def test_delivery_log_and_retry(api: Api) -> None:
    store = api.rt.store
    created = api.as_("ada", "POST", "/api/webhooks", json={"name": "VMS", "url": "http://127.0.0.1:9/h"}).json()
    store.outbox.enqueue("cam-1:s:1.0", "alert", "{}", [created["id"]], timedelta(seconds=1))
    (c,) = store.outbox.claim(5, timedelta(seconds=30))
    assert store.outbox.finish(c, Outcome(None, 5.0, "ConnectError: refused"), None) == "dead"
    (d,) = api.as_("ada", "GET", "/api/webhooks/deliveries", params={"state": "dead"}).json()
    assert d["event_id"] == "cam-1:s:1.0" and d["last_error"] == "ConnectError: refused" and "body" not in d
    (a,) = api.as_("ada", "GET", f"/api/webhooks/deliveries/{d['id']}/attempts").json()
    assert a["number"] == 1 and a["status_code"] is None
    assert api.as_("ada", "POST", f"/api/webhooks/deliveries/{d['id']}/retry").json() == {"queued": 1}
    assert api.as_("ada", "POST", f"/api/webhooks/deliveries/{d['id']}/retry").status_code == 409  # not dead now
    assert api.as_("ada", "GET", "/api/webhooks").json()[0]["pending"] == 1
    assert api.as_("ada", "POST", "/api/webhooks/deliveries/99/retry").status_code == 404
    assert api.as_("carol", "GET", "/api/webhooks/deliveries").status_code == 403


def test_reviews_and_episodes_reach_the_outbound_dispatcher(api: Api) -> None:
    """A review made through the API is published on the service's bus (alert_review); a stored sighting is
    published by its sink (episode): each reaches the dispatcher's channels once, with its person's lists."""
    from metrosight.bus.topics import EPISODES
    from metrosight.outbound.dispatch import Dispatcher
    from metrosight.outbound.events import CameraPlace
    from metrosight.services.sinks import AlertSink
    from tests.unit.api.test_api import enrol, make_watchlist
    from tests.unit.outbound.test_seam import Recorder

    make_watchlist(api)
    assert enrol(api, "ada").status_code == 201
    assert api.as_("bob", "POST", "/api/watchlists/wl/entries/Eve/approve").status_code == 200
    rec = Recorder()
    Dispatcher([rec], {"cam-1": CameraPlace("north", "red")}).attach(api.bus)
    sink = AlertSink(api.rt.store, api.rt.home.media, None, lambda e: api.bus.publish(EPISODES, e))
    entry = api.rt.store.entries.all("wl")[0]
    one = AlertV1(
        event_id="cam-1:run:1.0",
        camera_id="cam-1",
        track_id=1,
        subject_id=entry.id,
        subject="Eve",
        watchlist="wl",
        category="wanted",
        score=0.97,
        distance=0.24,
        first_seen=1.0,
        last_seen=2.5,
        samples=3,
        media_origin=time.time(),
    )
    sink.on_alert(one)
    sink.on_alert(one)  # redelivered: stored once, one episode event
    (episode,) = [e for e in rec.got if e.type == "episode"]
    assert episode.body["opened"] is True and episode.body["sightings"] == 1 and episode.watchlists == ("wl",)
    assert episode.camera_group == "north" and episode.schema == "metrosight.episode/1"
    (alert,) = api.as_("carol", "GET", "/api/alerts").json()
    assert api.as_("carol", "POST", f"/api/alerts/{alert['id']}/confirm").status_code == 200
    assert api.as_("bob", "POST", f"/api/alerts/{alert['id']}/confirm").status_code == 200
    reviews = [e for e in rec.got if e.type == "alert_review"]
    assert [(e.body["reviewer"], e.body["status"]) for e in reviews] == [
        ("carol", "confirmed_once"),
        ("bob", "actionable"),
    ]
    assert reviews[0].event_id == f"review:{alert['id']}:carol" and reviews[0].schema == "metrosight.alert-review/1"
    assert reviews[0].watchlists == ("wl",) and reviews[0].category == "wanted"


def test_ping_says_how_the_receiver_answered(api: Api) -> None:
    from tests.integration.procs import free_port

    created = api.as_("ada", "POST", "/api/webhooks", json={"name": "VMS", "url": f"http://127.0.0.1:{free_port()}/h"})
    r = api.as_("ada", "POST", f"/api/webhooks/{created.json()['id']}/test")
    assert r.status_code == 200 and r.json()["delivered"] is False and "ConnectError" in r.json()["error"]
    assert api.as_("carol", "POST", f"/api/webhooks/{created.json()['id']}/test").status_code == 403
    assert api.as_("ada", "POST", "/api/webhooks/999/test").status_code == 404
    assert "webhook.test" in api.actions()


def test_a_filter_naming_an_unknown_watchlist_group_or_category_is_refused_in_one_line(api: Api) -> None:
    """Red team: a mistyped filter was accepted and then never delivered anything."""
    api.rt.store.watchlists.create("wanted-2026", Category.WANTED, api.rt.store.users.actor("ada"))
    for filters, words in [
        ({"watchlists": ["Wantd-2026"]}, ("no watchlist 'Wantd-2026'", "known: wanted-2026")),
        ({"camera_groups": ["blu"]}, ("no camera group 'blu'", "known: red")),
        ({"categories": ["wantd"]}, ("no category 'wantd'", "wanted")),
    ]:
        r = api.as_("ada", "POST", "/api/webhooks", json={"name": "x", "url": "http://127.0.0.1:9/h", **filters})
        assert r.status_code == 422 and all(w in r.json()["detail"] for w in words), r.text
        assert "\n" not in r.json()["detail"]
    assert api.as_("ada", "GET", "/api/webhooks").json() == []  # nothing stored
    # a line (cam-1's), the list as typed in another case: accepted, the list stored under its own name
    ok = {"name": "x", "url": "http://127.0.0.1:9/h", "watchlists": ["Wanted-2026"], "camera_groups": ["RED"]}
    r = api.as_("ada", "POST", "/api/webhooks", json=ok)
    assert r.status_code == 201, r.text
    assert r.json()["watchlists"] == ["wanted-2026"]
