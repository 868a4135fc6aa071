"""Alarms in the store: raised under the watchlist's policy when an episode opens, every step audited in its
transaction, escalation once, publication once, and the insider tricks refused with nothing changed."""

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from metrosight.bus.payloads import AlarmV1, AlertV1
from metrosight.core.types import Category, Match
from metrosight.policy.alarms import AlarmPolicy, AlarmTaken, NoAlarm
from metrosight.policy.rules import Actor, Authorisation, Forbidden, PolicyError
from metrosight.store.errors import NotFound
from metrosight.store.repo import Store

ADA = Actor("ada", frozenset({"admin", "approver", "operator", "auditor"}))
BOB = Actor("bob", frozenset({"approver", "operator"}))
BOSS = Actor("boss", frozenset({"admin"}))
OLGA = Actor("olga", frozenset({"operator"}))
OLEG = Actor("oleg", frozenset({"operator"}))
VIC = Actor("vic", frozenset({"viewer"}))
T0 = 1_800_000_000.0
URGENT = AlarmPolicy("critical", "#d00", True, ("red-central",), 60, "admin")


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture()
def store(tmp_path):  # type: ignore[no-untyped-def]
    s = Store.for_home(tmp_path)
    s.watchlists.create("wanted", Category.WANTED, ADA)
    s.entries.enroll(
        "wanted",
        "Ann",
        vec(1),
        "m",
        "a.jpg",
        "a" * 64,
        0.9,
        ADA,
        Authorisation("order", "court", "R-1", datetime.now(UTC) + timedelta(days=9)),
    )
    s.entries.approve("wanted", "Ann", BOB)
    yield s
    s.engine.dispose()


def raise_alert(store: Store, n: int = 1, group: str | None = "red-central") -> int:
    e = store.entries.all("wanted")[0]
    m = Match(e.id, "Ann", "wanted", Category.WANTED, 0.95, 0.3)
    return store.alerts.store_sighting(
        AlertV1.of_match(
            m,
            camera_id="cam-1",
            track_id=n,
            first_seen=1.0,
            last_seen=2.0,
            event_id=f"cam-1:t:{n}",
            samples=3,
            group=group,
            media_origin=T0 + 3600 * n,  # an hour apart: a new episode each
        ),
        None,
    ).alert_id


def alert(store: Store, alert_id: int):  # type: ignore[no-untyped-def]
    return next(a for a in store.alerts.all() if a.id == alert_id)


def audited(store: Store, prefix: str) -> list[dict]:
    return [
        {"action": e.action, "actor": e.actor, **json.loads(e.details)}
        for e in store.audit.entries()
        if e.action.startswith(prefix)
    ]


def test_a_policy_is_stored_audited_and_shown(store: Store) -> None:
    assert store.alarms.policy("wanted").set_by is None  # the default
    info = store.alarms.set_policy("wanted", URGENT, ADA)
    assert (info.policy.priority, info.policy.colour, info.set_by) == ("critical", "#dd0000", "ada")
    assert store.alarms.policies()[0].policy == info.policy
    [entry] = audited(store, "watchlist.policy")
    assert entry["before"] is None and entry["after"]["escalate_to"] == "admin"
    store.alarms.set_policy("wanted", None, ADA)  # back to the default, audited with what it was
    assert store.alarms.policy("wanted").set_by is None
    assert audited(store, "watchlist.policy")[-1]["before"]["priority"] == "critical"


def test_only_an_admin_sets_a_policy_and_bad_ones_change_nothing(store: Store) -> None:
    with pytest.raises(Forbidden):
        store.alarms.set_policy("wanted", URGENT, OLGA)
    with pytest.raises(PolicyError):
        store.alarms.set_policy("wanted", AlarmPolicy(escalate_after_s=5, escalate_to="admin"), ADA)
    with pytest.raises(NotFound):
        store.alarms.set_policy("nope", URGENT, ADA)
    assert store.alarms.policy("wanted").set_by is None and not audited(store, "watchlist.policy")


def test_an_alert_is_raised_under_its_lists_policy(store: Store) -> None:
    store.alarms.set_policy("wanted", URGENT, ADA)
    a = alert(store, raise_alert(store))
    assert (a.alarm_state, a.priority, a.colour, a.ack_required, a.escalate_to) == (
        "new",
        "critical",
        "#dd0000",
        True,
        "admin",
    )
    assert a.escalate_at is not None and 59 < a.escalate_at - a.created_at.timestamp() < 61
    assert audited(store, "alarm.raise")[0]["priority"] == "critical"


def test_an_alert_outside_the_policys_groups_raises_no_alarm_and_cannot_be_claimed(store: Store) -> None:
    store.alarms.set_policy("wanted", URGENT, ADA)
    aid = raise_alert(store, group="blue-north")
    assert alert(store, aid).alarm_state is None
    with pytest.raises(NoAlarm, match="covers camera .*its camera groups: blue-north"):
        store.alarms.act(aid, OLGA, "claim")
    # the two-person confirmation stays as it is, alarm or not
    assert store.reviews.review(aid, OLGA, "confirm") == "confirmed_once"
    assert store.reviews.review(aid, OLEG, "confirm") == "actionable"


def test_claim_takeover_acknowledge_each_audited_with_its_step(store: Store) -> None:
    aid = raise_alert(store)
    assert store.alarms.act(aid, OLGA, "claim").owner == "olga"
    with pytest.raises(AlarmTaken, match="claimed by olga"):
        store.alarms.act(aid, OLEG, "claim")
    with pytest.raises(Forbidden, match="claimed by olga, not oleg"):
        store.alarms.act(aid, OLEG, "acknowledge")  # acknowledging another's claimed alarm
    with pytest.raises(Forbidden):
        store.alarms.act(aid, VIC, "claim")  # a viewer claiming
    assert alert(store, aid).owner == "olga"
    step = store.alarms.act(aid, OLEG, "takeover", "olga's shift ended")
    assert (step.state, step.owner) == ("claimed", "oleg")
    assert store.alarms.act(aid, OLEG, "acknowledge").state == "acknowledged"
    a = alert(store, aid)
    assert (a.alarm_state, a.owner, a.status) == ("acknowledged", "oleg", "new")  # not a confirmation
    steps = [(t.action, t.actor, t.previous_owner, t.owner) for t in store.alarms.history([aid])[aid]]
    assert steps == [
        ("raise", "system:cam-1", None, None),
        ("claim", "olga", None, "olga"),
        ("takeover", "oleg", "olga", "oleg"),
        ("acknowledge", "oleg", "oleg", "oleg"),
    ]
    trail = audited(store, "alarm.")
    assert [e["action"] for e in trail] == ["alarm.raise", "alarm.claim", "alarm.takeover", "alarm.acknowledge"]
    assert trail[2]["previous_owner"] == "olga" and trail[2]["reason"] == "olga's shift ended"
    assert store.audit.verify().broken_seq is None  # the hash chain holds every step


def test_escalation_happens_once_and_lets_the_target_role_act(store: Store) -> None:
    store.alarms.set_policy("wanted", URGENT, ADA)
    aid, acked = raise_alert(store, 1), raise_alert(store, 2)
    store.alarms.act(aid, OLGA, "claim")
    store.alarms.act(acked, OLGA, "acknowledge")
    due = alert(store, aid).escalate_at
    assert store.alarms.escalate_due(due - 1) == []
    with pytest.raises(Forbidden):
        store.alarms.act(aid, BOSS, "takeover", "mine now")  # an admin, before it escalated to admins
    assert store.alarms.escalate_due(due + 1) == [aid]  # the acknowledged one does not escalate
    assert store.alarms.escalate_due(due + 2) == []  # once
    a = alert(store, aid)
    assert a.escalated_at == due + 1 and a.alarm_state == "claimed"
    assert store.alarms.act(aid, BOSS, "takeover", "escalated to me").owner == "boss"
    assert store.alarms.act(aid, BOSS, "acknowledge").state == "acknowledged"
    [esc] = audited(store, "alarm.escalate")
    assert (esc["actor"], esc["escalated_to"], esc["owner"]) == ("system:escalation", "admin", "olga")


def test_a_rejected_alert_never_escalates(store: Store) -> None:
    store.alarms.set_policy("wanted", URGENT, ADA)
    aid = raise_alert(store)
    store.reviews.review(aid, OLGA, "reject", "not her")
    assert store.alarms.escalate_due(alert(store, aid).escalate_at + 1) == []
    with pytest.raises(PolicyError, match="rejected"):
        store.alarms.act(aid, OLEG, "claim")


def test_each_step_is_published_once_with_a_stable_idempotency_key(store: Store) -> None:
    store.alarms.set_policy("wanted", URGENT, ADA)
    aid = raise_alert(store)
    store.alarms.act(aid, OLGA, "claim")
    store.alarms.escalate_due(alert(store, aid).escalate_at + 1)
    got: list[AlarmV1] = []
    assert store.alarms.publish_pending(got.append) == 3
    assert store.alarms.publish_pending(got.append) == 0
    assert [(p.transition, p.state, p.owner, p.escalated) for p in got] == [
        ("raise", "new", None, False),
        ("claim", "claimed", "olga", False),
        ("escalate", "claimed", "olga", True),
    ]
    esc = got[-1]
    assert (esc.escalated_to, esc.priority, esc.colour, esc.subject, esc.group) == (
        "admin",
        "critical",
        "#dd0000",
        "Ann",
        "red-central",
    )
    assert len({p.event_id for p in got}) == 3 and esc.event_id.startswith("alarm:cam-1:t:1:")


def test_a_step_the_bus_refused_is_published_again_in_order(store: Store) -> None:
    aid = raise_alert(store)
    store.alarms.act(aid, OLGA, "claim")
    store.alarms.act(aid, OLGA, "acknowledge")
    got: list[str] = []

    def flaky(p: AlarmV1) -> None:
        if p.transition == "claim" and "refused" not in got:
            got.append("refused")
            raise ConnectionError("bus away")
        got.append(p.transition)

    with pytest.raises(ConnectionError):
        store.alarms.publish_pending(flaky)
    assert store.alarms.publish_pending(flaky) == 2  # the refused step and the rest come again, in order
    assert [g for g in got if g != "refused"] == ["raise", "claim", "acknowledge"]


def test_purging_an_alert_takes_its_alarm_steps_with_it(store: Store) -> None:
    from metrosight.store.models import AlarmTransition
    from metrosight.store.retention import Retention

    aid = raise_alert(store)
    store.alarms.act(aid, OLGA, "claim")
    store.retention.purge(Retention(1, None, None, None), ADA, datetime.now(UTC) + timedelta(days=2))
    assert store.alerts.all() == [] and store.count(AlarmTransition) == 0
    assert store.alarms.history([aid]) == {aid: []}


def test_an_alarm_changed_in_the_database_without_its_step_is_reported(store: Store) -> None:
    from sqlalchemy import update

    from metrosight.store.models import AlertRecord

    store.alarms.set_policy("wanted", URGENT, ADA)
    aid, other = raise_alert(store, 1), raise_alert(store, 2)
    store.alarms.act(aid, OLGA, "claim")
    assert store.audit.governed_mismatches() == []
    with store.uow.write() as s:  # an insider with database access: a new owner, an escalation suppressed
        s.execute(update(AlertRecord).where(AlertRecord.id == aid).values(owner="mallory"))
        s.execute(update(AlertRecord).where(AlertRecord.id == other).values(escalate_at=None))
    problems = store.audit.governed_mismatches()
    assert any(f"alert {aid}'s alarm is claimed (owner 'mallory')" in p for p in problems), problems
    assert any(f"alert {other}'s alarm policy" in p for p in problems), problems
    assert not store.audit.verify().ok


def test_alarms_replayed_across_an_audit_purge(store: Store) -> None:
    from metrosight.store.retention import Retention

    aid = raise_alert(store)
    store.alarms.act(aid, OLGA, "acknowledge")
    # every audit entry so far purged; the alarm's replayed state is carried forward in the purge entry
    store.retention.purge(Retention(None, None, None, 1), ADA, datetime.now(UTC) + timedelta(days=2))
    assert store.audit.governed_mismatches() == []
