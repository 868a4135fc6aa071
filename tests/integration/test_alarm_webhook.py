"""An alarm not acknowledged within its limit escalates and reaches a real webhook receiver on loopback, signed,
each step once: through `metrosight serve` alone (its alarm clock and its own outbound dispatcher), `serve` with
cameras (the supervisor's dispatcher), and a Redis deployment's `serve --bus` (the steps published on Redis,
delivered by the `outbound` consumer group)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from metrosight.core.types import Category
from metrosight.outbound.webhooks import add_subscription
from metrosight.policy.alarms import AlarmPolicy
from metrosight.policy.rules import Actor
from metrosight.store.repo import Store
from tests.conftest import REPO_ROOT
from tests.e2e.test_operator_ui import METROSIGHT
from tests.integration.procs import free_port
from tests.integration.receivers import WebhookReceiver
from tests.integration.test_alarms_cli import camera_alert

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def prepare(home: Path, rx: WebhookReceiver) -> None:
    home.mkdir(parents=True, exist_ok=True)
    s = Store.for_home(home)
    try:
        s.users.add("ada", ["admin", "approver"], None)
        ada = s.users.actor("ada")
        s.users.add("bob", ["approver", "operator"], ada)
        s.watchlists.create("wl", Category.WANTED, ada)
        s.alarms.set_policy("wl", AlarmPolicy("critical", None, True, (), 2, "admin"), ada)
        _, rx.secret = add_subscription(s.webhooks, ada, "psim", rx.url, ["alarm"])
    finally:
        s.engine.dispose()


@pytest.mark.parametrize("deployment", ["serve", "serve --bus", "serve with cameras"])
def test_an_escalation_reaches_the_webhook_once(
    deployment: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rx = WebhookReceiver().start()
    home = tmp_path / "home"
    prepare(home, rx)
    port = free_port()
    args = [METROSIGHT, "--home", str(home), "serve", "--port", str(port)]
    if deployment == "serve --bus":
        args += ["--no-cameras", "--bus", request.getfixturevalue("redis_server").url]
    elif deployment == "serve":
        args += ["--no-cameras"]
    else:  # the supervisor's dispatcher delivers the steps (its camera's file is not a video: it stays down)
        (tmp_path / "stage.mp4").write_bytes(b"not a video")
        cfg = tmp_path / "config.yaml"
        cfg.write_text(f"cameras:\n  - {{id: stage, source: {tmp_path / 'stage.mp4'}, group: red-central}}\n")
        args += ["--config", str(cfg)]
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        aid = camera_alert(home)
        got = rx.wait_for(2, 60)  # raised, then escalated (nobody acknowledges it)
        store = Store.for_home(home)
        try:
            store.alarms.act(aid, Actor("bob", frozenset({"operator"})), "claim")  # after the escalation: a 3rd step
        finally:
            store.engine.dispose()
        got = rx.wait_for(3, 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        rx.stop()
    assert all(r.verified for r in rx.got), [r.why for r in rx.got]
    steps = [(r.doc["data"]["transition"], r.doc["data"]["escalated"]) for r in got]
    assert steps == [("raise", False), ("escalate", True), ("claim", True)], steps
    keys = [r.key for r in got]
    assert len(keys) == len(set(keys)) == 3  # none twice
    esc = got[1].doc
    assert (esc["type"], esc["schema"], esc["watchlists"]) == ("alarm", "metrosight.alarm/1", ["wl"])
    assert (esc["data"]["alert_id"], esc["data"]["escalated_to"], esc["data"]["priority"]) == (aid, "admin", "critical")
    assert esc["data"]["subject"] == "Ann" and "crop" not in str(esc)
