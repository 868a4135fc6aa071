"""Alarms under concurrency, on SQLite and on a real PostgreSQL: operators claiming one alarm at the same moment
(exactly one wins, the others are told who owns it), and several service processes' escalation timers and
publishers running at once on one database (each alarm escalates once, each step is published once)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from metrosight.bus.payloads import AlarmV1
from metrosight.policy.alarms import AlarmPolicy, AlarmTaken
from metrosight.policy.crypto import KeyRing
from metrosight.policy.rules import Actor
from metrosight.store.db import open_engine
from metrosight.store.repo import Store
from metrosight.store.transitions import Changed
from tests.integration.test_store_races import ADA, BOB, KEY, at_once, enrol, raise_alert, store  # noqa: F401

pytestmark = pytest.mark.integration

OPERATORS = [Actor(f"op{i}", frozenset({"operator"})) for i in range(8)]
POLICY = AlarmPolicy("critical", None, True, (), 30, "admin")


def alarm(store: Store) -> int:  # noqa: F811 - the fixture's name
    store.alarms.set_policy("wl", POLICY, ADA)
    enrol(store, "Eve", ADA, 1)
    store.entries.approve("wl", "Eve", BOB)
    return raise_alert(store, 1)


def twins(store: Store, n: int) -> list[Store]:  # noqa: F811
    """``n`` more stores on the same database, each with its own engine (as separate processes have)."""
    url = store.engine.url.render_as_string(hide_password=False)
    return [Store(open_engine(url, upgrade=False), KeyRing(KEY)) for _ in range(n)]


def test_operators_claiming_at_once_exactly_one_wins(store: Store) -> None:  # noqa: F811
    aid = alarm(store)
    out = at_once(*[(lambda op=op: store.alarms.act(aid, op, "claim")) for op in OPERATORS])
    won = [o for o in out if not isinstance(o, Exception)]
    lost = [o for o in out if isinstance(o, Exception)]
    assert len(won) == 1, out
    assert all(isinstance(e, AlarmTaken | Changed) for e in lost), lost
    winner = won[0].owner  # type: ignore[union-attr]
    assert all(winner in str(e) for e in lost if isinstance(e, AlarmTaken))  # told who owns it
    [row] = [a for a in store.alerts.all() if a.id == aid]
    assert (row.alarm_state, row.owner) == ("claimed", winner)
    claims = [t for t in store.alarms.history([aid])[aid] if t.action == "claim"]
    assert [t.actor for t in claims] == [winner]
    assert [e.actor for e in store.audit.entries() if e.action == "alarm.claim"] == [winner]


def test_takeover_and_acknowledge_racing_apply_one_after_the_other(store: Store) -> None:  # noqa: F811
    aid = alarm(store)
    store.alarms.act(aid, OPERATORS[0], "claim")
    out = at_once(
        lambda: store.alarms.act(aid, OPERATORS[0], "acknowledge"),
        lambda: store.alarms.act(aid, OPERATORS[1], "takeover", "relieving op0"),
    )
    [row] = [a for a in store.alerts.all() if a.id == aid]
    steps = [t.action for t in store.alarms.history([aid])[aid]]
    if isinstance(out[0], Exception):  # the take-over came first: op0 no longer owns it
        assert (row.alarm_state, row.owner, steps[-1]) == ("claimed", "op1", "takeover")
    else:  # the acknowledgement came first: acknowledged is final
        assert isinstance(out[1], Exception)
        assert (row.alarm_state, row.owner, steps[-1]) == ("acknowledged", "op0", "acknowledge")


def test_escalation_runs_once_across_processes(store: Store) -> None:  # noqa: F811
    aid = alarm(store)
    due = next(a.escalate_at for a in store.alerts.all() if a.id == aid)
    assert due is not None
    others = twins(store, 5)
    try:
        calls: list[Callable[[], object]] = [lambda st=st: st.alarms.escalate_due(due + 1) for st in [store, *others]]
        out = at_once(*calls)
        assert not [o for o in out if isinstance(o, Exception)], out
        assert sorted(sum(out, [])) == [aid]  # type: ignore[arg-type]
        assert [t.action for t in store.alarms.history([aid])[aid]].count("escalate") == 1
        assert [e.action for e in store.audit.entries()].count("alarm.escalate") == 1
        got: list[AlarmV1] = []
        pub = at_once(*[(lambda st=st: st.alarms.publish_pending(got.append)) for st in [store, *others]])
        assert sum(pub) == 2  # type: ignore[arg-type]
        assert sorted(p.transition for p in got) == ["escalate", "raise"]  # each once, by one of the processes
    finally:
        for st in others:
            st.engine.dispose()
