"""The alarm workflow's rules: a watchlist's alert policy, and who may move an alarm from one state to the next.

Pure rules; the store (:mod:`metrosight.store.alarms`) applies them in its audited transactions.

An *alert policy* belongs to one watchlist. It says how an alert of a person on that list is handled as an
*alarm*: its ``priority`` (``critical`` > ``high`` > ``normal`` > ``low``) and ``colour``, whether an operator must
``acknowledge`` it, the camera ``groups`` it applies to (a camera is in its ``line``, its ``group`` and each named
group containing it, as for scopes; none: every camera), and, for an alarm that must be acknowledged, the seconds
after which an unacknowledged one *escalates* and the role it escalates to.

Alarm states: ``new`` → ``claimed`` (an operator owns it; released → ``new``; another operator takes it over
explicitly, with a reason) → ``acknowledged`` (by its owner; acknowledging an unclaimed alarm claims it too). An
alarm still unacknowledged at its escalation time is *escalated* (a flag beside the state, set once): members of
the escalation role may then claim, take over and acknowledge it too. Claiming and acknowledging are not the
two-person confirmation of the alert (:func:`metrosight.policy.rules.alert_status`): they say who handles it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from metrosight.core.names import free_text, identifiers, same_identifier
from metrosight.policy.rules import ROLES, Actor, Forbidden, PolicyError

PRIORITIES: Final = ("critical", "high", "normal", "low")  # most urgent first
DEFAULT_COLOURS: Final[Mapping[str, str]] = MappingProxyType(
    {"critical": "#c62828", "high": "#ef6c00", "normal": "#1565c0", "low": "#607d8b"}
)
ALARM_STATES: Final = ("new", "claimed", "acknowledged")
ALARM_ACTIONS: Final = ("claim", "release", "takeover", "acknowledge")
MAX_ESCALATION_S: Final = 7 * 24 * 3600  # the longest escalation time a policy may set (a week)
MAX_GROUPS: Final = 200
# roles an alarm may escalate to: those that see alerts and act on them (an approver or a viewer could not even
# open the alerts page; an auditor only reads)
ESCALATION_ROLES: Final = ("admin", "operator")
_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")

# The state an action leads to. An action not listed for a state is refused (see :func:`next_state`).
TRANSITIONS: Final[Mapping[tuple[str, str], str]] = MappingProxyType(
    {
        ("new", "claim"): "claimed",
        ("new", "acknowledge"): "acknowledged",
        ("claimed", "release"): "new",
        ("claimed", "takeover"): "claimed",
        ("claimed", "acknowledge"): "acknowledged",
    }
)


class NoAlarm(PolicyError):
    """The alert raises no alarm (no policy of its lists covers its camera group): there is nothing to claim."""


class AlarmTaken(PolicyError):
    """The alarm is claimed by someone else: take it over explicitly (audited, with a reason) instead."""


def priority_rank(priority: str) -> int:
    """0 for ``critical`` … 3 for ``low`` (smaller is more urgent)."""
    return PRIORITIES.index(priority)


def colour(value: str) -> str:
    """A colour as ``#rrggbb`` (lower case) from ``#rgb`` or ``#rrggbb``.

    Raises:
        PolicyError: anything else (a CSS name or expression is refused: the value is put into the UI's style).
    """
    v = value.strip()
    if not _COLOUR.fullmatch(v):
        raise PolicyError(f"colour {value[:40]!r} is not a hex colour: use #rgb or #rrggbb, e.g. #c62828")
    v = v.lower()
    return v if len(v) == 7 else "#" + "".join(c * 2 for c in v[1:])


@dataclass(frozen=True, slots=True)
class AlarmPolicy:
    """How a watchlist's alerts are handled as alarms (see the module docstring).

    Attributes:
        priority: ``critical``, ``high``, ``normal`` or ``low``.
        colour: ``#rrggbb`` shown with the alarm; None: the priority's default (:data:`DEFAULT_COLOURS`).
        ack_required: an operator must acknowledge each alarm.
        groups: camera groups (a camera's ``line``, its ``group``, named ``camera_groups``: as scopes) the policy
            applies to; empty: every camera.
            Alerts on other cameras raise no alarm under this policy.
        escalate_after_s: seconds after the alarm is raised at which it escalates when still unacknowledged
            (1 … 604800); None: never. Needs ``ack_required`` and ``escalate_to``.
        escalate_to: the role an escalated alarm goes to (:data:`ESCALATION_ROLES`: ``admin`` or ``operator``).
    """

    priority: str = "normal"
    colour: str | None = None
    ack_required: bool = False
    groups: tuple[str, ...] = field(default_factory=tuple)
    escalate_after_s: int | None = None
    escalate_to: str | None = None

    def validated(self) -> AlarmPolicy:
        """The same policy with its colour and groups normalised.

        Raises:
            PolicyError: an unknown priority or role, a colour that is not hex, an escalation without
                acknowledgement or without its time or role, a time out of range.
            InvalidInput: a group name that breaks the camera-id rule (:func:`metrosight.core.names.identifier`).
        """
        if self.priority not in PRIORITIES:
            raise PolicyError(f"unknown priority {self.priority!r}: use one of {', '.join(PRIORITIES)}")
        groups = tuple(identifiers(self.groups, "camera group"))
        if len(groups) > MAX_GROUPS:
            raise PolicyError(f"{len(groups)} camera groups: a policy names at most {MAX_GROUPS}")
        if self.escalate_to is not None and self.escalate_to not in ESCALATION_ROLES:
            known = "a role that does not handle alarms" if self.escalate_to in ROLES else "an unknown role"
            raise PolicyError(
                f"escalation role {self.escalate_to!r} is {known}: use one of {', '.join(ESCALATION_ROLES)}"
            )
        after = self.escalate_after_s
        if after is not None:
            if isinstance(after, bool) or not isinstance(after, int) or not 1 <= after <= MAX_ESCALATION_S:
                raise PolicyError(f"escalation time {after!r} s is out of range: 1 to {MAX_ESCALATION_S} seconds")
            if not self.ack_required:
                raise PolicyError("an escalation needs acknowledgement required: only unacknowledged alarms escalate")
            if self.escalate_to is None:
                raise PolicyError("an escalation needs the role it escalates to (e.g. approver)")
        elif self.escalate_to is not None:
            raise PolicyError("an escalation role needs its escalation time (seconds)")
        return AlarmPolicy(
            self.priority,
            None if self.colour is None else colour(self.colour),
            bool(self.ack_required),
            tuple(dict.fromkeys(groups)),
            after,
            self.escalate_to,
        )

    @property
    def shown_colour(self) -> str:
        """The colour the alarm is shown in: its own, else the priority's default."""
        return self.colour or DEFAULT_COLOURS[self.priority]

    def applies_to(self, groups: str | Iterable[str] | None) -> bool:
        """Whether an alert on a camera in ``groups`` raises an alarm under this policy: every camera group the
        camera is in, as scopes resolve them (its line, its group, each named group containing it:
        :meth:`metrosight.policy.scope.CameraGroups.of_camera`); one name or None (none) also do. Names compared by
        the identifier rule."""
        if not self.groups:
            return True
        names = [groups] if isinstance(groups, str) else list(groups or ())
        return any(same_identifier(g, x) for g in self.groups for x in names)

    def to_json(self) -> dict[str, Any]:
        return {
            "priority": self.priority,
            "colour": self.colour,
            "ack_required": self.ack_required,
            "groups": list(self.groups),
            "escalate_after_s": self.escalate_after_s,
            "escalate_to": self.escalate_to,
        }


DEFAULT_POLICY: Final = AlarmPolicy()  # a watchlist without a policy: normal, no acknowledgement, every camera


def policy_for(policies: Iterable[AlarmPolicy], group: str | Iterable[str] | None) -> AlarmPolicy | None:
    """The policy an alert of a person on several lists is raised under: the most urgent of the lists' policies
    (a list without one counts as :data:`DEFAULT_POLICY`) that applies to the camera's groups (every group it is
    in, see :meth:`AlarmPolicy.applies_to`); among equal
    priorities, one that requires acknowledgement, then the shortest escalation. None: no policy applies (the
    alert raises no alarm)."""
    applying = [p for p in policies if p.applies_to(group)]
    if not applying:
        return None

    def key(p: AlarmPolicy) -> tuple[int, int, int]:
        return (priority_rank(p.priority), 0 if p.ack_required else 1, p.escalate_after_s or MAX_ESCALATION_S + 1)

    return min(applying, key=key)


@dataclass(frozen=True, slots=True)
class AlarmView:
    """What the rules need to know of a stored alarm.

    Attributes:
        alert_id: the alert.
        state: ``new``, ``claimed``, ``acknowledged``; None: the alert raises no alarm.
        owner: who claimed it (None while ``new``).
        escalated: it escalated (unacknowledged at its escalation time).
        escalate_to: the role it escalates to.
        rejected: the alert was rejected by its review (a false match: nothing to handle).
    """

    alert_id: int
    state: str | None
    owner: str | None = None
    escalated: bool = False
    escalate_to: str | None = None
    rejected: bool = False


def may_handle(actor: Actor, alarm: AlarmView) -> bool:
    """Operators handle alarms; members of the escalation role handle an alarm that escalated to them."""
    if actor.has("operator"):
        return True
    return alarm.escalated and alarm.escalate_to is not None and actor.has(alarm.escalate_to)


def next_state(alarm: AlarmView, actor: Actor, action: str, reason: str | None = None) -> tuple[str, str | None]:
    """The state and owner ``action`` by ``actor`` leads to.

    Raises:
        Forbidden: the actor may not handle alarms (a viewer, an auditor, an approver before it escalated to
            approvers), or acts on an alarm another person owns (acknowledging or releasing someone else's claim).
        AlarmTaken: claiming an alarm someone else has claimed (take it over instead).
        NoAlarm: the alert raises no alarm.
        PolicyError: an unknown action, a take-over without a reason, an action the state does not allow
            (acknowledged is final), claiming a rejected alert.
    """
    if action not in ALARM_ACTIONS:
        raise PolicyError(f"unknown alarm action {action!r}: use one of {', '.join(ALARM_ACTIONS)}")
    if actor.must_set_password:
        raise Forbidden(f"{actor.name} may not {action} alarms: {actor.must_set_password}")
    if not may_handle(actor, alarm):
        role = f" (or, once it escalates, the {alarm.escalate_to} role)" if alarm.escalate_to else ""
        raise Forbidden(
            f"{actor.name} may not {action} alarms: needs the operator role{role} "
            f"(has: {', '.join(sorted(actor.roles)) or 'none'})"
        )
    if alarm.state is None:
        raise NoAlarm(f"alert {alarm.alert_id} raises no alarm: no alert policy of its watchlists covers its camera")
    mine = alarm.owner is not None and alarm.owner == actor.name  # user names are unique and never look alike
    if alarm.state == "acknowledged":
        raise PolicyError(f"alarm {alarm.alert_id} is already acknowledged (by {alarm.owner})")
    if action in ("claim", "takeover") and alarm.rejected:
        raise PolicyError(f"alert {alarm.alert_id} was rejected by its review: there is nothing to handle")
    if alarm.state == "claimed" and not mine:
        if action == "claim":
            raise AlarmTaken(
                f"alarm {alarm.alert_id} is claimed by {alarm.owner}: take it over (with a reason; {alarm.owner} "
                "and the audit log see it) to handle it yourself"
            )
        if action in ("release", "acknowledge"):
            raise Forbidden(
                f"alarm {alarm.alert_id} is claimed by {alarm.owner}, not {actor.name}: only its owner may "
                f"{action} it; take it over first"
            )
    if alarm.state == "claimed" and mine and action in ("claim", "takeover"):
        raise PolicyError(f"alarm {alarm.alert_id} is already yours")
    if action == "takeover" and not (free_text(reason, "reason") if reason is not None else ""):
        raise PolicyError("a take-over needs a reason (the previous owner and the audit log see it)")
    new = TRANSITIONS.get((alarm.state, action))
    if new is None:  # release or take over an alarm nobody claimed
        raise PolicyError(f"alarm {alarm.alert_id} is not claimed by anyone: claim it instead")
    return new, (None if new == "new" else actor.name)
