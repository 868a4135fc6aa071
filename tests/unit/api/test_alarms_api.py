"""The alarm workflow through the API: policies (admins set them, everyone who reads watchlists sees them, bad
ones are refused with the reason), claim / take-over / acknowledge with the insider tricks refused, the alarm on
every alert as operators see it, the live feed's ``alarm`` events, and the service's alarm clock escalating an
unacknowledged alarm and publishing it on the bus once."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from metrosight.api.app import ApiConfig, create_app
from metrosight.bus.inproc import InProcessBus
from metrosight.bus.payloads import AlarmV1
from metrosight.bus.topics import ALARMS
from tests.unit.api.conftest import PASSWORD, Api
from tests.unit.api.test_api import active, raise_alert  # noqa: F401 - the fixture

URGENT = {
    "priority": "critical",
    "colour": "#C00",
    "ack_required": True,
    "escalate_after_s": 600,
    "escalate_to": "admin",
}


def set_policy(api: Api, body: dict, user: str = "ada", wl: str = "wl"):  # type: ignore[no-untyped-def]
    return api.as_(user, "PUT", f"/api/watchlists/{wl}/policy", json=body)


def newest(api: Api) -> dict:
    return api.as_("carol", "GET", "/api/alerts").json()[0]


def test_policies_are_set_by_admins_shown_to_readers_and_validated(active: Api) -> None:  # noqa: F811
    api = active
    assert api.as_("carol", "GET", "/api/watchlists/wl/policy").json()["default"] is True
    res = set_policy(api, URGENT)
    assert res.status_code == 200, res.text
    got = api.as_("bob", "GET", "/api/alert-policies").json()
    assert [(p["watchlist"], p["priority"], p["colour"], p["set_by"], p["default"]) for p in got] == [
        ("wl", "critical", "#cc0000", "ada", False)
    ]
    assert set_policy(api, URGENT, user="carol").status_code == 403
    assert api.as_("vic", "GET", "/api/alert-policies").status_code == 403
    bad = [
        ({**URGENT, "ack_required": False}, 409, "needs acknowledgement required"),
        ({**URGENT, "escalate_to": None}, 409, "needs the role"),
        ({**URGENT, "colour": "red"}, 409, "not a hex colour"),
        ({**URGENT, "groups": ["red/central"]}, 422, "camera group"),
        ({**URGENT, "priority": "urgent"}, 422, ""),
        ({**URGENT, "escalate_to": "viewer"}, 422, ""),
        ({**URGENT, "escalate_after_s": 0}, 422, ""),
    ]
    for body, status, why in bad:
        res = set_policy(api, body)
        assert res.status_code == status, (body, res.text)
        assert why in res.text
    assert set_policy(api, URGENT, wl="nope").status_code == 404
    assert api.as_("ada", "GET", "/api/watchlists/wl/policy").json()["colour"] == "#cc0000"  # unchanged
    assert api.as_("ada", "DELETE", "/api/watchlists/wl/policy").json()["default"] is True
    assert [e for e in api.actions() if e == "watchlist.policy"] == ["watchlist.policy"] * 2


def test_claim_takeover_acknowledge_and_the_insider_tricks(active: Api) -> None:  # noqa: F811
    api = active
    set_policy(api, URGENT)
    raise_alert(api)
    a = newest(api)
    assert a["alarm"]["state"] == "new" and a["alarm"]["priority"] == "critical"
    assert 590 < a["alarm"]["seconds_to_escalation"] <= 600
    aid = a["id"]
    res = api.as_("carol", "POST", f"/api/alerts/{aid}/claim")
    assert res.status_code == 200 and res.json()["alarm"]["owner"] == "carol"
    res = api.as_("bob", "POST", f"/api/alerts/{aid}/claim")
    assert res.status_code == 409 and "claimed by carol" in res.json()["detail"]
    assert api.as_("bob", "POST", f"/api/alerts/{aid}/acknowledge").status_code == 403  # another's claim
    assert api.as_("bob", "POST", f"/api/alerts/{aid}/release").status_code == 403
    assert api.as_("vic", "POST", f"/api/alerts/{aid}/claim").status_code == 403  # a viewer
    assert api.as_("aud", "POST", f"/api/alerts/{aid}/claim").status_code == 403  # an auditor
    assert api.as_("bob", "POST", f"/api/alerts/{aid}/takeover", json={}).status_code == 422
    assert api.as_("bob", "POST", f"/api/alerts/{aid}/takeover", json={"reason": " "}).status_code == 409
    assert newest(api)["alarm"]["owner"] == "carol"  # nothing changed
    res = api.as_("bob", "POST", f"/api/alerts/{aid}/takeover", json={"reason": "carol went off shift"})
    assert res.status_code == 200 and res.json()["alarm"]["owner"] == "bob"
    res = api.as_("bob", "POST", f"/api/alerts/{aid}/acknowledge")
    assert res.json()["alarm"]["state"] == "acknowledged" and res.json()["alarm"]["seconds_to_escalation"] is None
    detail = api.as_("carol", "GET", f"/api/alerts/{aid}").json()
    assert detail["status"] == "new"  # acknowledging is not confirming
    assert [(s["action"], s["actor"], s["previous_owner"]) for s in detail["alarm_steps"]] == [
        ("raise", "system:cam-1", None),
        ("claim", "carol", None),
        ("takeover", "bob", "carol"),
        ("acknowledge", "bob", "bob"),
    ]
    assert api.as_("carol", "POST", f"/api/alerts/{aid}/claim").status_code == 409  # acknowledged is final
    assert api.as_("carol", "POST", "/api/alerts/999/claim").status_code == 404


def test_a_policy_naming_a_group_no_camera_is_in_is_refused(active: Api) -> None:  # noqa: F811
    """A mistyped group would silently raise no alarm for the list (an alert outside a policy's groups raising none
    is tested on the store: tests/unit/store/test_alarms.py, tests/integration/test_redteam_alarms.py)."""
    api = active
    res = set_policy(api, {**URGENT, "groups": ["blue-north"]})
    assert res.status_code == 422 and "no camera group 'blue-north' (known: red)" in res.json()["detail"]
    raise_alert(api)  # the list's policy is still the default one: cam-1 raises an alarm of normal priority
    a = newest(api)
    assert a["alarm"] is not None and a["alarm"]["priority"] == "normal"


def test_the_alarm_clock_escalates_once_and_publishes_each_step(active: Api) -> None:  # noqa: F811
    api = active
    set_policy(api, {**URGENT, "escalate_after_s": 1})
    bus = InProcessBus()
    got: list[AlarmV1] = []
    bus.subscribe(ALARMS, got.append)
    app = create_app(api.rt, bus=bus, config=ApiConfig(alarm_tick_seconds=0.1))
    raise_alert(api)  # raised and claimed before the service (its clock) starts: the order of steps is fixed
    aid = newest(api)["id"]
    assert api.as_("carol", "POST", f"/api/alerts/{aid}/claim").status_code == 200
    with TestClient(app) as client:  # the lifespan: the alarm clock runs
        deadline = time.monotonic() + 30
        while not any(p.transition == "escalate" for p in got):
            assert time.monotonic() < deadline, got
            time.sleep(0.1)
        alarm = client.get("/api/alerts", headers=api.h("carol")).json()[0]["alarm"]
        # escalated to admins: ada (an admin) may take it over now, and acknowledges it
        assert client.post(f"/api/alerts/{aid}/acknowledge", headers=api.h("ada")).status_code == 403
        res = client.post(f"/api/alerts/{aid}/takeover", headers=api.h("ada"), json={"reason": "escalated to me"})
        assert res.status_code == 200
    assert alarm["escalated"] and alarm["owner"] == "carol" and alarm["seconds_to_escalation"] is None
    esc = [p for p in got if p.transition == "escalate"]
    assert len(esc) == 1 and esc[0].escalated_to == "admin" and esc[0].owner == "carol"
    assert [p.transition for p in got][:3] == ["raise", "claim", "escalate"]
    assert api.actions().count("alarm.escalate") == 1


def test_the_alerts_page_shows_priority_owner_and_countdown(active: Api) -> None:  # noqa: F811
    api = active
    set_policy(api, URGENT)
    raise_alert(api)
    aid = newest(api)["id"]
    api.as_("carol", "POST", f"/api/alerts/{aid}/claim")
    api.client.post("/login", data={"username": "bob", "password": PASSWORD}, follow_redirects=False)
    html = api.client.get("/").text
    assert 'data-priority="critical"' in html and 'data-colour="#cc0000"' in html
    assert 'owner <b translate="no">carol</b>' in html and "escalates to admin in" in html


@pytest.mark.parametrize("n", [3])
def test_feed_sends_alarm_events(active: Api, n: int) -> None:  # noqa: F811
    from metrosight.api.routes.alerts import _alarm_events
    from metrosight.policy.scope import EVERYTHING

    api = active
    raise_alert(api, n)
    last, events = _alarm_events(api.rt.store, 0, EVERYTHING)
    assert len(events) == n and last > 0
    body = json.loads(events[0].data)
    assert body["step"]["action"] == "raise" and body["alarm"]["state"] == "new" and "subject" not in json.dumps(body)


class Recorder:
    """An outbound channel that keeps what it is offered (alarms only)."""

    name = "recorder"

    def __init__(self) -> None:
        from metrosight.outbound.channel import EventFilter

        self.filter = EventFilter.of(types=["alarm"])
        self.got: list = []

    def offer(self, event) -> None:  # type: ignore[no-untyped-def]
        self.got.append(event)

    def close(self) -> None:
        pass


def test_an_escalation_reaches_the_outbound_channels_once(active: Api) -> None:  # noqa: F811
    from metrosight.outbound.dispatch import Dispatcher

    api = active
    set_policy(api, {**URGENT, "escalate_after_s": 1})
    bus = InProcessBus()
    channel = Recorder()
    Dispatcher([channel]).attach(bus)  # as the service's dispatcher listens on its bus
    app = create_app(api.rt, bus=bus, config=ApiConfig(alarm_tick_seconds=0.1))
    with TestClient(app):
        raise_alert(api)
        deadline = time.monotonic() + 30
        while not any(e.body["transition"] == "escalate" for e in channel.got):
            assert time.monotonic() < deadline, channel.got
            time.sleep(0.1)
    [esc] = [e for e in channel.got if e.body["transition"] == "escalate"]
    doc = esc.envelope()
    assert (doc["type"], doc["schema"], doc["watchlists"], doc["camera"]["id"]) == (
        "alarm",
        "metrosight.alarm/1",
        ["wl"],
        "cam-1",
    )
    assert doc["data"]["escalated_to"] == "admin" and doc["data"]["priority"] == "critical"
    assert len({e.event_id for e in channel.got}) == len(channel.got)  # each step once
