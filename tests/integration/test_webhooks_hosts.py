"""Every host delivers the alerts it stores to a webhook: a node (supervisor and worker process) and a cluster
(worker on a real Redis, store consumer, and the outbound consumer in group ``outbound`` as ``serve --bus`` and
``consume`` run it), on the Hamilton clip with Lin-Manuel Miranda enrolled (``metrosight run``:
test_webhooks_video.py). Each sighting stored arrives, signed, with its episode event; none twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from metrosight.bus.redis_streams import connect
from metrosight.config.home import Home
from metrosight.config.webhooks import WebhooksConfig
from metrosight.outbound.delivery import DeliveryWorker
from metrosight.outbound.hosts import GROUP, start_redis
from metrosight.outbound.webhooks import add_subscription
from metrosight.pipeline.runtime import Runtime
from metrosight.store.repo import Store
from tests.integration.procs import free_port
from tests.integration.receivers import WebhookReceiver
from tests.integration.servers import RedisServer
from tests.integration.test_one_loop import (  # noqa: F401 - the fixtures of the one-loop test
    SECRET,
    clip,
    copy_of,
    installation,
    run_cluster,
    run_node,
    settings_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


def subscribe(home: Path, rx: WebhookReceiver) -> None:
    store = Store.for_home(home)
    _, rx.secret = add_subscription(store.webhooks, store.users.actor("ada"), "vms", rx.url, ["alert", "episode"])
    store.engine.dispose()


def delivered_everything(home: Path, rx: WebhookReceiver) -> None:
    """Deliver what the host left queued (as the next running host would), then check the receiver's view."""
    store = Store.for_home(home)
    DeliveryWorker(store.outbox, WebhooksConfig(poll_seconds=0.1)).start().stop(60)
    sightings = {s.event_id for a in store.alerts.all() for s in store.alerts.sightings(a.id)}
    store.engine.dispose()
    assert sightings
    got = rx.accepted()
    keys = [r.key for r in got]
    assert len(keys) == len(set(keys)) and all(r.verified for r in rx.got)
    alerts = {r.doc["id"] for r in got if r.doc["schema"] == "metrosight.alert/1"}
    episodes = {r.doc["data"]["sighting_event_id"] for r in got if r.doc["type"] == "episode"}
    assert alerts == sightings == episodes
    assert all(
        r.doc["data"]["subject"] == "Lin-Manuel Miranda"
        for r in got
        if r.doc["type"] == "alert" and r.doc["schema"] == "metrosight.alert/1"
    )


def test_node_delivers_its_alerts(installation: Path, clip: Path, tmp_path: Path) -> None:  # noqa: F811
    home = copy_of(installation, tmp_path / "node")
    rx = WebhookReceiver().start()
    try:
        subscribe(home, rx)
        run_node(home, clip, f"rtsp://operator:{SECRET}@127.0.0.1:{free_port()}/live/door")
        delivered_everything(home, rx)
    finally:
        rx.stop()


def test_cluster_delivers_its_alerts_through_the_outbound_group(  # noqa: F811 - the imported fixtures
    installation: Path,  # noqa: F811
    clip: Path,  # noqa: F811
    tmp_path: Path,
    redis_server: RedisServer,
) -> None:
    home = copy_of(installation, tmp_path / "cluster")
    rx = WebhookReceiver().start()
    try:
        subscribe(home, rx)
        rt = Runtime.open(Home(home), settings_for([{"id": "clip", "source": str(clip)}]))
        halt = start_redis(rt.services, redis_server.url)
        c = connect(redis_server.url)
        # the group starts at the streams' end: wait until it is on every stream the cluster publishes to
        redis_server.wait_for_group(GROUP, tuple(f"metrosight:stream:{t}" for t in ("alerts", "episodes")))
        run_cluster(home, clip, f"rtsp://operator:{SECRET}@127.0.0.1:{free_port()}/live/door", redis_server.url)
        deadline = time.monotonic() + 60  # the outbound consumer reads what was published (episodes: the store's)
        while time.monotonic() < deadline:
            groups = [c.xinfo_groups(f"metrosight:stream:{t}") for t in ("alerts", "episodes")]
            if all(
                any(g["name"] == GROUP.encode() and not g["pending"] and not g.get("lag") for g in gs) for gs in groups
            ):
                break
            time.sleep(0.2)
        halt()
        delivered_everything(home, rx)
    finally:
        rx.stop()
