"""Crowd-safety alarms are stored like every behaviour event, on SQLite and PostgreSQL: an occupancy alarm (no
person, no track) and its end update, and wrong-way crossings, raised by the engine on a real ETH/UCY scene and
carried in the bus payloads the camera worker publishes."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from metrosight.analytics.crowd import OccupancyAlarm, WrongWay
from metrosight.analytics.engine import BehaviourEngine
from metrosight.analytics.model import Scene
from metrosight.cli.common import event_line
from metrosight.eval.behaviour import (
    HarnessRules,
    Perturbation,
    as_tracks,
    extent,
    identity_plane,
    load_trajectories,
    quadrant_zones,
)
from metrosight.eval.crowd import centre_lines
from metrosight.pipeline.analytics import payload_of, update_of
from metrosight.policy.crypto import KeyRing
from metrosight.services.sinks import EventSink
from metrosight.store.db import open_engine
from metrosight.store.repo import Store
from tests.conftest import require_data

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'x.db'}"
    return request.getfixturevalue("pg_url")


def test_occupancy_and_wrong_way_events_are_stored_with_their_end(url, tmp_path):
    trajs = load_trajectories(require_data("eth_ucy_trajectories", "crowds_zara01.txt"))
    trajs = {k: v for k, v in trajs.items() if v[0, 0] < 120.0}  # the first two minutes
    zones = quadrant_zones(trajs)
    lines = centre_lines(trajs)
    scene = Scene(
        zones, lines, plane=identity_plane(), view=extent(trajs),
        occupancy=(OccupancyAlarm("busy-corner", "sw", 2, 5.0, 1, 2.0),),
        wrong_way=(WrongWay("ns", "in"),),
    )  # fmt: skip
    engine = BehaviourEngine(scene, HarnessRules().rules)
    frames, _ = as_tracks(trajs, Perturbation())
    events = []
    for ts, obs, ended in frames:
        events += engine.update(ts, obs, ended)
    events += engine.finish(frames[-1][0])
    starts = [e for e in events if e.kind in ("occupancy", "wrong_way") and e.phase != "end"]
    ends = [e for e in events if e.kind == "occupancy" and e.phase == "end"]
    assert any(e.kind == "occupancy" for e in starts) and any(e.kind == "wrong_way" for e in starts)

    store = Store(open_engine(url), KeyRing(Fernet.generate_key()))
    sink = EventSink(store, tmp_path / "media")
    for e in starts:
        sink.on_event(payload_of(e, "zara", "run1", None, None))
    for e in ends:
        sink.on_update(update_of(e, "zara", "run1"))
    sink.on_event(payload_of(starts[0], "zara", "run1", None, None))  # a redelivered event is stored once

    stored = store.events.all()
    assert len(stored) == len(starts)
    occ = [r for r in stored if r.kind == "occupancy"]
    assert occ and all(r.track_id is None and "person" not in r.data for r in occ)
    assert all(r.data["alarm"] == "busy-corner" and r.data["zone"] == "sw" and r.data["max_people"] == 2 for r in occ)
    assert all(r.end_ts is not None and r.end_ts >= r.start_ts and r.data["peak"] >= 3 for r in occ)
    ww = [r for r in stored if r.kind == "wrong_way"]
    assert ww and all(r.track_id is not None and r.end_ts == r.start_ts for r in ww)
    assert all(r.data["line"] == "ns" and r.data["direction"] == "out" and r.data["allowed"] == "in" for r in ww)
    line = event_line(payload_of(starts[0], "zara", "run1", None, None), None)
    assert line.startswith("EVENT zara ") and "track None" not in line
