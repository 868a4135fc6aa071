"""Issue 18's outbound must-shows on the Hamilton clip with Lin-Manuel Miranda enrolled, on SQLite and PostgreSQL:
one run delivers her alerts to all three channels — a signed webhook, a real mosquitto broker (password, QoS 1) and
a subscriber in the test, and a real syslog collector — and the audit entries of the whole story (users, enrolment,
approval, a refused credential, the alert) reach the collector with their sequence numbers and hashes, in order,
none missing and none twice, although the collector was down when the run started and came back during it."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from metrosight.store.repo import Store
from tests.conftest import require_data
from tests.integration.helpers import bootstrap, cli, enrol_active, json_lines
from tests.integration.receivers import Mosquitto, Subscriber, SyslogReceiver, WebhookReceiver

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SD = "audit@32473"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def story(request, tmp_path_factory):
    ex = require_data("face_recognition_examples", "examples")
    home = tmp_path_factory.mktemp("outbound")
    url = None
    with pytest.MonkeyPatch.context() as mp:
        if request.param == "postgresql":  # every command of the story on one PostgreSQL database
            url = request.getfixturevalue("postgres_server").create_database()
            mp.setenv("METROSIGHT__STORAGE__DATABASE_URL", url)
        yield (*_story(home, ex), url)


def _story(home: Path, ex: Path) -> tuple:
    rx = SyslogReceiver()  # not started: the collector is down when the run starts
    broker = Mosquitto(home / "broker", users={"metrosight": "mq-Secret-1", "reader": "mq-reader"}).start()
    sub = Subscriber(broker, "metro/#", "reader", "mq-reader")
    (home / "mq.pw").write_text("mq-Secret-1\n")
    bootstrap(home)
    assert cli(home, "--as", "ada", "watchlist", "create", "wl", "--category", "wanted")[0] == 0
    code, out, _ = enrol_active(home, "wl", "-s", "Lin-Manuel Miranda", ex / "lin-manuel-miranda.png")
    assert code == 0 and "enrolled 1 photo" in out, out
    code, _, err = cli(home, "--as", "bob", "alert", "list", env={"METROSIGHT_PASSWORD": "wrong"})
    assert code != 0  # a refused credential: a security event in the audit log
    hook = WebhookReceiver().start()  # the third channel: a signed webhook, subscribed to alerts of list wl
    code, out, err = cli(home, "--as", "ada", "webhooks", "add", "control room", hook.url, "-e", "alert", "-w", "wl")
    assert code == 0, err
    hook.secret = out.strip().splitlines()[-1]
    cfg = home / "outbound.yaml"
    cfg.write_text(
        "outbound:\n"
        f"  syslog: {{host: 127.0.0.1, port: {rx.port}, poll_seconds: 0.2, retry_max_seconds: 1.0}}\n"
        f"  mqtt: {{host: 127.0.0.1, port: {broker.port}, username: metrosight, password_file: {home / 'mq.pw'},"
        " topic_prefix: metro}\n"
        "  webhooks: {drain_seconds: 20, poll_seconds: 0.2, backoff_initial_seconds: 0.5, backoff_max_seconds: 2}\n"
    )
    comeback = threading.Timer(3.0, rx.start)  # the collector comes back while the clip plays
    comeback.start()
    try:
        code, out, err = cli(
            home, "run", "--source", ex / "short_hamilton_clip.mp4", "--camera", "stage", "--json", "--config", cfg
        )
    finally:
        comeback.join()
        rx.stop()
        hook.stop()
    assert code == 0, err
    assert "mq-Secret-1" not in out + err
    lines = json_lines(out)
    alert_id = next(x["alert_id"] for x in lines if x["type"] == "alert")
    try:  # an operator confirms her alert from the CLI: the review goes out too
        code, _, err = cli(home, "--config", cfg, "--as", "bob", "alert", "confirm", str(alert_id))
        assert code == 0, err
        assert sub.wait_for(lambda ms: any(m.topic == "metro/alerts/reviews" for m in ms), 15)
    finally:
        sub.close()
        broker.stop()
    return home, lines, rx, sub, hook


def test_every_audit_entry_reached_syslog_in_order_with_its_hash(story):
    home, lines, rx, _, _, url = story
    assert not rx.errors
    entries = Store.for_home(home, url).audit.entries()
    # the review made after the run is forwarded by the next host that runs (a CLI command forwards nothing)
    assert entries[-1].action == "alert.confirm"
    entries = entries[:-1]
    got = [(int(r.sd[SD]["seq"]), r.sd[SD]["hash"], r.msgid) for r in rx.records]
    assert got == [(e.seq, e.hash, e.action) for e in entries]  # in order, none missing, none twice
    actions = [e.action for e in entries]
    for wanted in ("user.add", "watchlist.create", "entry.approve", "cli.auth_failed", "alert.create"):
        assert wanted in actions, actions
    assert any(a.startswith("entry.") and a != "entry.approve" for a in actions)  # the enrolment
    printed = [x for x in lines if x["type"] == "alert"]
    assert printed and {a["subject"] for a in printed} == {"Lin-Manuel Miranda"}
    alert = next(r for r in rx.records if r.msgid == "alert.create")
    details = json.loads(alert.msg or "")["details"]
    assert (alert.sd[SD]["actor"], details["watchlist"]) == ("system:stage", "wl")
    assert details["event_id"] in {a["event_id"] for a in printed}
    refused = next(r for r in rx.records if r.msgid == "cli.auth_failed")
    assert (refused.severity, refused.sd[SD]["class"], refused.sd[SD]["target"]) == (4, "security", "bob")
    assert rx.connections == 1  # nothing could be sent before the collector came back


def test_her_alerts_reached_the_mqtt_subscriber(story):
    home, lines, _, sub, _, _ = story
    printed = [x for x in lines if x["type"] == "alert"]
    got = [json.loads(m.payload) for m in sub.on("metro/alerts")]
    assert [g["id"] for g in got] == [a["event_id"] for a in printed]  # each once, in order
    for g in got:
        assert (g["type"], g["schema"], g["data"]["subject"], g["camera"]["id"]) == (
            "alert",
            "metrosight.alert/1",
            "Lin-Manuel Miranda",
            "stage",
        )
        assert g["watchlists"] == ["wl"] and "crop_jpeg" not in g["data"]
    assert all(m.qos == 1 for m in sub.on("metro/alerts"))
    ended = {json.loads(m.payload)["data"]["event_id"] for m in sub.on("metro/alerts/updates")}
    assert ended == {a["event_id"] for a in printed}  # every track's end
    availability = [m.payload for m in sub.on("metro/availability")]
    assert availability[0] == b"online" and availability[-1] == b"offline"
    review = json.loads(sub.on("metro/alerts/reviews")[0].payload)
    assert (review["type"], review["data"]["reviewer"], review["data"]["action"]) == ("alert_review", "bob", "confirm")
    assert review["schema"] == "metrosight.alert-review/1" and review["watchlists"] == ["wl"]
    # a command that hands over one event never touches the availability of the installation
    assert [m.payload for m in sub.on("metro/availability")] == [b"online", b"offline"]
    episodes = [json.loads(m.payload) for m in sub.on("metro/episodes")]
    assert episodes and {e["data"]["alert_id"] for e in episodes} == {alert_id_of(lines)}


def alert_id_of(lines: list[dict]) -> int:
    [alert_id] = {x["alert_id"] for x in lines if x["type"] == "alert"}
    return alert_id


def test_one_run_delivers_her_alerts_to_all_three_channels(story):
    _, lines, rx, sub, hook, _ = story
    printed = {a["event_id"] for a in lines if a["type"] == "alert"}
    assert printed
    by_webhook = {r.doc["id"] for r in hook.accepted() if r.doc and r.doc["schema"] == "metrosight.alert/1"}
    by_mqtt = {json.loads(m.payload)["id"] for m in sub.on("metro/alerts")}
    stored = [r for r in rx.records if r.msgid in ("alert.create", "alert.sighting")]  # each stored sighting
    by_syslog = {json.loads(r.msg or "")["details"]["event_id"] for r in stored}
    assert by_webhook == by_mqtt == by_syslog == printed
    assert all(r.verified for r in hook.got)  # every webhook delivery signed
