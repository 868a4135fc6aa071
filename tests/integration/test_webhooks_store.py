"""Webhook subscriptions and the durable outbox on SQLite AND PostgreSQL: secrets encrypted and shown once, URLs
without credentials, every change audited, the outbox's state machine, and concurrent delivery workers (separate
store instances, as separate processes would be) never holding one row at once, against a real loopback receiver."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from metrosight.config.webhooks import WebhooksConfig
from metrosight.core.names import InvalidInput
from metrosight.core.types import Category
from metrosight.outbound.delivery import DeliveryWorker, make_client
from metrosight.outbound.webhooks import add_subscription
from metrosight.policy.crypto import KeyRing
from metrosight.policy.rules import Forbidden, PolicyError
from metrosight.store.db import open_engine
from metrosight.store.errors import NotFound
from metrosight.store.outbox import Outcome
from metrosight.store.repo import Store
from tests.integration.receivers import WebhookReceiver

pytestmark = pytest.mark.integration
KEY = Fernet.generate_key()
DAY = timedelta(hours=24)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    return str(request.getfixturevalue("pg_url"))


def open_store(url: str) -> Store:
    return Store(open_engine(url), KeyRing(KEY))


@pytest.fixture()
def store(url: str) -> Iterator[Store]:
    s = open_store(url)
    s.users.add("ada", ["admin"], None)
    s.users.add("otto", ["operator"], s.users.actor("ada"))
    yield s
    s.engine.dispose()


def test_secret_shown_once_url_credentials_never_in_clear(store: Store, url: str) -> None:
    ada = store.users.actor("ada")
    raw = (
        "https://hookuser:Pa55-w0rd-xyz@hooks.example.org:8443/services/T0001/B0002/AbCdEf1234567890xyz?token=tok-98765"
    )
    store.watchlists.create("missing", Category.MISSING, ada)
    info, secret = add_subscription(store.webhooks, ada, "control room", raw, ["alert"], ["missing"])
    assert secret.startswith("whsec_") and len(secret) > 40
    for shown in (info.url, store.webhooks.all(ada)[0].url):
        assert "Pa55" not in shown and "tok-98765" not in shown and "AbCdEf1234567890xyz" not in shown
        assert shown.startswith("https://") and "hooks.example.org:8443" in shown
    assert not hasattr(store.webhooks.all(ada)[0], "secret")
    with store.engine.connect() as c:  # nothing of the URL's credentials or the secret is stored in clear
        dump = " ".join(str(v) for row in c.execute(text("SELECT * FROM webhook_subscriptions")) for v in row)
        dump += " ".join(str(v) for row in c.execute(text("SELECT details FROM audit_log")) for v in row)
    for needle in ("Pa55-w0rd", "tok-98765", "AbCdEf1234567890xyz", secret, secret[6:20]):
        assert needle not in dump
    claimed_url, claimed_secret = store.outbox._secrets(store.engine and store.uow.read(), info.id)  # noqa: SLF001
    assert (claimed_url, claimed_secret) == (raw, secret)  # the worker can decrypt both
    actions = [e.action for e in store.audit.entries(ada)]
    assert "webhook.add" in actions


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("ftp://example.org/x", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("example.org/hook", "http:// or https://"),
        ("http:///nohost", "no host"),
        ("http://exa mple.org/", "spaces"),
        ("http://example.org/#frag", "fragment"),
        ("http://example.org:99999999/", "cannot be parsed"),
        ("http://u:secretpw@example.org:port/", "cannot be parsed"),
        ("http://example.org/" + "a" * 3000, "longer than"),
    ],
)
def test_bad_urls_are_refused_without_echoing_credentials(store: Store, bad: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why) as e:
        add_subscription(store.webhooks, store.users.actor("ada"), "x", bad)
    assert "secretpw" not in str(e.value)
    assert store.webhooks.all(store.users.actor("ada")) == []


def test_only_admins_manage_webhooks_and_unknown_types_are_named(store: Store) -> None:
    otto, ada = store.users.actor("otto"), store.users.actor("ada")
    with pytest.raises(Forbidden):
        add_subscription(store.webhooks, otto, "x", "http://127.0.0.1:9/h")
    with pytest.raises(Forbidden):
        store.webhooks.all(otto)
    with pytest.raises(InvalidInput, match="selfie"):
        add_subscription(store.webhooks, ada, "x", "http://127.0.0.1:9/h", ["alert", "selfie"])
    info, _ = add_subscription(store.webhooks, ada, "x", "http://127.0.0.1:9/h")
    assert set(info.event_types) == {"alert", "alert_review", "episode", "behaviour", "camera_state", "alarm"}
    with pytest.raises(Forbidden):
        store.webhooks.remove(otto, info.id)
    with pytest.raises(NotFound):
        store.webhooks.remove(ada, 999)


def test_outbox_state_machine(store: Store) -> None:
    ada = store.users.actor("ada")
    info, secret = add_subscription(store.webhooks, ada, "x", "http://127.0.0.1:9/h")
    box = store.outbox
    t0 = datetime.now(UTC)
    assert box.enqueue("e1", "alert", '{"a":1}', [info.id], DAY, t0) == 1
    assert box.enqueue("e1", "alert", '{"a":1}', [info.id], DAY, t0) == 0  # offered again: nothing added
    assert box.claim(10, timedelta(seconds=60), t0 - timedelta(seconds=1)) == []  # not due yet
    (c,) = box.claim(10, timedelta(seconds=60), t0)
    assert (c.attempt, c.secret, c.body, c.url) == (1, secret, '{"a":1}', "http://127.0.0.1:9/h")
    assert box.claim(10, timedelta(seconds=60), t0) == []  # held: nobody else gets it
    # a failure before the give-up time: pending again, due at the retry time
    assert box.finish(c, Outcome(500, 12.0, "HTTP 500"), t0 + timedelta(seconds=5), t0) == "pending"
    assert box.claim(10, timedelta(seconds=60), t0 + timedelta(seconds=4)) == []
    (c2,) = box.claim(10, timedelta(seconds=60), t0 + timedelta(seconds=5))
    assert c2.attempt == 2 and c2.idempotency_key == c.idempotency_key  # one key across retries
    assert box.finish(c, Outcome(200, 1.0), None) == "stale"  # an old claim writes nothing
    # the lease runs out (the worker died): claimable again, under a new claim; the dead worker's result is stale
    (c3,) = box.claim(10, timedelta(seconds=60), t0 + timedelta(seconds=66))
    assert c3.attempt == 3 and c3.claim != c2.claim
    assert box.finish(c2, Outcome(200, 1.0), None) == "stale"
    assert box.finish(c3, Outcome(204, 3.5), None) == "delivered"
    (d,) = store.webhooks.deliveries(ada, info.id)
    assert (d.state, d.attempts, d.last_status, d.idempotency_key) == ("delivered", 3, 204, c.idempotency_key)
    assert [(a.number, a.status_code) for a in store.webhooks.attempts(ada, d.id)] == [(1, 500), (3, 204)]
    with store.engine.connect() as conn:  # the body is not kept once delivered
        assert conn.execute(text("SELECT body FROM webhook_deliveries")).scalar() is None
    # give up: a failure whose next try would be past the give-up time is dead; an admin retries it
    box.enqueue("e2", "alert", "{}", [info.id], timedelta(seconds=10), t0)
    (c4,) = box.claim(10, timedelta(seconds=60), t0)
    assert box.finish(c4, Outcome(None, 10_000.0, "timed out"), t0 + timedelta(seconds=11), t0) == "dead"
    assert [x.state for x in store.webhooks.deliveries(ada, info.id, "dead")] == ["dead"]
    with pytest.raises(PolicyError, match="only dead"):
        store.webhooks.retry(ada, delivery_id=d.id)
    assert store.webhooks.retry(ada, sub_id=info.id) == 1
    (c5,) = box.claim(10, timedelta(seconds=60))
    assert c5.event_type == "alert" and c5.attempt == 2
    # removal cancels what is queued and shreds the key
    box.enqueue("e3", "alert", "{}", [info.id], DAY)
    assert store.webhooks.remove(ada, info.id) == 2  # e2 (held) and e3
    assert box.finish(c5, Outcome(200, 1.0), None) == "stale"
    assert box.claim(10, timedelta(seconds=60)) == [] and box.targets() == []
    assert box.enqueue("e4", "alert", "{}", [info.id], DAY) == 0  # a removed subscription gets nothing new
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM webhook_keys")).scalar() == 0
    actions = [e.action for e in store.audit.entries(ada)]
    assert {"webhook.add", "webhook.retry", "webhook.remove"} <= set(actions)


def test_pause_and_resume(store: Store) -> None:
    ada = store.users.actor("ada")
    info, _ = add_subscription(store.webhooks, ada, "x", "http://127.0.0.1:9/h")
    store.outbox.enqueue("e0", "alert", "{}", [info.id], DAY)
    store.webhooks.set_enabled(ada, info.id, False)
    assert store.outbox.targets() == [] and store.outbox.enqueue("e1", "alert", "{}", [info.id], DAY) == 0
    assert store.outbox.claim(10, timedelta(seconds=60)) == []  # what is queued waits while paused
    store.webhooks.set_enabled(ada, info.id, True)
    assert [t.id for t in store.outbox.targets()] == [info.id]
    assert [c.idempotency_key for c in store.outbox.claim(10, timedelta(seconds=60))] != []


def test_concurrent_workers_never_deliver_one_row_twice_at_once(store: Store, url: str) -> None:
    """Three stores (as three processes would have), two delivery threads each, 60 rows, a receiver that answers
    slowly and fails one request in three: each row reaches it with one key, never two requests for one key at a
    time, and every row ends delivered."""
    ada = store.users.actor("ada")
    rx = WebhookReceiver().start()
    try:
        info, secret = add_subscription(store.webhooks, ada, "x", rx.url)
        rx.secret, rx.delay = secret, 0.02
        for i in range(60):
            store.outbox.enqueue(f"e{i}", "alert", f'{{"n":{i}}}', [info.id], DAY)
        cfg = WebhooksConfig(
            workers=2,
            poll_seconds=0.05,
            backoff_initial_seconds=0.05,
            backoff_max_seconds=0.2,
            jitter_seconds=0.05,
            timeout_seconds=5,
        )
        stores = [open_store(url) for _ in range(3)]
        workers = [DeliveryWorker(s.outbox, cfg, make_client).start() for s in stores]
        flaky = threading.Event()

        def flap() -> None:  # one request in three fails while the test runs
            while not flaky.is_set():
                rx.status = 503
                flaky.wait(0.03)
                rx.status = 200
                flaky.wait(0.06)

        threading.Thread(target=flap, daemon=True).start()
        got = rx.wait_for(60, timeout=120)
        flaky.set()
        for w in workers:
            w.stop(drain_seconds=10)  # the last rows' results are written
        for s in stores:
            s.engine.dispose()
        assert len({r.key for r in got}) == 60 and sorted({r.doc["n"] for r in got}) == list(range(60))
        assert len(got) == 60  # each accepted once: a delivered row is never sent again
        assert rx.max_in_flight_per_key == 1  # never two requests of one row at the same time
        assert any(r.status == 503 for r in rx.got)  # the retries were exercised
        states = [d.state for d in store.webhooks.deliveries(ada, info.id, limit=100)]
        assert states.count("delivered") == 60
    finally:
        rx.stop()


def test_purge_removes_finished_rows_and_keeps_live_ones(store: Store) -> None:
    ada = store.users.actor("ada")
    info, _ = add_subscription(store.webhooks, ada, "x", "http://127.0.0.1:9/h")
    t0 = datetime.now(UTC) - timedelta(days=40)
    for i, outcome in enumerate([Outcome(200, 1.0), Outcome(500, 1.0, "HTTP 500"), None]):
        store.outbox.enqueue(f"e{i}", "alert", '{"subject":"Name"}', [info.id], timedelta(seconds=1), t0)
        if outcome is not None:
            (c,) = store.outbox.claim(1, timedelta(seconds=60), t0)
            store.outbox.finish(c, outcome, None, t0)
    assert store.outbox.purge(datetime.now(UTC) - timedelta(days=30)) == 2  # delivered and dead
    assert [d.event_id for d in store.webhooks.deliveries(ada)] == ["e2"]  # still pending: kept


def test_a_filter_naming_an_unknown_watchlist_or_camera_group_is_refused(url: str) -> None:
    """Red team: ``-w Wantd-2026`` or a camera group no camera is in was accepted and never delivered anything."""
    from metrosight.policy.scope import CameraGroups

    s = Store(open_engine(url), KeyRing(KEY), camera_groups=CameraGroups.of({"red": ["cam-1"], "hall-a": ["cam-1"]}))
    try:
        s.users.add("ada", ["admin"], None)
        ada = s.users.actor("ada")
        s.watchlists.create("wanted-2026", Category.WANTED, ada)
        hook = "http://127.0.0.1:9/h"
        with pytest.raises(InvalidInput, match=r"no watchlist 'Wantd-2026' \(known: wanted-2026\)"):
            add_subscription(s.webhooks, ada, "x", hook, ["alert"], ["Wantd-2026"])
        with pytest.raises(InvalidInput, match=r"no camera group 'blue' \(known: hall-a, red\)"):
            add_subscription(s.webhooks, ada, "x", hook, camera_groups=["blue"])
        assert s.webhooks.all(ada) == [] and s.audit.entries()[-1].action != "webhook.add"
        info, _ = add_subscription(s.webhooks, ada, "x", hook, ["alert"], ["WANTED-2026"], camera_groups=["Red"])
        assert info.watchlists == ("wanted-2026",) and info.camera_groups == ("Red",)
    finally:
        s.engine.dispose()
