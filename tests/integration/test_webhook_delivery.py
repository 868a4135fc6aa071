"""Webhook deliveries against real receivers on loopback: signed and verified, hostile receivers (redirects, huge
or slow answers, a closed port) bounded, URL credentials used but never shown, and the channel behind the
dispatcher queueing each event once for each matching subscription."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from metrosight.bus.inproc import InProcessBus
from metrosight.bus.payloads import AlertV1, CameraStateV1, EntryRefV1
from metrosight.bus.topics import ALERTS, CAMERA_STATE
from metrosight.config.webhooks import WebhooksConfig
from metrosight.core.types import Category
from metrosight.outbound.delivery import DeliveryWorker, make_client
from metrosight.outbound.dispatch import Dispatcher
from metrosight.outbound.events import CameraPlace, to_outbound
from metrosight.outbound.webhooks import WebhookChannel, add_subscription
from metrosight.policy.scope import CameraGroups
from metrosight.store.repo import Store
from metrosight.store.webhook_models import WebhookAttempt
from tests.integration.procs import free_port
from tests.integration.receivers import WebhookReceiver

pytestmark = pytest.mark.integration
FAST = WebhooksConfig(
    workers=1,
    poll_seconds=0.05,
    timeout_seconds=0.5,
    backoff_initial_seconds=0.05,
    backoff_max_seconds=0.2,
    jitter_seconds=0.01,
    max_response_bytes=1024,
)


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    # cam-1 is in hall (its group) and red (its line), cam-9 in yard and red, as the dispatcher's places say
    groups = CameraGroups.of({"hall": ["cam-1"], "yard": ["cam-9"], "red": ["cam-1", "cam-9"]})
    s = Store.for_home(tmp_path, camera_groups=groups)
    s.users.add("ada", ["admin"], None)
    s.watchlists.create("missing", Category.MISSING, s.users.actor("ada"))
    return s


@pytest.fixture()
def rx() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    yield r
    r.stop()


def one_delivery(store: Store, url: str, cfg: WebhooksConfig = FAST) -> tuple[str, str]:
    """Subscribe ``url``, queue one event, attempt it once. Returns (the row's state, the secret)."""
    ada = store.users.actor("ada")
    info, secret = add_subscription(store.webhooks, ada, "t", url)
    store.outbox.enqueue("e1", "alert", '{"id":"e1"}', [info.id], timedelta(hours=1))
    worker = DeliveryWorker(store.outbox, cfg)
    with make_client(cfg) as client:
        (c,) = store.outbox.claim(1, timedelta(seconds=60))
        return worker.attempt(client, c), secret


def last_attempt(store: Store) -> tuple[int | None, str | None]:
    ada = store.users.actor("ada")
    (d,) = store.webhooks.deliveries(ada)
    return d.last_status, d.last_error


def test_signed_delivery_is_verified_by_the_receiver(store: Store, rx: WebhookReceiver) -> None:
    ada = store.users.actor("ada")
    info, secret = add_subscription(store.webhooks, ada, "t", rx.url)
    rx.secret = secret
    store.outbox.enqueue("e1", "alert", '{"id":"e1"}', [info.id], timedelta(hours=1))
    with make_client(FAST) as client:
        (c,) = store.outbox.claim(1, timedelta(seconds=60))
        assert DeliveryWorker(store.outbox, FAST).attempt(client, c) == "delivered"
    (r,) = rx.accepted()
    assert r.verified and r.body == b'{"id":"e1"}' and r.headers["x-metrosight-event"] == "alert"
    assert r.headers["idempotency-key"] == c.idempotency_key and r.headers["x-metrosight-attempt"] == "1"
    assert last_attempt(store) == (200, None)


def test_a_receiver_with_another_secret_refuses_and_it_is_retried(store: Store, rx: WebhookReceiver) -> None:
    rx.secret = "whsec_not-the-one"
    state, _secret = one_delivery(store, rx.url)
    assert state == "pending"
    assert rx.got[-1].status == 401 and "does not match" in (rx.got[-1].why or "")
    assert last_attempt(store) == (401, "HTTP 401")


def test_redirects_are_not_followed(store: Store, rx: WebhookReceiver) -> None:
    elsewhere = WebhookReceiver().start()
    try:
        rx.redirect_to = elsewhere.url
        state, _ = one_delivery(store, rx.url)
        assert state == "pending" and elsewhere.got == []
        status, error = last_attempt(store)
        assert status == 302 and "redirect (302) not followed" in (error or "")
    finally:
        elsewhere.stop()


def test_a_huge_response_is_not_read(store: Store, rx: WebhookReceiver) -> None:
    rx.huge = 2 * 1024**3  # 2 GiB announced and streamed until the client stops reading
    state, _ = one_delivery(store, rx.url)
    assert state == "delivered"
    ada = store.users.actor("ada")
    (d,) = store.webhooks.deliveries(ada)
    with store.uow.read() as s:
        (a,) = s.query(WebhookAttempt).filter_by(delivery_id=d.id).all()
        assert a.response is not None and len(a.response) <= FAST.max_response_bytes


def test_a_slow_receiver_times_out_and_is_retried(store: Store, rx: WebhookReceiver) -> None:
    rx.delay = 3.0
    state, _ = one_delivery(store, rx.url)
    assert state == "pending"
    status, error = last_attempt(store)
    assert status is None and "timed out" in (error or "")


def test_url_credentials_are_sent_but_never_shown_or_logged(
    store: Store, rx: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    url = rx.url.replace("http://", "http://hookuser:S3cr3t-pw-9@") + "?token=tok-abcdef123"
    caplog.set_level(logging.DEBUG)
    state, _ = one_delivery(store, url)
    assert state == "delivered"
    auth = rx.got[-1].headers["authorization"]
    assert base64.b64decode(auth.split()[1]) == b"hookuser:S3cr3t-pw-9"
    assert rx.got[-1].path.endswith("token=tok-abcdef123")
    dead = f"http://hookuser:S3cr3t-pw-9@127.0.0.1:{free_port()}/hook?token=tok-abcdef123"  # nothing listens
    store2 = store
    ada = store2.users.actor("ada")
    info, _ = add_subscription(store2.webhooks, ada, "closed", dead)
    store2.outbox.enqueue("e9", "alert", "{}", [info.id], timedelta(hours=1))
    with make_client(FAST) as client:
        (c,) = store2.outbox.claim(1, timedelta(seconds=60))
        assert DeliveryWorker(store2.outbox, FAST).attempt(client, c) == "pending"
    shown = [x.url for x in store.webhooks.all(ada)]
    errors = [d.last_error or "" for d in store.webhooks.deliveries(ada)]
    text = " ".join(shown + errors + [r.getMessage() for r in caplog.records])
    assert "S3cr3t-pw-9" not in text and "tok-abcdef123" not in text
    assert any("ConnectError" in e for e in errors)


def alert(event_id: str, watchlist: str) -> AlertV1:
    return AlertV1(
        event_id=event_id,
        camera_id="cam-1",
        track_id=1,
        subject_id=1,
        subject="Miranda",
        watchlist=watchlist,
        category="missing-person",
        score=0.97,
        distance=0.03,
        first_seen=1.0,
        last_seen=2.0,
        samples=3,
        crop_jpeg=b"\xff\xd8face",
        entries=(EntryRefV1(entry_id=1, name="Miranda", watchlist=watchlist, category="missing-person"),),
    )


def test_channel_queues_each_event_once_per_matching_subscription(store: Store, rx: WebhookReceiver) -> None:
    ada = store.users.actor("ada")
    states_rx = WebhookReceiver().start()
    try:
        _, rx.secret = add_subscription(store.webhooks, ada, "missing", rx.url, ["alert"], ["missing"])
        _, states_rx.secret = add_subscription(
            store.webhooks, ada, "states", states_rx.url, ["camera_state"], camera_groups=["hall"]
        )
        bus = InProcessBus()
        channel = WebhookChannel(store.outbox, FAST, DeliveryWorker(store.outbox, FAST), drain_seconds=10)
        d = Dispatcher([channel], {"cam-1": CameraPlace("hall", "red"), "cam-9": CameraPlace("yard", "red")})
        d.attach(bus)
        bus.publish(ALERTS, alert("a1", "missing"))
        bus.publish(ALERTS, alert("a1", "missing"))  # redelivered: queued once
        bus.publish(ALERTS, alert("a2", "staff"))  # another list: not for this subscription
        bus.publish(CAMERA_STATE, CameraStateV1(camera_id="cam-1", state="live", wall_time=1.0))
        bus.publish(CAMERA_STATE, CameraStateV1(camera_id="cam-9", state="live", wall_time=1.0))  # another group
        d.close()  # drains: both deliveries made
        (a,) = rx.got
        (st,) = states_rx.got
        assert a.verified and st.verified
        assert a.doc["id"] == "a1" and a.doc["schema"] == "metrosight.alert/1" and a.doc["type"] == "alert"
        assert a.doc["data"]["subject"] == "Miranda" and "crop_jpeg" not in a.doc["data"]
        assert a.doc["camera"] == {"id": "cam-1", "group": "hall", "line": "red"}
        assert st.doc["data"]["state"] == "live" and st.doc["camera"]["id"] == "cam-1"
        assert [x.pending for x in store.webhooks.all(ada)] == [0, 0]
        assert [x.delivered for x in store.webhooks.all(ada)] == [1, 1]
    finally:
        states_rx.stop()


def test_receiver_down_then_up_every_event_once(store: Store) -> None:
    """The scaled-down variant of the 30 s outage (tests/integration/test_webhooks_video.py, slow): 20 alerts
    offered while the receiver is down for 3 s; all arrive afterwards, each accepted once."""
    ada = store.users.actor("ada")
    rx = WebhookReceiver()
    _, rx.secret = add_subscription(store.webhooks, ada, "vms", rx.url, ["alert"])
    bus = InProcessBus()
    channel = WebhookChannel(store.outbox, FAST, DeliveryWorker(store.outbox, FAST), drain_seconds=30)
    d = Dispatcher([channel], {})
    d.attach(bus)
    for i in range(20):
        bus.publish(ALERTS, alert(f"a{i}", "missing"))
    time.sleep(3.0)  # down: connections refused, retried with backoff
    rx.start()
    try:
        d.close()  # drains until everything is delivered
        keys = [r.key for r in rx.accepted()]
        assert sorted(r.doc["id"] for r in rx.accepted()) == sorted(f"a{i}" for i in range(20))
        assert len(keys) == len(set(keys)) == 20
        rows = store.webhooks.deliveries(ada)
        assert all(x.state == "delivered" for x in rows) and any(x.attempts > 1 for x in rows)
    finally:
        rx.stop()


@pytest.mark.parametrize(
    ("userinfo", "user", "password"),
    [("admin:P@ssw0rd", "admin", "P@ssw0rd"), (":OnlyPassword9", "", "OnlyPassword9")],
)
def test_passwords_with_at_signs_or_without_a_user_are_sent_and_never_shown(
    store: Store, rx: WebhookReceiver, caplog: pytest.LogCaptureFixture, userinfo: str, user: str, password: str
) -> None:
    """The kind of the field case camera-credentials: a password holding ``@``, a password without a user name."""
    caplog.set_level(logging.DEBUG)
    url = rx.url.replace("http://", f"http://{userinfo}@")
    state, _ = one_delivery(store, url)
    assert state == "delivered"
    assert base64.b64decode(rx.got[-1].headers["authorization"].split()[1]).decode() == f"{user}:{password}"
    ada = store.users.actor("ada")
    seen = [w.url for w in store.webhooks.all(ada)] + [str(e.details) for e in store.audit.entries(ada)]
    seen += [r.getMessage() for r in caplog.records]
    for form in (password, password.replace("@", "%40"), password[:4] + "…"):
        assert not any(form in s for s in seen), form


def test_a_run_drains_only_what_it_queued(store: Store, rx: WebhookReceiver) -> None:
    """A delivery left from before for a receiver that is down does not hold up the end of a run: the run waits
    only for its own deliveries."""
    ada = store.users.actor("ada")
    dead, _ = add_subscription(store.webhooks, ada, "gone", f"http://127.0.0.1:{free_port()}/hook", ["alert"])
    store.outbox.enqueue("old", "alert", "{}", [dead.id], timedelta(hours=1))
    store.webhooks.set_enabled(ada, dead.id, False)  # paused: nothing new for it
    _, rx.secret = add_subscription(store.webhooks, ada, "vms", rx.url, ["alert"])
    worker = DeliveryWorker(store.outbox, FAST)
    channel = WebhookChannel(store.outbox, FAST, worker, drain_seconds=60)
    channel.offer(to_outbound("alerts", alert("a1", "missing"), {}, time.time()))
    assert worker.stop(60, {"a1"}) == 0  # its own delivery made; the old one is not waited for
    assert [r.doc["id"] for r in rx.accepted()] == ["a1"] and store.outbox.pending() == 1


def test_a_receiver_that_drips_its_answer_is_cut_off_within_the_total_deadline(store: Store) -> None:
    """Each byte within the read timeout, never finishing: the attempt is cut off after 3 × timeout (below its
    lease), so no other worker can take the row while this one still talks to the receiver."""
    import socket
    import threading

    from metrosight.outbound.delivery import lease_for, total_seconds

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    stop = threading.Event()

    def drip() -> None:
        conn, _ = srv.accept()
        conn.recv(65536)
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.is_set():
                conn.sendall(b"X")  # a header that never ends, one byte well within the read timeout
                time.sleep(0.1)
        except OSError:
            pass
        finally:
            conn.close()

    threading.Thread(target=drip, daemon=True).start()
    try:
        state, _ = one_delivery(store, f"http://127.0.0.1:{srv.getsockname()[1]}/hook")
        assert state == "pending"
        status, error = last_attempt(store)
        assert status is None and "cut off after 1.5 s" in (error or "")
        ada = store.users.actor("ada")
        (d,) = store.webhooks.deliveries(ada)
        assert d.last_latency_ms is not None and d.last_latency_ms < lease_for(FAST).total_seconds() * 1000
        assert total_seconds(FAST) < lease_for(FAST).total_seconds()
    finally:
        stop.set()
        srv.close()


def test_ping_sends_a_signed_test_request_now(store: Store, rx: WebhookReceiver) -> None:
    from metrosight.outbound.webhooks import ping

    ada = store.users.actor("ada")
    info, rx.secret = add_subscription(store.webhooks, ada, "vms", rx.url, ["alert"])
    out = ping(store.webhooks, ada, info.id, FAST)
    assert out.delivered and out.status_code == 200
    (r,) = rx.got
    assert r.verified and r.doc["type"] == "ping" and r.headers["x-metrosight-event"] == "ping"
    assert store.webhooks.deliveries(ada) == []  # not queued
    assert "webhook.test" in [e.action for e in store.audit.entries(ada)]
    rx.secret = "whsec_other"
    assert not ping(store.webhooks, ada, info.id, FAST).delivered  # the receiver refuses a wrong signature
