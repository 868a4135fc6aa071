"""Webhooks from a real run: the Hamilton clip with Lin-Manuel Miranda enrolled delivers his alerts to a receiver
on loopback that checks every signature; with the receiver down for 30 s during the run, every alert still
arrives, none twice (by idempotency key)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from metrosight.config.webhooks import WebhooksConfig
from metrosight.outbound.delivery import DeliveryWorker
from metrosight.store.repo import Store
from tests.conftest import require_data
from tests.integration.helpers import bootstrap, cli, enrol_active, json_lines
from tests.integration.receivers import WebhookReceiver

pytestmark = pytest.mark.integration


def installation(tmp_path: Path, drain: float) -> tuple[Path, Path, Path]:
    """A home with Miranda (and Obama, who is not in the clip) enrolled; a config with fast retries."""
    ex = require_data("face_recognition_examples", "examples")
    home = tmp_path / "home"
    bootstrap(home)
    assert cli(home, "--as", "ada", "watchlist", "create", "wl", "--category", "wanted")[0] == 0
    for subject, photo in [("Lin-Manuel Miranda", "lin-manuel-miranda.png"), ("Barack Obama", "obama.jpg")]:
        code, out, _ = enrol_active(home, "wl", "-s", subject, ex / photo)
        assert code == 0 and "enrolled 1 photo" in out, out
    config = tmp_path / "hooks.yaml"
    config.write_text(
        "outbound:\n  webhooks:\n"
        f"    drain_seconds: {drain}\n    backoff_initial_seconds: 0.5\n    backoff_max_seconds: 3\n"
        "    jitter_seconds: 0.5\n    timeout_seconds: 5\n    poll_seconds: 0.2\n"
    )
    return home, config, ex / "short_hamilton_clip.mp4"


def subscribe(home: Path, url: str, *events: str) -> str:
    types = [a for e in events or ("alert",) for a in ("-e", e)]
    code, out, err = cli(home, "--as", "ada", "webhooks", "add", "control room", url, *types, "-w", "wl")
    assert code == 0, err
    return out.strip().splitlines()[-1]


def sightings(home: Path) -> set[str]:
    store = Store.for_home(home)
    try:
        return {s.event_id for a in store.alerts.all() for s in store.alerts.sightings(a.id)}
    finally:
        store.engine.dispose()


def test_miranda_alerts_reach_the_webhook_signed(tmp_path: Path) -> None:
    home, config, clip = installation(tmp_path, drain=30)
    rx = WebhookReceiver().start()
    try:
        rx.secret = subscribe(home, rx.url, "alert", "episode", "alert_review")
        code, out, err = cli(home, "run", "--config", config, "--source", clip, "--camera", "stage", "--json")
        assert code == 0, err
        printed = [x for x in json_lines(out) if x["type"] == "alert"]
        assert printed and {a["subject"] for a in printed} == {"Lin-Manuel Miranda"}
        # his episode: opened by the first sighting, each later one appended (one event per stored sighting)
        episodes = sorted(
            (r.doc for r in rx.accepted() if r.doc["type"] == "episode"), key=lambda d: d["data"]["sightings"]
        )
        assert [d["data"]["sightings"] for d in episodes] == list(range(1, len(printed) + 1))
        assert episodes[0]["data"]["opened"] and not any(d["data"]["opened"] for d in episodes[1:])
        assert {d["data"]["sighting_event_id"] for d in episodes} == {a["event_id"] for a in printed}
        # a review on the command line is queued for the webhook and delivered by a running host's worker
        (alert_id,) = {a["alert_id"] for a in printed}
        code, _, err = cli(home, "--as", "bob", "alert", "confirm", str(alert_id))
        assert code == 0, err
        store = Store.for_home(home)
        worker = DeliveryWorker(store.outbox, WebhooksConfig(poll_seconds=0.1)).start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(r.doc["type"] == "alert_review" for r in rx.accepted()):
            time.sleep(0.1)
        worker.stop()
        store.engine.dispose()
        (review,) = [r.doc for r in rx.accepted() if r.doc["type"] == "alert_review"]
        assert review["data"]["reviewer"] == "bob" and review["data"]["status"] == "confirmed_once"
        assert review["data"]["subject"] == "Lin-Manuel Miranda" and review["watchlists"] == ["wl"]
        got = [r for r in rx.accepted() if r.doc["type"] == "alert"]
        assert got and all(r.verified for r in rx.got)  # every request carried a valid signature
        by_id = {r.doc["id"]: r for r in got if r.doc["type"] == "alert" and r.doc["schema"] == "metrosight.alert/1"}
        assert set(by_id) == {a["event_id"] for a in printed} == sightings(home)
        for r in by_id.values():
            d = r.doc
            assert d["data"]["subject"] == "Lin-Manuel Miranda" and d["watchlists"] == ["wl"]
            assert d["camera"]["id"] == "stage" and d["category"] == "wanted"
            assert "crop_jpeg" not in d["data"] and r.headers["x-metrosight-event"] == "alert"
        assert len({r.key for r in got}) == len(got)  # one accepted request per delivery
    finally:
        rx.stop()


@pytest.mark.slow
def test_receiver_down_30s_during_a_run_every_alert_once(tmp_path: Path) -> None:
    home, config, clip = installation(tmp_path, drain=90)
    rx = WebhookReceiver()
    rx.secret = subscribe(home, rx.url)  # subscribed, but nothing listens: the receiver is down
    down_at = time.monotonic()
    up_after = 30.0

    def come_back() -> None:
        time.sleep(max(0.0, up_after - (time.monotonic() - down_at)))
        rx.start()

    t = threading.Thread(target=come_back, daemon=True)
    t.start()
    code, out, err = cli(home, "run", "--config", config, "--source", clip, "--camera", "stage", "--json")
    t.join()
    try:
        assert code == 0, err
        printed = {x["event_id"] for x in json_lines(out) if x["type"] == "alert"}
        assert printed and printed == sightings(home)
        got = rx.accepted()
        assert min(r.at for r in got) - (time.time() - (time.monotonic() - down_at)) >= up_after - 1
        alerts = [r for r in got if r.doc["schema"] == "metrosight.alert/1"]
        assert {r.doc["id"] for r in alerts} == printed  # every alert delivered after the outage
        keys = [r.key for r in got]
        assert len(keys) == len(set(keys))  # none twice
        store = Store.for_home(home)
        ada = store.users.actor("ada")
        rows = store.webhooks.deliveries(ada)
        assert rows and all(d.state == "delivered" for d in rows)
        assert any(d.attempts > 1 for d in rows)  # they were retried while the receiver was down
        store.engine.dispose()
    finally:
        rx.stop()
