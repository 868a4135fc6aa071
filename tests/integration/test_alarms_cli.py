"""The alarm workflow on the command line: an admin sets a watchlist's alert policy (others are refused, a bad
policy names what is wrong), operators claim, take over and acknowledge alarms with one clear line for every
refusal, and `alert list` / `alert show` give priority, owner, time to escalation and every step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from metrosight.bus.payloads import AlertV1
from metrosight.core.types import Category, Match
from metrosight.policy.rules import Authorisation
from metrosight.store.repo import Store
from tests.integration.helpers import bootstrap, cli, json_lines

pytestmark = pytest.mark.integration


def camera_alert(home: Path) -> int:
    """An approved entry and one alert of it, stored as a camera stores it (group red-central)."""
    s = Store.for_home(home)
    try:
        ada, bob = s.users.actor("ada"), s.users.actor("bob")
        v = np.random.default_rng(1).normal(size=128).astype(np.float32)
        auth = Authorisation("order", "court", "R-1", datetime.now(UTC) + timedelta(days=9))
        s.entries.enroll("wl", "Ann", v / np.linalg.norm(v), "m", "a.jpg", "a" * 64, 0.9, ada, auth)
        s.entries.approve("wl", "Ann", bob)
        e = s.entries.all("wl")[0]
        m = Match(e.id, "Ann", "wl", Category.WANTED, 0.95, 0.3)
        alert = AlertV1.of_match(
            m,
            camera_id="cam-1",
            track_id=1,
            first_seen=1,
            last_seen=2,
            event_id="cam-1:t:1",
            samples=3,
            group="red-central",
        )
        return s.alerts.store_sighting(alert, None).alert_id
    finally:
        s.engine.dispose()


def test_policy_and_alarm_steps_on_the_command_line(home: Path) -> None:
    bootstrap(home)
    assert cli(home, "--as", "ada", "user", "add", "carol", "-r", "operator")[0] == 0
    assert cli(home, "--as", "ada", "user", "add", "vic", "-r", "viewer")[0] == 0
    assert cli(home, "--as", "ada", "watchlist", "create", "wl", "--category", "wanted")[0] == 0
    code, _, err = cli(
        home, "--as", "ada", "watchlist", "policy", "wl", "--escalate-after", "60", "--escalate-to", "admin"
    )
    assert code != 0 and "needs acknowledgement required" in err and "Traceback" not in err
    code, _, err = cli(home, "--as", "bob", "watchlist", "policy", "wl", "--priority", "critical")
    assert code != 0 and "may not set alert policies" in err
    # the policy's camera groups are the configuration's: refused without it, and a mistyped group is refused
    code, _, err = cli(home, "--as", "ada", "watchlist", "policy", "wl", "--groups", "red-central")
    assert code != 0 and "no configuration was given" in err
    cfg = home.parent / "cameras.yaml"
    cfg.write_text("cameras:\n  - {id: cam-1, source: cam-1.mp4, group: red-central}\n")
    code, _, err = cli(home, "--config", str(cfg), "--as", "ada", "watchlist", "policy", "wl", "--groups", "red-centrl")
    assert code != 0 and "no camera group 'red-centrl'" in err and "red-central" in err
    code, out, _ = cli(
        home, "--config", str(cfg), "--as", "ada", "watchlist", "policy", "wl", "--priority", "critical",
        "--ack-required", "--groups", "red-central", "--escalate-after", "600", "--escalate-to", "admin",
    )  # fmt: skip
    assert code == 0 and "critical" in out and "after 10m00s to admin" in out
    code, out, _ = cli(home, "watchlist", "policy", "--json")
    [p] = json_lines(out)
    assert (p["watchlist"], p["groups"], p["escalate_after_s"], p["set_by"]) == ("wl", ["red-central"], 600, "ada")
    code, _, err = cli(home, "watchlist", "policy", "nope")
    assert code != 0 and "no watchlist named 'nope'" in err
    aid = str(camera_alert(home))

    code, out, _ = cli(home, "--as", "bob", "alert", "claim", aid)
    assert code == 0 and "critical, claimed by bob, escalates to admin in" in out
    code, _, err = cli(home, "--as", "carol", "alert", "claim", aid)
    assert code != 0 and "claimed by bob: take it over" in err
    code, _, err = cli(home, "--as", "carol", "alert", "ack", aid)
    assert code != 0 and "claimed by bob, not carol" in err
    code, _, err = cli(home, "--as", "vic", "alert", "claim", aid)
    assert code != 0 and "needs the operator role" in err
    code, out, _ = cli(home, "--as", "carol", "alert", "takeover", aid, "--reason", "bob is off shift")
    assert code == 0 and "claimed by carol" in out
    code, out, _ = cli(home, "--as", "carol", "alert", "ack", aid)
    assert code == 0 and "acknowledged by carol" in out

    code, out, _ = cli(home, "--as", "bob", "alert", "list", "--json")
    [row] = json_lines(out)
    assert row["alarm"]["state"] == "acknowledged" and row["alarm"]["owner"] == "carol" and row["status"] == "new"
    code, out, _ = cli(home, "--as", "bob", "alert", "show", aid)
    assert "alarm: critical, acknowledged by carol" in out
    assert "taken over by carol" in out and "from bob: bob is off shift" in out
    code, out, _ = cli(home, "--as", "ada", "audit", "show", "--json")
    acts = [x["action"] for x in json_lines(out)]
    assert {"watchlist.policy", "alarm.raise", "alarm.claim", "alarm.takeover", "alarm.acknowledge"} <= set(acts)
