"""Which MQTT topic each outbound event goes to, whether it is retained, and its payload (the event's envelope)."""

from __future__ import annotations

import json

import pytest

from metrosight.bus.payloads import AlertUpdateV1, AlertV1, CameraStateV1, EventUpdateV1, EventV1
from metrosight.config.channels import MqttConfig
from metrosight.outbound.events import CameraPlace, OutboundEvent, to_outbound, utc
from metrosight.outbound.mqtt import filter_of, payload_of, topic_for

PLACES = {"Платформа 1": CameraPlace("red:platform", "red")}
NOW = 1_800_000_000.0

ALERT = AlertV1(
    event_id="e1",
    camera_id="Платформа 1",
    track_id=3,
    subject_id=7,
    subject="Ann",
    watchlist="wanted",
    category="wanted",
    score=0.93,
    distance=0.31,
    first_seen=1.0,
    last_seen=2.0,
    samples=4,
    crop_jpeg=b"\xff\xd8 not for the broker",
    media_origin=NOW,
)


@pytest.mark.parametrize(
    ("topic", "payload", "expected", "retained"),
    [
        ("alerts", ALERT, "metro/red/alerts", False),
        ("alert-updates", AlertUpdateV1(event_id="e1", last_seen=5.0), "metro/red/alerts/updates", False),
        ("events", EventV1(event_id="v1", camera_id="c", kind="loitering", start_ts=1.0), "metro/red/events", False),
        ("event-updates", EventUpdateV1(event_id="v1", end_ts=9.0), "metro/red/events/updates", False),
        (
            "camera-state",
            CameraStateV1(camera_id="Платформа 1", state="live", wall_time=NOW),
            "metro/red/cameras/Платформа 1/state",
            True,
        ),
    ],
)
def test_each_bus_topic_has_its_mqtt_topic(topic, payload, expected, retained):
    ev = to_outbound(topic, payload, PLACES, NOW)
    assert topic_for(ev, "metro/red") == (expected, retained)


def test_reviews_episodes_and_alarms_have_their_topics():
    def ev(t: str, schema: str) -> OutboundEvent:
        return OutboundEvent(type=t, event_id="x", schema=schema, occurred_at=utc(NOW), body={})  # type: ignore[arg-type]

    assert topic_for(ev("alert_review", "metrosight.alert-review/1"), "p") == ("p/alerts/reviews", False)
    assert topic_for(ev("episode", "metrosight.episode/1"), "p") == ("p/episodes", False)
    assert topic_for(ev("alarm", "metrosight.alarm/1"), "p") == ("p/alarms", False)


def test_the_payload_is_the_versioned_envelope_without_images():
    body = json.loads(payload_of(to_outbound("alerts", ALERT, PLACES, NOW)))
    assert body["id"] == "e1" and body["type"] == "alert" and body["schema"] == "metrosight.alert/1"
    assert body["camera"] == {"id": "Платформа 1", "group": "red:platform", "line": "red"}
    assert body["watchlists"] == ["wanted"] and body["category"] == "wanted"
    assert body["data"]["subject"] == "Ann" and body["data"]["version"] == 1
    assert "crop_jpeg" not in body["data"]
    assert body["occurred_at"] == "2027-01-15T08:00:01Z"


def test_the_configured_filter_picks_types_watchlists_and_camera_groups():
    alert = to_outbound("alerts", ALERT, PLACES, NOW)
    live = to_outbound("camera-state", CameraStateV1(camera_id="Платформа 1", state="live", wall_time=NOW), PLACES, NOW)
    assert filter_of(MqttConfig(host="b")).accepts(alert)  # nothing configured: everything
    only_states = filter_of(MqttConfig(host="b", events=["camera_state"]))
    assert only_states.accepts(live) and not only_states.accepts(alert)
    other_list = filter_of(MqttConfig(host="b", watchlists=["missing"]))
    assert not other_list.accepts(alert) and other_list.accepts(live)  # a camera state names nobody
    red = filter_of(MqttConfig(host="b", camera_groups=[" red:platform "]))
    assert red.accepts(alert) and red.accepts(live)
    assert not filter_of(MqttConfig(host="b", camera_groups=["blue"])).accepts(alert)
