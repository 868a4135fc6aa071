"""The outbound seam: bus payloads → OutboundEvent, the one filter, and the dispatcher on a real in-process bus."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from metrosight.bus.inproc import InProcessBus
from metrosight.bus.payloads import AlertUpdateV1, AlertV1, CameraStateV1, CameraStatsV1, EntryRefV1, EventV1
from metrosight.bus.topics import ALERT_UPDATES, ALERTS, CAMERA_STATE, CAMERA_STATS, EVENTS
from metrosight.outbound.channel import ALL_EVENTS, Channel, ChannelError, EventFilter
from metrosight.outbound.dispatch import Dispatcher
from metrosight.outbound.events import CameraPlace, OutboundEvent, to_outbound

PLACES = {"cam-1": CameraPlace("north-hall", "red"), "cam-2": CameraPlace(None, "blue")}


def alert(event_id: str = "cam-1:s:10.0", watchlist: str = "missing", category: str = "missing-person") -> AlertV1:
    return AlertV1(
        event_id=event_id,
        camera_id="cam-1",
        track_id=3,
        subject_id=7,
        subject="Miranda",
        watchlist=watchlist,
        category=category,
        score=0.97,
        distance=0.03,
        first_seen=12.5,
        last_seen=14.0,
        samples=4,
        crop_jpeg=b"\xff\xd8secret-face\xff\xd9",
        media_origin=1_700_000_000.0,
        entries=(
            EntryRefV1(entry_id=1, name="Miranda", watchlist=watchlist, category=category),
            EntryRefV1(entry_id=2, name="Miranda", watchlist="vip", category="vip"),
        ),
    )


def behaviour(camera: str = "cam-2") -> EventV1:
    return EventV1(
        event_id=f"{camera}:b:1", camera_id=camera, kind="loitering", start_ts=3.0, snapshot_jpeg=b"jpeg", data={}
    )


class Recorder:
    """A channel that records what it is offered; refuses while ``down``."""

    def __init__(self, name: str = "rec", flt: EventFilter = ALL_EVENTS) -> None:
        self._name = name
        self._filter = flt
        self.got: list[OutboundEvent] = []
        self.down = False
        self.closed = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def filter(self) -> EventFilter:
        return self._filter

    def offer(self, event: OutboundEvent) -> None:
        if self.down:
            raise ChannelError("receiver down")
        self.got.append(event)

    def close(self) -> None:
        self.closed = True


def test_alert_converts_with_place_watchlists_and_no_crop() -> None:
    ev = to_outbound("alerts", alert(), PLACES, now=0.0)
    assert ev.type == "alert" and ev.schema == "metrosight.alert/1"
    assert ev.event_id == "cam-1:s:10.0"
    assert ev.watchlists == ("missing", "vip") and ev.category == "missing-person"
    assert (ev.camera_id, ev.camera_group, ev.camera_line) == ("cam-1", "north-hall", "red")
    assert ev.occurred_at == datetime.fromtimestamp(1_700_000_012.5, UTC)
    assert "crop_jpeg" not in ev.body and ev.body["subject"] == "Miranda"
    doc = json.loads(json.dumps(ev.envelope()))  # JSON-serialisable as it is
    assert doc["occurred_at"].endswith("Z") and doc["data"]["version"] == 1
    assert b"secret-face" not in json.dumps(doc).encode()


def test_updates_and_states_have_stable_ids() -> None:
    u = to_outbound("alert-updates", AlertUpdateV1(event_id="a1", last_seen=9.0), PLACES, now=5.0)
    assert (u.type, u.event_id, u.schema) == ("alert", "a1#ended", "metrosight.alert-update/1")
    s = CameraStateV1(camera_id="cam-2", state="down", wall_time=1_700_000_000.25)
    one, two = (to_outbound("camera-state", s, PLACES, now=n) for n in (1.0, 2.0))
    assert one.event_id == two.event_id == "cam-2:down:1700000000250"
    assert one.camera_group is None and one.camera_line == "blue"
    b = to_outbound("events", behaviour(), PLACES, now=1.0)
    assert b.type == "behaviour" and "snapshot_jpeg" not in b.body and b.watchlists == ()


def test_naive_time_and_unknown_type_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        OutboundEvent("alert", "x", "s/1", datetime(2026, 1, 1), {})
    with pytest.raises(ValueError, match="unknown outbound event type"):
        OutboundEvent("selfie", "x", "s/1", datetime(2026, 1, 1, tzinfo=UTC), {})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown event type"):
        EventFilter.of(types=["alert", "selfie"])


@pytest.mark.parametrize(
    ("flt", "alert_passes", "behaviour_passes"),
    [
        (EventFilter.of(), True, True),
        (EventFilter.of(types=["alert"]), True, False),
        (EventFilter.of(watchlists=["vip"]), True, True),  # a secondary list of the person counts
        (EventFilter.of(watchlists=["staff"]), False, True),  # behaviour names nobody: not restricted
        (EventFilter.of(categories=["missing-person"]), True, True),
        (EventFilter.of(categories=["vip"]), False, True),  # the category is the primary entry's
        (EventFilter.of(camera_groups=["north-hall"]), True, False),  # cam-2 has no group
        (EventFilter.of(types=["behaviour"], camera_groups=["north-hall"]), False, False),
    ],
)
def test_filter(flt: EventFilter, alert_passes: bool, behaviour_passes: bool) -> None:
    assert flt.accepts(to_outbound("alerts", alert(), PLACES, 0.0)) is alert_passes
    assert flt.accepts(to_outbound("events", behaviour(), PLACES, 0.0)) is behaviour_passes


def test_dispatcher_offers_each_event_to_each_accepting_channel_once() -> None:
    bus = InProcessBus()
    everything, alerts_only = Recorder("all"), Recorder("alerts", EventFilter.of(types=["alert"]))
    assert isinstance(everything, Channel)
    d = Dispatcher([everything, alerts_only], PLACES)
    d.attach(bus)
    bus.publish(ALERTS, alert())
    bus.publish(EVENTS, behaviour())
    bus.publish(CAMERA_STATE, CameraStateV1(camera_id="cam-1", state="live", wall_time=1.0))
    bus.publish(ALERT_UPDATES, AlertUpdateV1(event_id="cam-1:s:10.0", last_seen=20.0))
    bus.publish(
        CAMERA_STATS,
        CameraStatsV1(
            camera_id="cam-1",
            worker=0,
            state="live",
            frames_decoded=1,
            frames_skipped=0,
            frames_dropped=0,
            frames_analysed=1,
            faces=0,
            embedded=0,
            tracks=0,
            alerts=0,
            reconnects=0,
            stalls=0,
            failed_attempts=0,
            last_frame_wall=0.0,
            worker_cpu_seconds=0.0,
            wall_time=1.0,
        ),
    )  # counters are not an outbound event
    assert [e.type for e in everything.got] == ["alert", "behaviour", "camera_state", "alert"]
    assert [e.event_id for e in alerts_only.got] == ["cam-1:s:10.0", "cam-1:s:10.0#ended"]
    d.close()
    assert everything.closed and alerts_only.closed


def test_a_refusing_channel_neither_stops_the_publisher_nor_loses_the_event() -> None:
    bus = InProcessBus()
    flaky, fine = Recorder("flaky"), Recorder("fine")
    d = Dispatcher([flaky, fine], PLACES)
    d.attach(bus)
    flaky.down = True
    bus.publish(ALERTS, alert("a1"))  # no exception reaches the camera loop
    bus.publish(ALERTS, alert("a2"))
    assert [e.event_id for e in fine.got] == ["a1", "a2"] and flaky.got == [] and d.held == 2
    assert d.flush() is False and d.held == 2  # still down: kept, in order
    flaky.down = False
    d.close()  # offers what is held once more
    assert [e.event_id for e in flaky.got] == ["a1", "a2"] and d.held == 0


def test_strict_dispatcher_raises_so_the_bus_keeps_the_message() -> None:
    flaky, fine = Recorder("flaky"), Recorder("fine")
    flaky.down = True
    d = Dispatcher([flaky, fine], PLACES, strict=True)
    with pytest.raises(ChannelError, match="flaky"):
        d.dispatch("alerts", alert("a1"))
    assert [e.event_id for e in fine.got] == ["a1"] and d.held == 0  # the other channel still got it


def test_no_channels_subscribes_nothing() -> None:
    bus = InProcessBus()
    Dispatcher([], PLACES).attach(bus)
    assert not bus._handlers  # noqa: SLF001 - nothing subscribed: no work on the camera loop


def test_reviews_and_episodes_convert_with_their_persons_lists() -> None:
    from metrosight.bus.payloads import AlertReviewV1, EpisodeV1

    r = AlertReviewV1(
        event_id="review:7:bob",
        alert_id=7,
        alert_event_id="cam-1:s:10.0",
        action="reject",
        reviewer="bob",
        reason="a lookalike",
        status="rejected",
        at=1_700_000_100.5,
        camera_id="cam-1",
        subject="Miranda",
        watchlist="missing",
        watchlists=("missing", "vip"),
        category="missing-person",
    )
    ev = to_outbound("alert-reviews", r, PLACES, now=0.0)
    assert (ev.type, ev.event_id, ev.schema) == ("alert_review", "review:7:bob", "metrosight.alert-review/1")
    assert ev.watchlists == ("missing", "vip") and ev.camera_group == "north-hall"
    assert ev.occurred_at == datetime.fromtimestamp(1_700_000_100.5, UTC) and ev.body["reason"] == "a lookalike"
    e = EpisodeV1.of_sighting(alert(), alert_id=7, opened=False, sightings=3, status="new")
    ep = to_outbound("episodes", e, PLACES, now=0.0)
    assert (ep.type, ep.event_id) == ("episode", "episode:7:cam-1:s:10.0")
    assert ep.watchlists == ("missing", "vip") and ep.body["sightings"] == 3 and ep.body["opened"] is False
    assert EventFilter.of(types=["episode"], watchlists=["vip"]).accepts(ep)
    assert not EventFilter.of(types=["alert"]).accepts(ep)


def test_alert_updates_are_filtered_like_their_alert() -> None:
    a = alert(watchlist="staff", category="staff")
    ended = to_outbound("alert-updates", AlertUpdateV1.of_alert(a, 20.0), PLACES, now=1.0)
    assert ended.watchlists == ("staff", "vip") and ended.camera_group == "north-hall"
    assert not EventFilter.of(watchlists=["missing"]).accepts(ended)  # another list's alert ended: not sent
    assert EventFilter.of(watchlists=["staff"], camera_groups=["north-hall"]).accepts(ended)
    legacy = to_outbound("alert-updates", AlertUpdateV1(event_id="x", last_seen=2.0), PLACES, now=1.0)
    assert not EventFilter.of(watchlists=["missing"]).accepts(legacy)  # lists unknown: not to a filtered one
    assert EventFilter.of().accepts(legacy)
