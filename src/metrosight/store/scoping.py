"""Scoped roles in the store: checking a scope's names, and the conditions that keep each read inside the reader's
scope (rules: :mod:`metrosight.policy.scope`).

Every read of alerts, sightings, crops, events, snapshots, entries and identification results filters by the
reader's :class:`~metrosight.policy.scope.View` here, where the data is queried, so that no route, page, feed or
export can forget it. A thing outside the view is reported as not found (404), exactly like one that does not
exist, so an id guessed from another group tells nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import and_, false, or_, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from metrosight.core.names import InvalidInput
from metrosight.policy.rules import Actor, PolicyError
from metrosight.policy.scope import (
    NO_GROUPS,
    UNSCOPABLE_ROLES,
    CameraGroups,
    RoleGrant,
    Scope,
    View,
    check_grant,
)
from metrosight.store.models import Watchlist
from metrosight.store.naming import find_named

# who reads what (the roles whose grants make up the view of each kind of read)
ALERT_READERS = ("operator", "admin", "auditor")
CROP_READERS = ("operator", "admin")
CAMERA_READERS = ("admin", "approver", "operator", "auditor", "viewer")
WATCHLIST_READERS = ("admin", "approver", "operator", "auditor")


class Scoping:
    """The installation's camera groups, and the views and checks built on them (``uow.scoping``)."""

    def __init__(self, groups: CameraGroups = NO_GROUPS) -> None:
        self.groups = groups

    def view(self, actor: Actor, roles: Iterable[str]) -> View:
        """What ``actor`` may see through ``roles``."""
        return actor.view(tuple(roles), self.groups)

    def check_groups(self, names: Iterable[str]) -> None:
        """Check that each of ``names`` is a camera group of the configuration (named groups, each camera's line and
        group): the one check for scopes, outbound filters and alert policies, where an unknown group would silently
        match nothing.

        Raises:
            InvalidInput: the first unknown name, with the known ones.
        """
        for g in names:
            if not self.groups.known(g):
                known = ", ".join(sorted(self.groups.members)) or "none are configured"
                raise InvalidInput(
                    f"no camera group {g!r} (known: {known}); define it under camera_groups in the configuration, or "
                    "name a line or group of a camera"
                )

    def check_scope(self, s: Session, scope: Scope) -> Scope:
        """``scope`` with its names checked: camera groups configured (named groups, lines, camera groups) and
        watchlists existing (stored under their canonical names).

        Raises:
            InvalidInput: an unknown camera group. PolicyError: an unknown watchlist.
        """
        self.check_groups(scope.camera_groups)
        lists = set()
        for w in scope.watchlists:
            row = find_named(s, Watchlist, w)
            if row is None:
                raise PolicyError(f"no watchlist {w!r}: create it first (metrosight watchlist create)")
            lists.add(row.name)
        return Scope(scope.camera_groups, frozenset(lists))

    def check_scopes(self, s: Session, roles: Iterable[str], scopes: Mapping[str, Scope]) -> dict[str, Any] | None:
        """The stored form (``users.scopes``) of ``scopes`` for a user holding ``roles``: only the roles held and
        scoped; None when every role is global.

        Raises:
            InvalidInput: a scope on admin or auditor, or an unknown camera group. PolicyError: a scope for a
            role the user does not hold, or an unknown watchlist.
        """
        held = set(roles)
        out: dict[str, Any] = {}
        for role, scope in sorted(scopes.items()):
            if scope.is_global:
                continue
            if role not in held:
                raise PolicyError(f"a scope for the {role} role, which the user does not hold")
            check_grant(RoleGrant(role, scope))
            out[role] = self.check_scope(s, scope).to_json()
        return out or None


def scopable(roles: Iterable[str]) -> list[str]:
    """The roles among ``roles`` that may be scoped (all but admin and auditor)."""
    return [r for r in roles if r not in UNSCOPABLE_ROLES]


def grants_of(roles: Iterable[str], stored: Mapping[str, Any] | None) -> tuple[RoleGrant, ...]:
    """The scoped grants of a user row (``users.roles``, ``users.scopes``): roles with a non-global scope."""
    stored = stored or {}
    out = []
    for role in sorted(set(roles)):
        scope = Scope.from_json(stored.get(role))
        if not scope.is_global:
            out.append(RoleGrant(role, scope))
    return tuple(out)


def where_visible(view: View, camera: Any, watchlist: Any | None = None) -> ColumnElement[bool]:
    """A SQL condition: the row's ``camera`` column (and ``watchlist`` column, when the rows are about one) lies
    inside ``view``. ``true()`` for a view of everything, ``false()`` for a view of nothing."""
    if view.everything:
        return true()
    conds: list[ColumnElement[bool]] = []
    for r in view.reaches:
        parts: list[ColumnElement[bool]] = []
        if r.cameras is not None:
            if not r.cameras:
                continue  # this grant's groups hold no camera: it covers nothing
            parts.append(camera.in_(sorted(r.cameras)))
        if r.watchlists is not None and watchlist is not None:
            parts.append(watchlist.in_(sorted(r.watchlists)))
        conds.append(and_(*parts) if parts else true())
    return or_(*conds) if conds else false()


def where_camera(view: View, camera: Any) -> ColumnElement[bool]:
    """A SQL condition: the row's ``camera`` column is a camera ``view`` sees anything of (events, snapshots)."""
    ids = view.camera_ids
    if ids is None:
        return true() if (view.everything or view.reaches) else false()
    return camera.in_(sorted(ids)) if ids else false()
