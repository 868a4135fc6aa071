"""Who may do what, and the life of a watchlist entry. Pure rules; the store applies them in its transactions.

Roles: ``admin`` (users, watchlists, no-identification windows, purge), ``approver`` (records and activates
watchlist entries), ``operator`` (reviews alerts, identifies photos), ``auditor`` (reads the audit log), ``viewer``
(sees cameras and analytics, no biometric data).

Entry states: ``pending`` (recorded, not matched) → ``active`` (approved by a second, different approver) →
``revoked`` or ``expired`` (templates destroyed). An *urgent* entry is active at once but expires 24 h after it
was recorded unless approved in time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final

from metrosight.core.names import free_text, identifiers, looks_alike, same_identifier
from metrosight.core.when import describe, end_of_day_limit
from metrosight.policy.scope import GLOBAL, NO_GROUPS, CameraGroups, RoleGrant, Scope, View, view_of

ROLES = ("admin", "approver", "operator", "auditor", "viewer")
URGENT_TTL = timedelta(hours=24)

ENTRY_STATES = ("pending", "active", "revoked", "expired")


class PolicyError(Exception):
    """An action is not allowed; the message says which rule refused it."""


class Forbidden(PolicyError):
    """The user lacks the role for the action, or the rule forbids this user (e.g. approving their own entry)."""


@dataclass(frozen=True, slots=True)
class Actor:
    """A person acting, with their roles.

    ``password_set_by`` names another person who set this account's current password (an admin's reset): whoever
    signs in with it may be that person, so the account holds no role until its user sets their own password
    (:meth:`has` is False for every role; the user may still change their password).

    ``scoped`` holds the roles held for a limited :class:`~metrosight.policy.scope.Scope` (camera groups,
    watchlists); every other role is held everywhere (see :mod:`metrosight.policy.scope`).
    """

    name: str
    roles: frozenset[str]
    password_set_by: str | None = None
    scoped: tuple[RoleGrant, ...] = ()

    def has(self, *roles: str) -> bool:
        return self.password_set_by is None and bool(self.roles.intersection(roles))

    def scope_of(self, role: str) -> Scope:
        """The scope ``role`` is held for (:data:`~metrosight.policy.scope.GLOBAL` when not scoped)."""
        return next((g.scope for g in self.scoped if g.role == role), GLOBAL)

    @property
    def grants(self) -> tuple[RoleGrant, ...]:
        """Every role the actor holds, with its scope, by role name."""
        return tuple(RoleGrant(r, self.scope_of(r)) for r in sorted(self.roles))

    def view(self, roles: Iterable[str], groups: CameraGroups = NO_GROUPS) -> View:
        """What the actor may see through ``roles`` (:class:`~metrosight.policy.scope.View`); nothing while the
        account must set its password."""
        if self.password_set_by is not None:
            return View(())
        return view_of(self.grants, roles, groups)

    @property
    def must_set_password(self) -> str | None:
        """A one-line reason why this account may do nothing but set its own password, else None."""
        if self.password_set_by is None:
            return None
        return (
            f"{self.name}'s password was set by {self.password_set_by}: {self.name} must set their own password "
            "(with the current one) before acting"
        )


# The longest an API token may live, by role (days; None: may never expire). A user with several roles gets the
# shortest; admins alone may hold tokens that never expire (audited). Governing roles (approvals, reviews) get
# short-lived tokens: a leaked one acts in a two-person rule.
TOKEN_MAX_DAYS: Final[Mapping[str, int | None]] = {
    "admin": None,
    "approver": 30,
    "operator": 30,
    "auditor": 90,
    "viewer": 365,
}
TOKEN_DEFAULT_DAYS = 90


def token_max_days(roles: Iterable[str]) -> int | None:
    """The longest lifetime (days) an API token of a user with ``roles`` may have; None: no limit (admin only)."""
    caps = [TOKEN_MAX_DAYS[r] for r in roles if r in TOKEN_MAX_DAYS]
    limited = [c for c in caps if c is not None]
    return min(limited) if limited else None


def require(actor: Actor, action: str, *roles: str) -> None:
    """Raises Forbidden unless ``actor`` holds one of ``roles``."""
    if actor.must_set_password:
        raise Forbidden(f"{actor.name} may not {action}: {actor.must_set_password}")
    if not actor.has(*roles):
        need = " or ".join(roles)
        raise Forbidden(
            f"{actor.name} may not {action}: needs the {need} role (has: {', '.join(sorted(actor.roles)) or 'none'})"
        )


def check_roles(roles: Iterable[str]) -> list[str]:
    out = sorted(set(roles))
    bad = [r for r in out if r not in ROLES]
    if bad:
        raise PolicyError(f"unknown role(s) {', '.join(bad)}; roles are {', '.join(ROLES)}")
    if not out:
        raise PolicyError(f"a user needs at least one role ({', '.join(ROLES)})")
    return out


@dataclass(frozen=True, slots=True)
class Authorisation:
    """The legal authorisation of a watchlist entry.

    Attributes:
        legal_basis: the law or order that allows the search (e.g. "Criminal Procedure Code art. 210").
        issuing_authority: who issued it (a court, a prosecutor, a health authority).
        reference: the case or order number.
        expires_at: when the authorisation ends (UTC).
        valid_from: when it starts (UTC), or None for at once.
        cameras: camera ids the search is limited to (empty: no camera limit).
        lines: metro lines the search is limited to (empty: no line limit).
        urgent: act at once, before approval (then it lapses after 24 h unless approved).
    """

    legal_basis: str
    issuing_authority: str
    reference: str
    expires_at: datetime
    valid_from: datetime | None = None
    cameras: tuple[str, ...] = field(default_factory=tuple)
    lines: tuple[str, ...] = field(default_factory=tuple)
    urgent: bool = False

    def validate(self, now: datetime, max_days: int, tz: tzinfo = UTC) -> None:
        """Raises PolicyError for a missing field, an expiry in the past or after the end of the day ``max_days``
        days from now in the deployment's zone ``tz``; InvalidInput for a camera id or line that breaks the rule
        of :func:`metrosight.core.names.identifier`."""
        for name in ("legal_basis", "issuing_authority", "reference"):
            if not free_text(getattr(self, name), name.replace("_", " ")):  # no controls, bidi or invisibles
                raise PolicyError(f"an entry needs its {name.replace('_', ' ')}")
        identifiers(self.cameras, "camera id")
        identifiers(self.lines, "line")
        if self.expires_at <= now:
            raise PolicyError(f"expiry {describe(self.expires_at, tz, end=True)} is in the past")
        if self.expires_at > end_of_day_limit(now, max_days, tz):
            raise PolicyError(
                f"expiry {describe(self.expires_at, tz, end=True)} is more than {max_days} days away; renew the "
                "authorisation instead"
            )
        if self.valid_from is not None and self.valid_from >= self.expires_at:
            raise PolicyError("the validity window starts after it ends")

    def scope(self) -> dict[str, list[str]]:
        return {"cameras": list(self.cameras), "lines": list(self.lines)}

    def effective_expiry(self, now: datetime) -> datetime:
        """When the entry stops matching if nobody approves it: 24 h for an urgent entry."""
        return min(self.expires_at, now + URGENT_TTL) if self.urgent else self.expires_at


def can_approve(
    actor: Actor,
    created_by: str | None,
    status: str,
    urgent: bool,
    approved_by: str | None,
    contributors: Iterable[str] = (),
) -> None:
    """Raises Forbidden/PolicyError unless ``actor`` may activate this entry.

    Separation of duties: the approver must be a different person from everyone who put something into the entry —
    its creator and every ``contributors`` (who added one of its templates): otherwise one approver could add a
    photo of anyone to an entry someone else recorded and approve it themself.
    """
    require(actor, "approve watchlist entries", "approver")
    # users whose names look alike (rows stored before look-alike names were refused) count as one person
    if created_by is not None and looks_alike(actor.name, created_by):
        raise Forbidden(f"{actor.name} recorded this entry and may not approve it: a second approver must")
    if any(looks_alike(actor.name, c) for c in contributors):
        raise Forbidden(
            f"{actor.name} added a photo to this entry and may not approve it: an approver who added none of its "
            "photos must"
        )
    if status not in ("pending", "active") or (status == "active" and (approved_by or not urgent)):
        raise PolicyError(f"the entry is {status}{' and already approved' if approved_by else ''}; nothing to approve")


def alert_status(reviews: Iterable[tuple[str, str]]) -> str:
    """The status of an alert given all its reviews, ``(user, action)`` pairs with action confirm or reject.

    One rejection decides it (``rejected``, for good); otherwise two *different* people's confirmations make it
    ``actionable``, one makes it ``confirmed_once``, none leaves it ``new``.
    """
    reviews = list(reviews)
    if any(action == "reject" for _, action in reviews):
        return "rejected"
    confirmers: list[str] = []
    for user, action in reviews:  # look-alike user names (stored before they were refused) count as one person
        if action == "confirm" and not any(looks_alike(user, c) for c in confirmers):
            confirmers.append(user)
    return "actionable" if len(confirmers) >= 2 else "confirmed_once" if confirmers else "new"


def in_scope(scope: dict | None, camera_id: str | None, line: str | None) -> bool:
    """Whether a camera (on ``line``) is inside an entry's or a window's scope (an empty scope covers all)."""
    scope = scope or {}
    cams = scope.get("cameras") or []
    lines = scope.get("lines") or []
    if not cams and not lines:
        return True
    # an id typed in another case or form (`CAM-1`) means the same camera (config refuses look-alike camera ids)
    return (camera_id is not None and any(same_identifier(camera_id, c) for c in cams)) or (
        line is not None and any(same_identifier(line, x) for x in lines)
    )


def aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)
