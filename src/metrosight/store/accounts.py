"""Accounts for the operator service: password sign-in, user administration and API tokens.

Works on a :class:`~metrosight.store.repo.Store` (its session factory and audit log), so every change is written
with its audit entry in one transaction, like the rest of the store. API tokens are 256-bit random strings shown
once; only their SHA-256 is stored (a token is as strong as a random key, so a fast hash is enough — unlike
passwords, which are Argon2id-hashed by :mod:`metrosight.policy.passwords`).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from metrosight.policy.passwords import check_password, hash_password
from metrosight.policy.rules import Actor, Forbidden, PolicyError, aware, check_roles, require
from metrosight.store.governance import NotFound
from metrosight.store.models import ApiToken, User
from metrosight.store.naming import find_named

if TYPE_CHECKING:
    from metrosight.store.repo import Store

TOKEN_PREFIX = "mst_"
LAST_USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per token
# A hash to verify against when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH: list[str] = []


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    roles: list[str]
    disabled: bool
    has_password: bool
    created_at: datetime
    created_by: str | None


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    user: str
    prefix: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Accounts:
    """Users, passwords and API tokens of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._session = store._session

    # -- sign-in ----------------------------------------------------------------------------------------------
    def authenticate(self, name: str, password: str) -> Actor | None:
        """The user ``name`` if ``password`` is theirs and the account is enabled, else None. Not audited here:
        the caller records the attempt (with its origin)."""
        with self._session() as s:
            u = find_named(s, User, name)
        if u is None or not u.password_hash:
            if not _DUMMY_HASH:
                _DUMMY_HASH.append(hash_password("not-a-real-password"))
            check_password(_DUMMY_HASH[0], password)  # same cost as a real check
            return None
        if not check_password(u.password_hash, password) or u.disabled:
            return None
        return Actor(u.name, frozenset(u.roles))

    def session_user(self, name: str) -> tuple[Actor | None, str | None]:
        """The enabled user ``name`` (None if unknown or disabled) and their password hash (to bind sessions)."""
        with self._session() as s:
            u = find_named(s, User, name)
        if u is None or u.disabled:
            return None, None
        return Actor(u.name, frozenset(u.roles)), u.password_hash

    # -- users ------------------------------------------------------------------------------------------------
    def users(self, actor: Actor) -> list[UserInfo]:
        require(actor, "list users", "admin")
        with self._session() as s:
            return [
                UserInfo(u.name, sorted(u.roles), u.disabled, bool(u.password_hash), aware(u.created_at), u.created_by)  # type: ignore[arg-type]
                for u in s.scalars(select(User).order_by(User.name))
            ]

    def add_user(self, name: str, roles: list[str], password: str | None, actor: Actor) -> None:
        """Create a user (admin only), with an Argon2id-hashed password when given. Audited by the store."""
        require(actor, "add users", "admin")
        pw_hash = hash_password(password) if password else None
        self.store.add_user(name, roles, actor, pw_hash)

    def set_password(self, name: str, password: str, actor: Actor) -> None:
        """Set a user's password: the user themself or an admin. Audited (never the password)."""
        if actor.name != name:
            require(actor, "set other users' passwords", "admin")
        pw_hash = hash_password(password)
        with self._session.begin() as s:
            u = self._user(s, name)
            u.password_hash = pw_hash
            self.store.audit.append(s, actor.name, "user.password", name, {})

    def update_user(
        self, name: str, actor: Actor, roles: list[str] | None = None, disabled: bool | None = None
    ) -> UserInfo:
        """Change a user's roles or disable/enable them (admin only). The last enabled admin cannot lose the
        role or be disabled, and an admin cannot disable themself. Audited."""
        require(actor, "change users", "admin")
        new_roles = check_roles(roles) if roles is not None else None
        with self._session.begin() as s:
            u = self._user(s, name)
            if disabled and name == actor.name:
                raise Forbidden(f"{actor.name} may not disable their own account")
            loses_admin = (new_roles is not None and "admin" not in new_roles) or bool(disabled)
            if loses_admin and "admin" in u.roles and not u.disabled:
                admins = [x for x in s.scalars(select(User)) if "admin" in x.roles and not x.disabled]
                if len(admins) <= 1:
                    raise PolicyError(f"{name} is the last enabled admin; add another admin first")
            details: dict[str, object] = {}
            if new_roles is not None and new_roles != sorted(u.roles):
                details["roles"] = {"from": sorted(u.roles), "to": new_roles}
                u.roles = new_roles
            if disabled is not None and disabled != u.disabled:
                details["disabled"] = disabled
                u.disabled = disabled
            if details:
                self.store.audit.append(s, actor.name, "user.update", name, details)
            return UserInfo(u.name, sorted(u.roles), u.disabled, bool(u.password_hash), aware(u.created_at), u.created_by)  # type: ignore[arg-type]

    @staticmethod
    def _user(s, name: str) -> User:  # type: ignore[no-untyped-def]
        u = find_named(s, User, name)
        if u is None:
            raise NotFound(f"unknown user {name!r}")
        return u

    # -- API tokens -------------------------------------------------------------------------------------------
    def create_token(
        self, user: str, name: str, actor: Actor, expires_at: datetime | None = None
    ) -> tuple[TokenInfo, str]:
        """A new API token acting as ``user`` (the actor themself, or anyone when the actor is an admin).

        Returns:
            ``(info, token)``: the token text is returned once and never stored.
        """
        if user != actor.name:
            require(actor, "create tokens for other users", "admin")
        name = name.strip()
        if not name:
            raise PolicyError("a token needs a name (what uses it)")
        now = datetime.now(UTC)
        if expires_at is not None and aware(expires_at) <= now:  # type: ignore[operator]
            raise PolicyError(f"expiry {expires_at.isoformat()} is in the past")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._session.begin() as s:
            u = self._user(s, user)
            if u.disabled:
                raise PolicyError(f"user {user!r} is disabled")
            row = ApiToken(
                name=name, user=u.name, token_sha256=token_digest(token), prefix=token[: len(TOKEN_PREFIX) + 6],
                created_by=actor.name, expires_at=expires_at,
            )
            s.add(row)
            s.flush()
            self.store.audit.append(
                s, actor.name, "token.create", user,
                {"token_id": row.id, "name": name, "expires_at": expires_at.isoformat() if expires_at else None},
            )
            return _token_info(row), token

    def token_actor(self, token: str) -> Actor | None:
        """The user a token acts as, or None for an unknown, revoked or expired token or a disabled user."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        now = datetime.now(UTC)
        with self._session() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.token_sha256 == token_digest(token)))
            if row is None or row.revoked_at is not None:
                return None
            if row.expires_at is not None and aware(row.expires_at) <= now:  # type: ignore[operator]
                return None
            u = s.scalar(select(User).where(User.name == row.user))
            if u is None or u.disabled:
                return None
            stale = row.last_used_at is None or now - aware(row.last_used_at) > LAST_USED_EVERY  # type: ignore[operator]
            actor, token_id = Actor(u.name, frozenset(u.roles)), row.id
        if stale:
            with self._session.begin() as s:
                t = s.get(ApiToken, token_id)
                if t is not None:
                    t.last_used_at = now
        return actor

    def tokens(self, actor: Actor) -> list[TokenInfo]:
        """The actor's own tokens; every token for an admin."""
        with self._session() as s:
            q = select(ApiToken).order_by(ApiToken.id)
            if not actor.has("admin"):
                q = q.where(ApiToken.user == actor.name)
            return [_token_info(t) for t in s.scalars(q)]

    def revoke_token(self, token_id: int, actor: Actor) -> TokenInfo:
        """Revoke a token (its user, or an admin). Audited."""
        with self._session.begin() as s:
            t = s.get(ApiToken, token_id)
            if t is None or (t.user != actor.name and not actor.has("admin")):
                raise NotFound(f"no token {token_id}")
            if t.revoked_at is not None:
                raise PolicyError(f"token {token_id} is already revoked")
            t.revoked_at, t.revoked_by = datetime.now(UTC), actor.name
            self.store.audit.append(s, actor.name, "token.revoke", t.user, {"token_id": t.id, "name": t.name})
            return _token_info(t)


def _token_info(t: ApiToken) -> TokenInfo:
    return TokenInfo(
        t.id, t.name, t.user, t.prefix, aware(t.created_at), t.created_by, aware(t.expires_at),  # type: ignore[arg-type]
        aware(t.last_used_at), aware(t.revoked_at),
    )
