"""An erasure reaches the webhook outbox, on SQLite AND PostgreSQL: with the receiver down, a person's alert (and its
episode) wait in the outbox; revoking their entry, shredding their watchlist, their entry expiring or the retention
purge of their alert cancels those deliveries in the same transaction (body cleared, a body-less log row says why),
no byte of their name is left in the outbox tables (nor, on SQLite, in the database's files), and the receiver,
back up, gets the other person's alert and nothing about them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from metrosight.bus.payloads import AlertV1, EpisodeV1
from metrosight.config.webhooks import WebhooksConfig
from metrosight.core.types import Category, Match
from metrosight.outbound.delivery import DeliveryWorker, make_client
from metrosight.outbound.events import to_outbound
from metrosight.outbound.webhooks import WebhookChannel, add_subscription
from metrosight.policy.rules import Authorisation
from metrosight.store.repo import Store
from metrosight.store.retention import Retention
from tests.integration.receivers import WebhookReceiver
from tests.integration.test_webhooks_store import open_store, url  # noqa: F401 - the sqlite/postgresql fixture

pytestmark = pytest.mark.integration
NAME, OTHER = "Miranda Quillfeather", "Bartholomew Oakenshaw"
CFG = WebhooksConfig(
    workers=1, poll_seconds=0.05, backoff_initial_seconds=0.05, backoff_max_seconds=0.1, jitter_seconds=0.01
)
OUTBOX_TABLES = ("webhook_deliveries", "webhook_attempts")


@pytest.fixture()
def store(url: str) -> Iterator[Store]:  # noqa: F811 - the imported fixture
    s = open_store(url)
    s.users.add("ada", ["admin"], None)
    s.users.add("appr", ["approver"], s.users.actor("ada"))
    yield s
    s.engine.dispose()


def enrol(store: Store, watchlist: str, name: str, days: float = 3) -> int:
    auth = Authorisation("law", "court", "R-1", datetime.now(UTC) + timedelta(days=days))
    sid, _ = store.entries.enroll(
        watchlist, name, np.ones(128, np.float32), "m", "p.jpg", "cd" * 32, 0.9, store.users.actor("appr"), auth
    )
    return sid


def raise_alert(store: Store, channel: WebhookChannel, sid: int, name: str, watchlist: str, event_id: str) -> int:
    """One sighting stored and offered to the channel with its episode event: two deliveries queued."""
    alert = AlertV1.of_match(
        Match(sid, name, watchlist, Category.WANTED, 0.95, 0.3),
        camera_id="cam-1",
        track_id=1,
        first_seen=1.0,
        last_seen=2.0,
        event_id=event_id,
        samples=3,
    )
    stored = store.alerts.store_sighting(alert, None)
    episode = EpisodeV1.of_sighting(alert, stored.alert_id, True, 1, stored.status)
    for topic, payload in (("alerts", alert), ("episodes", episode)):
        channel.offer(to_outbound(topic, payload, {}, time.time()))
    return stored.alert_id


def outbox_dump(store: Store) -> str:
    with store.engine.connect() as c:
        return " ".join(str(v) for t in OUTBOX_TABLES for row in c.execute(text(f"SELECT * FROM {t}")) for v in row)


def file_bytes(db: str) -> bytes:
    if not db.startswith("sqlite"):
        return b""
    path = Path(db.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def revoke(store: Store, _alert: int) -> str:
    store.entries.revoke("wl", NAME, store.users.actor("ada"), "order lifted")
    return "entry revoked"


def shred(store: Store, _alert: int) -> str:
    store.watchlists.shred("wl", store.users.actor("ada"))
    return "watchlist shredded"


def expire(store: Store, _alert: int) -> str:
    assert store.entries.expire_due(datetime.now(UTC) + timedelta(days=2)) == 1  # hers (1 day), not his (3 days)
    return "entry expired"


def purge(store: Store, alert_id: int) -> str:
    with store.uow.write() as s:  # her alert is 10 days old, his is new
        s.execute(
            text("UPDATE alerts SET created_at = :t WHERE id = :i"),
            {"t": datetime.now(UTC) - timedelta(days=10), "i": alert_id},
        )
    counts = store.retention.purge(Retention(5, None, None, None), store.users.actor("ada"))
    assert counts["alerts"] == 1 and counts["webhook_deliveries_cancelled"] == 2
    return "alert purged"


@pytest.mark.parametrize("erase", [revoke, shred, expire, purge], ids=lambda f: f.__name__)
def test_erasure_cancels_her_queued_deliveries_and_leaves_others(
    store: Store,
    url: str,  # noqa: F811
    erase: Callable[[Store, int], str],
) -> None:
    ada = store.users.actor("ada")
    store.watchlists.create("wl", Category.WANTED, ada)
    store.watchlists.create("wl2", Category.WANTED, ada)
    hers = enrol(store, "wl", NAME, days=1)
    his = enrol(store, "wl2" if erase is shred else "wl", OTHER)
    rx = WebhookReceiver()  # down: not started
    info, secret = add_subscription(store.webhooks, ada, "control room", rx.url)
    rx.secret = secret
    channel = WebhookChannel(store.outbox, CFG)
    her_alert = raise_alert(store, channel, hers, NAME, "wl", "e-her")
    raise_alert(store, channel, his, OTHER, "wl2" if erase is shred else "wl", "e-his")
    worker = DeliveryWorker(store.outbox, CFG, make_client)
    assert worker.run_once(limit=10) == 4  # all four attempted, refused by the receiver that is down
    assert store.outbox.pending() == 4
    her_bodies = [b for (b,) in _bodies(store) if NAME in b]
    assert len(her_bodies) == 2 and all(
        b.encode() in file_bytes(url) or url.startswith("postgresql") for b in her_bodies
    )

    reason = erase(store, her_alert)

    rows = {d.event_id: d for d in store.webhooks.deliveries(ada, info.id, limit=100)}
    mine = [e for e in rows if "e-her" in e]
    assert len(mine) == 2 and all(rows[e].state == "cancelled" for e in mine)
    assert all(rows[e].state == "pending" for e in rows if "e-his" in e)  # his are untouched
    with store.engine.connect() as c:
        logged = [r for (r,) in c.execute(text("SELECT error FROM webhook_attempts WHERE error LIKE 'cancelled%'"))]
        assert logged == [f"cancelled: {reason}"] * 2  # a body-less log row each, saying why and naming no one
        assert c.execute(text("SELECT count(*) FROM webhook_deliveries WHERE body IS NOT NULL")).scalar() == 2
    dump = outbox_dump(store)
    assert NAME not in dump and "Quillfeather" not in dump and OTHER in dump
    for body in her_bodies:  # SQLite: the cleared bodies are gone from the database file and its WAL too
        assert body.encode() not in file_bytes(url)
    details = [json.loads(e.details) if isinstance(e.details, str) else e.details for e in store.audit.entries(ada)]
    cancelled = [d.get("webhook_deliveries_cancelled") for d in details if d and "webhook_deliveries_cancelled" in d]
    assert cancelled == [2] or (erase is purge and cancelled == [])  # audited with the erasure
    if erase is purge:
        assert [d["counts"]["webhook_deliveries_cancelled"] for d in details if d and "counts" in d] == [2]

    # a late bus message about her (a sighting raised just before the erasure, its episode) is not queued (after
    # the purge of her alert her entry is still live: a new sighting of her is a new alert)
    late = AlertV1.of_match(
        Match(hers, NAME, "wl", Category.WANTED, 0.95, 0.3),
        camera_id="cam-2",
        track_id=2,
        first_seen=3.0,
        last_seen=4.0,
        event_id="e-her-late",
        samples=3,
    )
    late_episode = EpisodeV1.of_sighting(late, her_alert, False, 2, "new")
    for topic, payload in [] if erase is purge else [("alerts", late), ("episodes", late_episode)]:
        channel.offer(to_outbound(topic, payload, {}, time.time()))
    assert store.outbox.pending() == 2 and NAME not in outbox_dump(store)

    rx.start()  # the receiver comes back: it gets his alert and episode, nothing about her
    try:
        time.sleep(0.2)  # past the retry backoff
        for _ in range(20):
            worker.run_once(limit=10)
            if len(rx.got) >= 2:
                break
            time.sleep(0.1)
        time.sleep(0.2)
        worker.run_once(limit=10)
        got = [r.body.decode() for r in rx.got]
        assert len(got) == 2 and all(OTHER in b and "Quillfeather" not in b for b in got)
        assert all(r.verified for r in rx.got)
        assert all(json.loads(b)["id"].endswith("e-his") for b in got)
    finally:
        rx.stop()


def _bodies(store: Store) -> list[tuple[str]]:
    with store.engine.connect() as c:
        return [(b,) for (b,) in c.execute(text("SELECT body FROM webhook_deliveries WHERE body IS NOT NULL"))]


def test_outbox_rows_never_outlive_the_alert_retention(store: Store) -> None:
    """Whatever its state (even still pending), an outbox row older than the alert retention is deleted by the
    purge, with its delivery log; a newer one stays."""
    ada = store.users.actor("ada")
    info, _ = add_subscription(store.webhooks, ada, "x", "http://127.0.0.1:9/h")
    old = datetime.now(UTC) - timedelta(days=10)
    store.outbox.enqueue("old", "alert", f'{{"data":{{"subject":"{NAME}"}}}}', [info.id], timedelta(days=30), old)
    store.outbox.enqueue("new", "behaviour", '{"data":{}}', [info.id], timedelta(days=30))
    counts = store.retention.purge(Retention(5, None, None, None), ada)
    assert counts["webhook_deliveries_purged"] == 1
    assert [d.event_id for d in store.webhooks.deliveries(ada, info.id)] == ["new"]
    assert NAME not in outbox_dump(store)
