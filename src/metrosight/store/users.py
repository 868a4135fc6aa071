"""Users of an installation: who may act, with which roles (passwords and API tokens: :mod:`.accounts`)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import func, select

from metrosight.core.names import human_name
from metrosight.policy.rules import Actor, PolicyError, check_roles, require
from metrosight.policy.scope import Scope
from metrosight.store.errors import Conflict, NotFound
from metrosight.store.models import User
from metrosight.store.naming import find_named, lookalike_message
from metrosight.store.scoping import grants_of
from metrosight.store.uow import UnitOfWork


def user_actor(u: User) -> Actor:
    """The acting person of a user row: their roles (each with its scope), or none while a password set by
    somebody else (an admin's reset) is theirs (see :attr:`Actor.password_set_by`)."""
    by = u.password_set_by if u.password_set_by not in (None, u.name) else None
    return Actor(u.name, frozenset(u.roles), by, grants_of(u.roles, u.scopes))


def scopes_json(stored: Mapping[str, object] | None) -> dict[str, list[str]]:
    """A user row's scopes for people: role → ``--scope`` items (``cameras:line1``), scoped roles only."""
    out = {}
    for role, data in sorted((stored or {}).items()):
        scope = Scope.from_json(data if isinstance(data, Mapping) else None)
        if not scope.is_global:
            out[role] = scope.items()
    return out


class UserRepository:
    """Users: look one up as an acting :class:`Actor`, add one (audited), list them."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def actor(self, name: str | None) -> Actor:
        """The acting user. Raises PolicyError for no name, NotFound for an unknown or disabled user."""
        if not name:
            raise PolicyError("this action needs a user: pass --as USER (create users with `metrosight user add`)")
        with self.uow.read() as s:
            u = find_named(s, User, name)
        if u is None or u.disabled:
            raise NotFound(f"unknown user {name!r}")
        return user_actor(u)

    def count(self) -> int:
        with self.uow.read() as s:
            return int(s.scalar(select(func.count()).select_from(User)) or 0)

    def add(
        self,
        name: str,
        roles: list[str],
        actor: Actor | None,
        password_hash: str | None = None,
        scopes: Mapping[str, Scope] | None = None,
    ) -> None:
        """Create a user. The first user may be created without an actor (and must be an admin); later ones need
        an admin. ``scopes``: role → the scope it is held for (roles not named: everywhere; see
        :meth:`metrosight.store.scoping.Scoping.check_scopes`). Raises Conflict for a taken or look-alike name,
        Forbidden or PolicyError as above, InvalidInput for an unknown camera group or a scoped admin/auditor."""
        roles = check_roles(roles)
        name = human_name(name, "user name")
        with self.uow.write() as s:
            first = (s.scalar(select(func.count()).select_from(User)) or 0) == 0
            if actor is None:
                if not first:
                    raise PolicyError("users exist already: an admin must add new ones (--as ADMIN)")
                if "admin" not in roles:
                    raise PolicyError("the first user must have the admin role")
                by = name
            else:
                require(actor, "add users", "admin")
                by = actor.name
            if find_named(s, User, name) is not None:
                raise Conflict(f"user {name!r} already exists")
            if (why := lookalike_message(s, User, name, "user")) is not None:
                raise Conflict(why)
            stored = self.uow.scoping.check_scopes(s, roles, scopes or {})
            s.add(User(name=name, roles=roles, created_by=by, password_hash=password_hash, scopes=stored))
            details: dict[str, object] = {"roles": roles}
            if stored:
                details["scopes"] = scopes_json(stored)
            self.uow.audit(s, by, "user.add", name, details)

    def all(self) -> list[tuple[str, list[str], bool]]:
        """``(name, roles, disabled)`` of every user, by name."""
        with self.uow.read() as s:
            return [(u.name, list(u.roles), u.disabled) for u in s.scalars(select(User).order_by(User.name))]

    def scopes(self) -> dict[str, dict[str, list[str]]]:
        """User name → role → ``--scope`` items, for the users with a scoped role."""
        with self.uow.read() as s:
            return {u.name: sc for u in s.scalars(select(User).order_by(User.name)) if (sc := scopes_json(u.scopes))}
