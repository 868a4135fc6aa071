"""Alarms in the store: watchlists' alert policies, each alert's alarm, its audited steps, escalation, publication.

- A watchlist's **policy** (:class:`~metrosight.policy.alarms.AlarmPolicy`) is set by an admin; the change and the
  policy before it are audited (``watchlist.policy``). A list without one has the default policy.
- An alert episode is **raised** as an alarm when it opens (:func:`raise_alarm`, in the episode's transaction):
  under the most urgent policy of its person's lists that covers its camera group; the policy's priority, colour,
  acknowledgement and escalation time are copied into the alert, so a later policy change does not alter alarms
  already raised. No policy covers the camera: the alert raises no alarm (``alarm_state`` NULL).
- Every **step** (claim, release, take-over, acknowledge, escalate) is a compare-and-set transition
  (:mod:`metrosight.store.transitions`) with its audit entry and its :class:`AlarmTransition` row in the same
  transaction. Two operators claiming at once: one wins, the other is told who owns it.
- **Escalation** (:meth:`AlarmRepository.escalate_due`) is a conditional update (``escalated_at IS NULL``) inside a
  write transaction, which holds the database's write lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL's advisory
  lock): any number of processes may run it; each alarm escalates exactly once.
- **Publication** (:meth:`AlarmRepository.publish_pending`): steps not yet published are marked in a write
  transaction and then handed to the caller (the bus): each step is published by exactly one process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from metrosight.bus.payloads import AlarmV1
from metrosight.core.names import free_text
from metrosight.policy.alarms import (
    DEFAULT_POLICY,
    ESCALATION_ROLES,
    AlarmPolicy,
    AlarmView,
    NoAlarm,
    next_state,
    policy_for,
)
from metrosight.policy.rules import Actor, require
from metrosight.policy.scope import EVERYTHING, View
from metrosight.store import transitions
from metrosight.store.alert_views import alert_visible, as_seen, as_seen_one
from metrosight.store.errors import NotFound
from metrosight.store.models import AlarmTransition, AlertPolicyRecord, AlertRecord, Watchlist
from metrosight.store.naming import find_named
from metrosight.store.uow import UnitOfWork

ESCALATION_ACTOR = "system:escalation"
OPEN_STATES = ("new", "claimed")
BATCH = 100  # alarms escalated, or steps published, in one transaction at most


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """A watchlist's alert policy as stored: ``policy`` (the default when ``set_by`` is None), who set it, when."""

    watchlist: str
    policy: AlarmPolicy
    set_by: str | None = None
    set_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AlarmStep:
    """What a step did: the alert, its alarm state and owner now, whether it is escalated, and the alert's row as
    the step left it (``alert``)."""

    alert_id: int
    state: str
    owner: str | None
    escalated: bool
    alert: AlertRecord


def _policy_of(row: AlertPolicyRecord) -> AlarmPolicy:
    return AlarmPolicy(
        row.priority, row.colour, row.ack_required, tuple(row.groups or ()), row.escalate_after_s, row.escalate_to
    )


def group_of(a: AlertRecord) -> str | None:
    """The camera group of an alert's episode (its group key's name; None for a camera without a group)."""
    kind, _, name = (a.group_key or "").partition(":")
    return name if kind == "group" else None


def raise_alarm(uow: UnitOfWork, s: Session, a: AlertRecord, group: str | None, now: float) -> None:
    """Raise the alarm of alert ``a`` (just opened in the write transaction ``s``) under its lists' policies, for its
    camera, in every camera group the configuration puts it in and in ``group`` (the episode's);
    audited (``alarm.raise``). Nothing when no policy covers the camera."""
    names = list(dict.fromkeys([e["watchlist"] for e in a.entries or []] or [a.watchlist]))
    rows = dict(
        s.execute(
            select(Watchlist.name, AlertPolicyRecord)
            .join(AlertPolicyRecord, AlertPolicyRecord.watchlist_id == Watchlist.id)
            .where(Watchlist.name.in_(names))
        ).all()
    )
    by_list = {n: (_policy_of(rows[n]) if n in rows else DEFAULT_POLICY) for n in names}
    # every group the camera is in, as scopes resolve them (line, group, named groups), and the episode's own
    chosen = policy_for(by_list.values(), uow.scoping.groups.of_camera(a.camera_id) | ({group} if group else set()))
    if chosen is None:
        return
    wl = next(n for n, p in by_list.items() if p == chosen)
    a.alarm_state, a.priority, a.colour, a.ack_required = (
        "new",
        chosen.priority,
        chosen.shown_colour,
        chosen.ack_required,
    )
    a.policy_watchlist = wl
    if chosen.escalate_after_s is not None and chosen.escalate_to is not None:
        a.escalate_at, a.escalate_to = now + chosen.escalate_after_s, chosen.escalate_to
    s.add(AlarmTransition(alert_id=a.id, action="raise", actor=f"system:{a.camera_id}", to_state="new", at=now))
    s.flush()
    uow.audit(
        s,
        f"system:{a.camera_id}",
        "alarm.raise",
        f"alert:{a.id}",
        {
            "alert_id": a.id,
            "policy_of": wl,
            "priority": a.priority,
            "ack_required": a.ack_required,
            "escalate_at": a.escalate_at,
            "escalate_to": a.escalate_to,
        },
    )


class AlarmRepository:
    """Alert policies and alarms (``store.alarms``).

    Args:
        uow: the store's unit of work.
        clock: Unix time now (seconds); tests pass their own.
    """

    def __init__(self, uow: UnitOfWork, clock: Callable[[], float] = time.time) -> None:
        self.uow = uow
        self.clock = clock

    # -- policies --------------------------------------------------------------------------------------------------
    def set_policy(self, watchlist: str, policy: AlarmPolicy | None, actor: Actor) -> PolicyInfo:
        """Set (``None``: reset to the default) a watchlist's alert policy; audited with the policy before and after.
        Applies to alarms raised from now on.

        Raises:
            Forbidden: not an admin. NotFound: no such watchlist. PolicyError, InvalidInput: an invalid policy
                (:meth:`AlarmPolicy.validated`), or a camera group the configuration does not have.
        """
        require(actor, "set alert policies", "admin")
        new = policy.validated() if policy is not None else None
        if new is not None and self.uow.scoping.groups.members:
            # checked against the configuration's groups (a mistyped one would silently raise no alarm); a store
            # opened without a configuration (the CLI asks for it first) has none to check against
            self.uow.scoping.check_groups(new.groups)
        with self.uow.write() as s:
            wl = find_named(s, Watchlist, watchlist)
            if wl is None:
                raise NotFound(f"no watchlist named {watchlist!r}")
            row = s.get(AlertPolicyRecord, wl.id, with_for_update=True)
            before = _policy_of(row) if row is not None else None
            if new is None:
                if row is not None:
                    s.delete(row)
            else:
                if row is None:
                    row = AlertPolicyRecord(watchlist_id=wl.id)
                    s.add(row)
                row.priority, row.colour, row.ack_required = new.priority, new.colour, new.ack_required
                row.groups, row.escalate_after_s, row.escalate_to = (
                    list(new.groups),
                    new.escalate_after_s,
                    new.escalate_to,
                )
                row.updated_by, row.updated_at = actor.name, datetime.fromtimestamp(self.clock(), UTC)
            self.uow.audit(
                s,
                actor.name,
                "watchlist.policy",
                wl.name,
                {
                    "before": before.to_json() if before is not None else None,
                    "after": new.to_json() if new is not None else None,
                },
            )
            name = wl.name
        return self.policy(name)

    def policy(self, watchlist: str, view: View = EVERYTHING) -> PolicyInfo:
        """A watchlist's policy (the default when none was set).

        Raises:
            NotFound: no such watchlist, or one outside ``view`` (the reader's scope).
        """
        with self.uow.read() as s:
            wl = find_named(s, Watchlist, watchlist)
            if wl is None or not view.watchlist(wl.name):
                raise NotFound(f"no watchlist named {watchlist!r}")
            row = s.get(AlertPolicyRecord, wl.id)
            if row is None:
                return PolicyInfo(wl.name, DEFAULT_POLICY)
            return PolicyInfo(wl.name, _policy_of(row), row.updated_by, row.updated_at)

    def policies(self, view: View = EVERYTHING) -> list[PolicyInfo]:
        """Every watchlist's policy (of the watchlists ``view`` sees), by watchlist name."""
        with self.uow.read() as s:
            rows = s.execute(
                select(Watchlist.name, AlertPolicyRecord)
                .outerjoin(AlertPolicyRecord, AlertPolicyRecord.watchlist_id == Watchlist.id)
                .order_by(Watchlist.name)
            ).all()
            return [
                PolicyInfo(n, _policy_of(r), r.updated_by, r.updated_at)
                if r is not None
                else PolicyInfo(n, DEFAULT_POLICY)
                for n, r in rows
                if view.watchlist(n)
            ]

    # -- steps -----------------------------------------------------------------------------------------------------
    def act(self, alert_id: int, actor: Actor, action: str, reason: str | None = None) -> AlarmStep:
        """Claim, release, take over (with a ``reason``) or acknowledge an alert's alarm (rules:
        :func:`metrosight.policy.alarms.next_state`); audited (``alarm.<action>``) in the same transaction.

        Raises:
            NotFound: no such alert. Forbidden, AlarmTaken, NoAlarm, PolicyError: the rules refused (the message
                says who owns the alarm and what to do). Changed: a concurrent step won (look again).
        """
        reason = free_text(reason, "reason") or None if reason is not None else None
        handlers = ("operator", *ESCALATION_ROLES)  # one without these roles is refused by the rules below
        scope = self.uow.scoping.view(actor, handlers) if actor.has(*handlers) else EVERYTHING
        with self.uow.write() as s:
            a = transitions.lock_alert(s, alert_id)
            seen = as_seen_one(s, a, scope) if a is not None else None
            if a is None or seen is None:  # outside the actor's scope: as if absent
                raise NotFound(f"no alert {alert_id}")
            view = AlarmView(
                a.id, a.alarm_state, a.owner, a.escalated_at is not None, a.escalate_to, a.status == "rejected"
            )
            try:
                state, owner = next_state(view, actor, action, reason)
            except NoAlarm:  # named as the actor sees the alert: lists and cameras outside their scope are not
                groups = sorted(self.uow.scoping.groups.of_camera(a.camera_id) | {g for g in [group_of(a)] if g})
                raise NoAlarm(
                    f"alert {alert_id} raises no alarm: no alert policy of its watchlists "
                    f"({', '.join(dict.fromkeys(e['watchlist'] for e in seen.entries or [])) or seen.watchlist}) "
                    f"covers camera {seen.camera_id!r} "
                    + (f"(its camera groups: {', '.join(groups)})" if groups else "(it is in no camera group)")
                ) from None
            now = self.clock()
            values: dict[str, Any] = {"alarm_state": state, "owner": owner}
            if action in ("claim", "takeover"):
                values["claimed_at"] = now
            elif action == "release":
                values["claimed_at"] = None
            elif action == "acknowledge":
                values["acknowledged_at"] = now
                if a.alarm_state == "new":
                    values["claimed_at"] = now
            was_owner = a.owner
            owner_then = AlertRecord.owner.is_(None) if a.owner is None else AlertRecord.owner == a.owner
            transitions.compare_and_set(
                s, AlertRecord, a.id, AlertRecord.alarm_state == a.alarm_state, owner_then, **values
            )
            escalated = view.escalated
            s.add(
                AlarmTransition(
                    alert_id=alert_id,
                    action=action,
                    actor=actor.name,
                    from_state=view.state,
                    to_state=state,
                    previous_owner=was_owner,
                    owner=owner,
                    reason=reason,
                    at=now,
                )
            )
            self.uow.audit(
                s,
                actor.name,
                f"alarm.{action}",
                f"alert:{alert_id}",
                {
                    "alert_id": alert_id,
                    "from": view.state,
                    "to": state,
                    "owner": owner,
                    "previous_owner": was_owner,
                    "reason": reason,
                    "escalated": escalated,
                },
            )
            s.flush()
            s.refresh(a)
            shown = as_seen_one(s, a, scope) or a  # as the actor sees it (a list outside their scope unnamed)
        return AlarmStep(alert_id, state, owner, escalated, shown)

    def escalate_due(self, now: float | None = None) -> list[int]:
        """Escalate every alarm still unacknowledged at its escalation time (its alert not rejected); audited
        (``alarm.escalate``). Safe to run in any number of processes at once: each alarm escalates once.

        Returns:
            the ids of the alerts escalated by this call, at most :data:`BATCH` (call again for more).
        """
        now = self.clock() if now is None else now
        due = (
            AlertRecord.alarm_state.in_(OPEN_STATES),
            AlertRecord.escalated_at.is_(None),
            AlertRecord.escalate_at.is_not(None),
            AlertRecord.escalate_at <= now,
            AlertRecord.status != "rejected",
        )
        with self.uow.read() as s:  # a cheap look first: most calls find nothing and take no write lock
            if not s.scalar(select(exists().where(*due))):
                return []
        done: list[int] = []
        with self.uow.write() as s:
            for a in list(s.scalars(select(AlertRecord).where(*due).order_by(AlertRecord.escalate_at).limit(BATCH))):
                transitions.compare_and_set(
                    s, AlertRecord, a.id, AlertRecord.escalated_at.is_(None), *due, escalated_at=now
                )
                s.add(
                    AlarmTransition(
                        alert_id=a.id,
                        action="escalate",
                        actor=ESCALATION_ACTOR,
                        from_state=a.alarm_state,
                        to_state=a.alarm_state,
                        previous_owner=a.owner,
                        owner=a.owner,
                        at=now,
                    )
                )
                self.uow.audit(
                    s,
                    ESCALATION_ACTOR,
                    "alarm.escalate",
                    f"alert:{a.id}",
                    {
                        "alert_id": a.id,
                        "state": a.alarm_state,
                        "owner": a.owner,
                        "escalated_to": a.escalate_to,
                        "due_at": a.escalate_at,
                        "late_s": round(now - (a.escalate_at or now), 3),
                    },
                )
                done.append(a.id)
        return done

    # -- publication and reads -------------------------------------------------------------------------------------
    def publish_pending(self, publish: Callable[[AlarmV1], object], limit: int = BATCH) -> int:
        """Hand each step not yet published to ``publish`` (the bus), in order: the steps are marked published in a
        write transaction first, so two processes never publish the same step. When ``publish`` raises, that step
        and the rest are unmarked (published again at the next call) and the error is raised. A process that dies
        between the mark and the call loses those steps' messages (the steps stay stored and audited).

        Returns:
            how many steps were published.
        """
        with self.uow.read() as s:
            if not s.scalar(select(exists().where(AlarmTransition.published_at.is_(None)))):
                return 0
        now = self.clock()
        with self.uow.write() as s:
            rows = s.execute(
                select(AlarmTransition, AlertRecord)
                .join(AlertRecord, AlertRecord.id == AlarmTransition.alert_id)
                .where(AlarmTransition.published_at.is_(None))
                .order_by(AlarmTransition.id)
                .limit(limit)
            ).all()
            ids = [t.id for t, _ in rows]
            s.execute(
                update(AlarmTransition)
                .where(AlarmTransition.id.in_(ids), AlarmTransition.published_at.is_(None))
                .values(published_at=now)
                .execution_options(synchronize_session=False)
            )
            payloads = [alarm_payload(t, a) for t, a in rows]
        done = 0
        try:
            for p in payloads:
                publish(p)
                done += 1
        except Exception:  # the bus refused one: it and the rest are published again later, in order
            with self.uow.write() as s:
                s.execute(
                    update(AlarmTransition)
                    .where(AlarmTransition.id.in_(ids[done:]))
                    .values(published_at=None)
                    .execution_options(synchronize_session=False)
                )
            raise
        return done

    def steps_after(self, after_id: int, view: View, limit: int = 200) -> list[tuple[AlarmTransition, AlertRecord]]:
        """Steps with ``id > after_id`` of alerts inside ``view`` (a reader's scope), with their alert as it is now
        and as that reader sees it, oldest first (the live feed's reads)."""
        with self.uow.read() as s:
            rows = s.execute(
                select(AlarmTransition, AlertRecord)
                .join(AlertRecord, AlertRecord.id == AlarmTransition.alert_id)
                .where(AlarmTransition.id > after_id, alert_visible(view))
                .order_by(AlarmTransition.id)
                .limit(limit)
            ).all()
            seen = {a.id: a for a in as_seen(s, list({a.id: a for _t, a in rows}.values()), view)}
            return [(t, seen[a.id]) for t, a in rows if a.id in seen]

    def last_step_id(self) -> int:
        """The newest step's id (0 when none)."""
        with self.uow.read() as s:
            return int(s.scalar(select(func.max(AlarmTransition.id))) or 0)

    def history(self, alert_ids: Iterable[int]) -> dict[int, list[AlarmTransition]]:
        """The steps of each alert, oldest first."""
        ids = sorted(set(alert_ids))
        out: dict[int, list[AlarmTransition]] = {i: [] for i in ids}
        if not ids:
            return out
        with self.uow.read() as s:
            for t in s.scalars(
                select(AlarmTransition).where(AlarmTransition.alert_id.in_(ids)).order_by(AlarmTransition.id)
            ):
                out[t.alert_id].append(t)
        return out


def alarm_payload(t: AlarmTransition, a: AlertRecord) -> AlarmV1:
    """The bus message of step ``t`` of alert ``a``'s alarm."""
    return AlarmV1(
        event_id=f"alarm:{a.event_id}:{t.id}",
        alert_id=a.id,
        alert_event_id=a.event_id,
        transition=t.action,  # type: ignore[arg-type]
        state=t.to_state,  # type: ignore[arg-type]
        actor=t.actor,
        owner=t.owner,
        previous_owner=t.previous_owner,
        reason=t.reason,
        at=t.at,
        priority=a.priority or "normal",  # type: ignore[arg-type]
        colour=a.colour or DEFAULT_POLICY.shown_colour,
        ack_required=a.ack_required,
        escalate_at=a.escalate_at,
        escalated=t.action == "escalate" or (a.escalated_at is not None and a.escalated_at <= t.at),
        escalated_to=a.escalate_to if a.escalated_at is not None and a.escalated_at <= t.at else None,
        camera_id=a.camera_id,
        group=group_of(a),
        subject=a.subject_name,
        person_id=a.person_id,
        watchlist=a.policy_watchlist or a.watchlist,
        watchlists=tuple(dict.fromkeys(e["watchlist"] for e in a.entries or [])) or (a.watchlist,),
        category=a.category,
        status=a.status,
    )
