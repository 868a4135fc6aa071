"""The alarm workflow's pure rules: what a valid alert policy is, which policy an alert is raised under, and who may
move an alarm from one state to the next (the insider tricks: another's claim, a viewer, a silent take-over)."""

import pytest

from metrosight.core.names import InvalidInput
from metrosight.policy.alarms import (
    DEFAULT_POLICY,
    AlarmPolicy,
    AlarmTaken,
    AlarmView,
    NoAlarm,
    colour,
    next_state,
    policy_for,
)
from metrosight.policy.rules import Actor, Forbidden, PolicyError

OLGA = Actor("olga", frozenset({"operator"}))
OLEG = Actor("oleg", frozenset({"operator"}))
VIC = Actor("vic", frozenset({"viewer"}))
ADA = Actor("ada", frozenset({"admin"}))
RESET = Actor("rita", frozenset({"operator"}), password_set_by="ada")


@pytest.mark.parametrize(
    ("policy", "why"),
    [
        (AlarmPolicy(priority="urgent"), "unknown priority"),
        (AlarmPolicy(colour="red"), "not a hex colour"),
        (AlarmPolicy(colour="#12345"), "not a hex colour"),
        (AlarmPolicy(colour="#fff;background:url(x)"), "not a hex colour"),
        (AlarmPolicy(escalate_after_s=60, escalate_to="admin"), "needs acknowledgement"),
        (AlarmPolicy(ack_required=True, escalate_after_s=60), "needs the role"),
        (AlarmPolicy(ack_required=True, escalate_to="admin"), "needs its escalation time"),
        (AlarmPolicy(ack_required=True, escalate_after_s=0, escalate_to="admin"), "out of range"),
        (AlarmPolicy(ack_required=True, escalate_after_s=10**9, escalate_to="admin"), "out of range"),
        (AlarmPolicy(ack_required=True, escalate_after_s=60, escalate_to="viewer"), "escalation role"),
        (AlarmPolicy(ack_required=True, escalate_after_s=60, escalate_to="root"), "escalation role"),
    ],
)
def test_invalid_policies_are_refused_with_the_reason(policy: AlarmPolicy, why: str) -> None:
    with pytest.raises(PolicyError, match=why):
        policy.validated()


def test_a_group_name_that_breaks_the_camera_id_rule_is_refused() -> None:
    with pytest.raises(InvalidInput):
        AlarmPolicy(groups=("red/central",)).validated()


def test_a_valid_policy_is_normalised() -> None:
    p = AlarmPolicy("critical", "#C00", True, ("red-central", "red-central", " blue "), 90, "admin").validated()
    assert (p.colour, p.groups, p.shown_colour) == ("#cc0000", ("red-central", "blue"), "#cc0000")
    assert colour("#AbCdEf") == "#abcdef"
    assert DEFAULT_POLICY.validated().shown_colour == "#1565c0"


def test_groups_limit_where_a_policy_applies_by_the_identifier_rule() -> None:
    p = AlarmPolicy(groups=("Red-Central",))
    assert p.applies_to("red-central") and not p.applies_to("blue") and not p.applies_to(None)
    assert AlarmPolicy().applies_to(None)


def test_the_most_urgent_applying_policy_wins() -> None:
    low = AlarmPolicy("low")
    crit_red = AlarmPolicy("critical", groups=("red",))
    high_ack = AlarmPolicy("high", ack_required=True, escalate_after_s=30, escalate_to="admin")
    high = AlarmPolicy("high")
    assert policy_for([low, crit_red, high, high_ack], "red") == crit_red
    assert policy_for([low, crit_red, high, high_ack], "blue") == high_ack
    assert policy_for([crit_red], "blue") is None  # no alarm on cameras outside the policy


def view(state: str | None = "new", owner: str | None = None, **kw: object) -> AlarmView:
    return AlarmView(7, state, owner, **kw)  # type: ignore[arg-type]


def test_the_happy_path_claim_then_acknowledge() -> None:
    assert next_state(view(), OLGA, "claim") == ("claimed", "olga")
    assert next_state(view("claimed", "olga"), OLGA, "acknowledge") == ("acknowledged", "olga")
    assert next_state(view("claimed", "olga"), OLGA, "release") == ("new", None)
    assert next_state(view(), OLGA, "acknowledge") == ("acknowledged", "olga")  # claims it too


def test_a_second_operator_cannot_silently_take_over() -> None:
    with pytest.raises(AlarmTaken, match="claimed by olga: take it over"):
        next_state(view("claimed", "olga"), OLEG, "claim")
    with pytest.raises(PolicyError, match="needs a reason"):
        next_state(view("claimed", "olga"), OLEG, "takeover")
    with pytest.raises(PolicyError, match="needs a reason"):
        next_state(view("claimed", "olga"), OLEG, "takeover", "   ")
    assert next_state(view("claimed", "olga"), OLEG, "takeover", "olga went off shift") == ("claimed", "oleg")


def test_an_operator_cannot_acknowledge_or_release_anothers_claim() -> None:
    for action in ("acknowledge", "release"):
        with pytest.raises(Forbidden, match="claimed by olga, not oleg"):
            next_state(view("claimed", "olga"), OLEG, action)


def test_who_may_handle_alarms() -> None:
    for actor in (VIC, ADA, RESET):
        with pytest.raises(Forbidden):
            next_state(view(), actor, "claim")
    with pytest.raises(Forbidden, match="once it escalates, the admin role"):
        next_state(view(escalate_to="admin"), ADA, "claim")
    # once escalated to admins, an admin may take it over and acknowledge it
    escalated = view("claimed", "olga", escalated=True, escalate_to="admin")
    assert next_state(escalated, ADA, "takeover", "escalated to me") == ("claimed", "ada")
    with pytest.raises(Forbidden):
        next_state(escalated, VIC, "takeover", "x")


def test_final_and_meaningless_steps_are_refused() -> None:
    with pytest.raises(PolicyError, match="already acknowledged"):
        next_state(view("acknowledged", "olga"), OLGA, "release")
    with pytest.raises(PolicyError, match="not claimed by anyone"):
        next_state(view(), OLGA, "release")
    with pytest.raises(PolicyError, match="not claimed by anyone"):
        next_state(view(), OLGA, "takeover", "why")
    with pytest.raises(PolicyError, match="already yours"):
        next_state(view("claimed", "olga"), OLGA, "claim")
    with pytest.raises(PolicyError, match="unknown alarm action"):
        next_state(view(), OLGA, "confirm")
    with pytest.raises(NoAlarm):
        next_state(view(None), OLGA, "claim")
    with pytest.raises(PolicyError, match="rejected"):
        next_state(view(rejected=True), OLGA, "claim")
    assert next_state(view(rejected=True), OLGA, "acknowledge") == ("acknowledged", "olga")
