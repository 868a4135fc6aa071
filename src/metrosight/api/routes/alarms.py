"""The alarm workflow: claim, release, take over and acknowledge an alert's alarm; watchlists' alert policies.

Claiming and acknowledging say who handles an alarm; they are not the two-person confirmation of the alert
(``/api/alerts/{id}/confirm``), which stays as it is.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from metrosight.api.deps import Admin, RowId, StoreDep, WatchlistReader, requires, services
from metrosight.api.schemas import (
    AlarmPublic,
    AlarmResult,
    AlarmStepPublic,
    AlertPolicyPublic,
    AlertPolicyUpdate,
    TakeoverCreate,
)
from metrosight.policy.alarms import ESCALATION_ROLES, AlarmPolicy
from metrosight.policy.rules import Actor
from metrosight.services.alarms import AlarmClock
from metrosight.store.alarms import PolicyInfo
from metrosight.store.models import AlarmTransition, AlertRecord
from metrosight.store.repo import Store
from metrosight.store.scoping import WATCHLIST_READERS

router = APIRouter(tags=["alarms"])

# operators handle alarms; the escalation roles handle those escalated to them (the store checks which)
AlarmHandler = Annotated[Actor, Depends(requires(*dict.fromkeys(("operator", *ESCALATION_ROLES))))]


def alarm_public(a: AlertRecord, now: float | None = None) -> AlarmPublic | None:
    """The alarm of alert ``a`` as the API shows it (None: the alert raises no alarm)."""
    if a.alarm_state is None:
        return None
    now = time.time() if now is None else now
    pending = a.escalate_at is not None and a.escalated_at is None and a.alarm_state != "acknowledged"
    pending = pending and a.status != "rejected"
    return AlarmPublic(
        state=a.alarm_state,  # type: ignore[arg-type]
        priority=a.priority or "normal",  # type: ignore[arg-type]
        colour=a.colour or AlarmPolicy().shown_colour,
        ack_required=a.ack_required,
        policy_of=a.policy_watchlist,
        owner=a.owner,
        claimed_at=a.claimed_at,
        acknowledged_at=a.acknowledged_at,
        escalate_at=a.escalate_at,
        seconds_to_escalation=max(0.0, round((a.escalate_at or now) - now, 1)) if pending else None,
        escalate_to=a.escalate_to,
        escalated=a.escalated_at is not None,
        escalated_at=a.escalated_at,
    )


def step_public(t: AlarmTransition) -> AlarmStepPublic:
    return AlarmStepPublic.model_validate(t)


def _act(
    request: Request, store: Store, alert_id: int, actor: Actor, action: str, reason: str | None = None
) -> AlarmResult:
    step = store.alarms.act(alert_id, actor, action, reason)
    clock = services(request).extras.get("alarm_clock")
    if isinstance(clock, AlarmClock):
        clock.wake()  # the step goes onto the bus now, not at the next tick
    services(request).hub.notify()  # and to the open live feeds
    alarm = alarm_public(step.alert)
    if alarm is None:  # cannot happen: a step was just taken
        raise RuntimeError(f"alert {alert_id} lost its alarm")
    return AlarmResult(id=alert_id, alarm=alarm)


@router.post("/api/alerts/{alert_id}/claim", response_model=AlarmResult)
def claim_alarm(alert_id: RowId, actor: AlarmHandler, store: StoreDep, request: Request) -> AlarmResult:
    """Claim an alert's alarm: you handle it, and every operator sees so. 409 when someone else has claimed it (the
    message names them): take it over instead."""
    return _act(request, store, alert_id, actor, "claim")


@router.post("/api/alerts/{alert_id}/release", response_model=AlarmResult)
def release_alarm(alert_id: RowId, actor: AlarmHandler, store: StoreDep, request: Request) -> AlarmResult:
    """Release your claim (the alarm is new again). 403 for someone else's claim."""
    return _act(request, store, alert_id, actor, "release")


@router.post("/api/alerts/{alert_id}/takeover", response_model=AlarmResult)
def take_over_alarm(
    alert_id: RowId, body: TakeoverCreate, actor: AlarmHandler, store: StoreDep, request: Request
) -> AlarmResult:
    """Take over an alarm another operator has claimed, with a reason (audited; the previous owner is named in
    the alarm's steps)."""
    return _act(request, store, alert_id, actor, "takeover", body.reason)


@router.post("/api/alerts/{alert_id}/acknowledge", response_model=AlarmResult)
def acknowledge_alarm(alert_id: RowId, actor: AlarmHandler, store: StoreDep, request: Request) -> AlarmResult:
    """Acknowledge an alarm you have claimed (an unclaimed one is claimed and acknowledged at once): it will not
    escalate. 403 for an alarm someone else has claimed. Not a confirmation of the alert."""
    return _act(request, store, alert_id, actor, "acknowledge")


def policy_public(info: PolicyInfo) -> AlertPolicyPublic:
    p = info.policy
    return AlertPolicyPublic(
        watchlist=info.watchlist,
        priority=p.priority,  # type: ignore[arg-type]
        colour=p.colour,
        ack_required=p.ack_required,
        groups=list(p.groups),
        escalate_after_s=p.escalate_after_s,
        escalate_to=p.escalate_to,  # type: ignore[arg-type]
        shown_colour=p.shown_colour,
        default=info.set_by is None,
        set_by=info.set_by,
        set_at=info.set_at,
    )


@router.get("/api/alert-policies", response_model=list[AlertPolicyPublic])
def list_policies(actor: WatchlistReader, store: StoreDep) -> list[AlertPolicyPublic]:
    """Every watchlist's alert policy (the default where none was set), of the watchlists of the caller's scope."""
    return [policy_public(i) for i in store.alarms.policies(store.scoping.view(actor, WATCHLIST_READERS))]


@router.get("/api/watchlists/{watchlist}/policy", response_model=AlertPolicyPublic)
def get_policy(watchlist: str, actor: WatchlistReader, store: StoreDep) -> AlertPolicyPublic:
    """A watchlist's alert policy (404 outside the caller's scope)."""
    return policy_public(store.alarms.policy(watchlist, store.scoping.view(actor, WATCHLIST_READERS)))


@router.put("/api/watchlists/{watchlist}/policy", response_model=AlertPolicyPublic)
def set_policy(watchlist: str, body: AlertPolicyUpdate, actor: Admin, store: StoreDep) -> AlertPolicyPublic:
    """Set a watchlist's alert policy (admins; audited with the policy before). Applies to alarms raised from now
    on. 409 for an inconsistent policy (an escalation without acknowledgement, time or role), 422 for a group
    name that breaks the camera-id rule."""
    policy = AlarmPolicy(
        body.priority,
        body.colour,
        body.ack_required,
        tuple(body.groups),
        body.escalate_after_s,
        body.escalate_to,
    )
    return policy_public(store.alarms.set_policy(watchlist, policy, actor))


@router.delete("/api/watchlists/{watchlist}/policy", response_model=AlertPolicyPublic)
def reset_policy(watchlist: str, actor: Admin, store: StoreDep) -> AlertPolicyPublic:
    """Reset a watchlist's alert policy to the default (admins; audited)."""
    return policy_public(store.alarms.set_policy(watchlist, None, actor))
