"""Scoped roles: which camera groups and watchlists a role is held for. Pure values; the store applies them where
the data is read (``metrosight.store.scoping``).

A user's roles are *grants* (:class:`RoleGrant`): a role and a :class:`Scope`. A scope names camera groups (the
``camera_groups`` of the configuration, or a camera's ``line`` or ``group``) and watchlists; an empty dimension
is unrestricted, so :data:`GLOBAL` (both empty) is everything — the scope of every role of an installation made
before scopes existed. A grant covers a camera when its scope names no camera group or a group the camera is in,
and a watchlist likewise; a thing (an alert's sighting, a camera, an entry) is visible to a user when one of the
grants of the roles that may read it covers it (:class:`View`).

``admin`` and ``auditor`` are always global: an admin manages the users and their scopes, an auditor reads the
whole audit log; scoping them would promise a limit that does not hold (:func:`check_grant`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from metrosight.core.names import InvalidInput, human_name, identifier

UNSCOPABLE_ROLES: Final = frozenset({"admin", "auditor"})
SCOPE_SYNTAX = "cameras:GROUP[,GROUP…] or watchlist:NAME[,NAME…] (e.g. cameras:line1, watchlist:missing)"
_CAMERA_KINDS: Final = ("cameras", "camera", "camera-group", "camera-groups", "group", "groups")
_WATCHLIST_KINDS: Final = ("watchlist", "watchlists")


@dataclass(frozen=True, slots=True)
class Scope:
    """What a role is held for: camera groups and watchlists by name (an empty set: every one).

    Attributes:
        camera_groups: names of camera groups (configuration ``camera_groups``, or a camera's ``line``/``group``).
        watchlists: watchlist names.
    """

    camera_groups: frozenset[str] = frozenset()
    watchlists: frozenset[str] = frozenset()

    @property
    def is_global(self) -> bool:
        """True when the scope restricts nothing."""
        return not self.camera_groups and not self.watchlists

    @classmethod
    def parse(cls, items: Iterable[str]) -> Scope:
        """A scope from ``--scope`` items, each ``cameras:G1,G2`` or ``watchlist:W1,W2`` (repeatable, merged).

        Raises:
            InvalidInput: an item of another form, or a name that breaks the identifier / name rules.
        """
        groups: set[str] = set()
        lists: set[str] = set()
        for item in items:
            kind, sep, names = str(item).partition(":")
            kind = kind.strip().lower()
            if not sep or kind not in (*_CAMERA_KINDS, *_WATCHLIST_KINDS):
                raise InvalidInput(f"scope {item!r} is not understood; write {SCOPE_SYNTAX}")
            parts = [p for p in names.split(",") if p.strip()]
            if not parts:
                raise InvalidInput(f"scope {item!r} names nothing; write {SCOPE_SYNTAX}")
            if kind in _CAMERA_KINDS:
                groups.update(identifier(p, "camera group") for p in parts)
            else:
                lists.update(human_name(p, "watchlist") for p in parts)
        return cls(frozenset(groups), frozenset(lists))

    def items(self) -> list[str]:
        """The scope as ``--scope`` items (``cameras:…``, ``watchlist:…``), sorted; empty for :data:`GLOBAL`."""
        out = [f"cameras:{g}" for g in sorted(self.camera_groups)]
        return out + [f"watchlist:{w}" for w in sorted(self.watchlists)]

    def describe(self) -> str:
        """One line for people: ``everything``, or ``camera groups line1; watchlists missing``."""
        if self.is_global:
            return "everything"
        parts = []
        if self.camera_groups:
            parts.append("camera groups " + ", ".join(sorted(self.camera_groups)))
        if self.watchlists:
            parts.append("watchlists " + ", ".join(sorted(self.watchlists)))
        return "; ".join(parts)

    def to_json(self) -> dict[str, list[str]]:
        return {"camera_groups": sorted(self.camera_groups), "watchlists": sorted(self.watchlists)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Scope:
        """The scope stored as :meth:`to_json` (None or ``{}``: :data:`GLOBAL`)."""
        if not data:
            return GLOBAL
        return cls(frozenset(data.get("camera_groups") or ()), frozenset(data.get("watchlists") or ()))


GLOBAL: Final = Scope()


@dataclass(frozen=True, slots=True)
class RoleGrant:
    """A role held for a scope (:data:`GLOBAL`: everywhere)."""

    role: str
    scope: Scope = GLOBAL


def check_grant(grant: RoleGrant) -> RoleGrant:
    """Raises PolicyError-like :class:`InvalidInput` when ``grant`` scopes a role that is always global."""
    if grant.role in UNSCOPABLE_ROLES and not grant.scope.is_global:
        why = "an admin manages users and their scopes" if grant.role == "admin" else "an auditor reads every record"
        raise InvalidInput(f"the {grant.role} role cannot be scoped: {why}; give the scope to the user's other roles")
    return grant


@dataclass(frozen=True, slots=True)
class CameraGroups:
    """The camera groups of a configuration, resolved to camera ids: named groups (``camera_groups``) first, then
    every camera's ``line`` and ``group``.

    Attributes:
        members: group name → the ids of its cameras.
    """

    members: Mapping[str, frozenset[str]]

    @classmethod
    def of(cls, members: Mapping[str, Iterable[str]]) -> CameraGroups:
        """Groups from ``name → camera ids`` (names equal up to case and Unicode form are merged)."""
        out: dict[str, frozenset[str]] = {}
        for k, v in members.items():
            out[_key(k)] = out.get(_key(k), frozenset()) | frozenset(v)
        return cls(out)

    def known(self, group: str) -> bool:
        return _key(group) in self.members

    def of_camera(self, camera_id: str | None) -> frozenset[str]:
        """The names (compared form: case-folded, NFKC) of every group ``camera_id`` is in: its line, its group and
        each named group that lists it or its line (None or an unconfigured camera: none). The one answer to "which
        groups is this camera in" for scopes, outbound filters and alert policies."""
        if camera_id is None:
            return frozenset()
        return frozenset(k for k, ids in self.members.items() if camera_id in ids)

    def cameras(self, groups: Iterable[str]) -> frozenset[str]:
        """The cameras of ``groups`` (an unknown group has none: a scope naming only it sees nothing)."""
        out: set[str] = set()
        for g in groups:
            out.update(self.members.get(_key(g), ()))
        return frozenset(out)


NO_GROUPS: Final = CameraGroups({})


def _key(name: str) -> str:
    """Group names compare up to case and Unicode form (``Line1`` is ``line1``)."""
    return unicodedata.normalize("NFKC", name).casefold().strip()


@dataclass(frozen=True, slots=True)
class Reach:
    """What one grant covers, resolved: camera ids and watchlist names (None: every one)."""

    cameras: frozenset[str] | None
    watchlists: frozenset[str] | None

    def covers(self, camera_id: str | None, watchlist: str | None) -> bool:
        """Whether this grant covers a thing seen on ``camera_id`` about ``watchlist`` (None: not about one)."""
        if self.cameras is not None and (camera_id is None or camera_id not in self.cameras):
            return False
        return self.watchlists is None or watchlist is None or _wl(watchlist) in self.watchlists


def _wl(name: str) -> str:
    # watchlist names are stored canonical (NFC, trimmed) and scopes hold the stored names: compared exactly
    return unicodedata.normalize("NFC", name).strip()


@dataclass(frozen=True, slots=True)
class View:
    """What a user may see for one kind of action: the union of the :class:`Reach` of the grants of the roles
    that allow it. ``reaches`` is empty when the user holds none of them (sees nothing); :attr:`everything` when
    one grant is global.
    """

    reaches: tuple[Reach, ...]
    everything: bool = False

    def covers(self, camera_id: str | None, watchlist: str | None = None) -> bool:
        """Whether a thing seen on ``camera_id`` about ``watchlist`` is visible (None: not about a camera / list;
        a camera-scoped user sees nothing that is not of a camera)."""
        return self.everything or any(r.covers(camera_id, watchlist) for r in self.reaches)

    def camera(self, camera_id: str | None) -> bool:
        """Whether anything of ``camera_id`` may be seen (a camera on the board, its snapshot, metrics, events)."""
        return self.everything or any(
            r.cameras is None or (camera_id is not None and camera_id in r.cameras) for r in self.reaches
        )

    def watchlist(self, name: str | None) -> bool:
        """Whether the watchlist ``name`` (its entries, results naming it) may be seen."""
        return self.everything or any(
            r.watchlists is None or (name is not None and _wl(name) in r.watchlists) for r in self.reaches
        )

    @property
    def camera_ids(self) -> frozenset[str] | None:
        """Every camera id visible through some grant (None: some grant reaches every camera)."""
        if self.everything or any(r.cameras is None for r in self.reaches):
            return None
        return frozenset().union(*(r.cameras or frozenset() for r in self.reaches))


EVERYTHING: Final = View((), everything=True)


def view_of(grants: Iterable[RoleGrant], roles: Iterable[str], groups: CameraGroups) -> View:
    """The :class:`View` of the ``grants`` whose role is one of ``roles``, with camera groups resolved by
    ``groups``."""
    wanted = set(roles)
    reaches = []
    for g in grants:
        if g.role not in wanted:
            continue
        if g.scope.is_global:
            return EVERYTHING
        reaches.append(
            Reach(
                groups.cameras(g.scope.camera_groups) if g.scope.camera_groups else None,
                frozenset(_wl(w) for w in g.scope.watchlists) if g.scope.watchlists else None,
            )
        )
    return View(tuple(reaches))
