"""Accounts for the operator service: password sign-in, user administration and API tokens.

Works on the store's unit of work (:mod:`metrosight.store.uow`), so every change is written with its audit entry
in one transaction, like the rest of the store. API tokens are 256-bit random strings shown
once; only their SHA-256 is stored (a token is as strong as a random key, so a fast hash is enough — unlike
passwords, which are Argon2id-hashed by :mod:`metrosight.policy.passwords`).

Credentials belong to people, so that the two-person rules (approval, alert review), which compare user names, compare
people: a token is created only by its own user (an admin cannot mint one for somebody else, and tokens minted
for others before this rule are refused), and a password set by someone else (an admin's reset) gives its account
no role until its user sets their own (:attr:`Actor.password_set_by`). Every password change revokes the user's
tokens and ends their sessions. A token lives at most as long as the user's roles allow
(:data:`~metrosight.policy.rules.TOKEN_MAX_DAYS`, judged again at every use); only admins hold tokens that never
expire.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from metrosight.core.names import free_text, same_name
from metrosight.policy.passwords import check_password, hash_password, new_password_hash
from metrosight.policy.rules import (
    TOKEN_DEFAULT_DAYS,
    Actor,
    Forbidden,
    PolicyError,
    aware,
    check_roles,
    require,
    token_max_days,
)
from metrosight.policy.scope import RoleGrant, Scope
from metrosight.store.errors import NotFound
from metrosight.store.models import ApiToken, OidcIdentity, User
from metrosight.store.naming import find_named
from metrosight.store.uow import UnitOfWork
from metrosight.store.users import UserRepository, scopes_json, user_actor

TOKEN_PREFIX = "mst_"
LAST_USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per token


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so a wrong name costs as long as a wrong password
    (made once, at the first such sign-in)."""
    return hash_password("not-a-real-password")


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    roles: list[str]
    disabled: bool
    has_password: bool
    created_at: datetime
    created_by: str | None
    password_reset_by: str | None = None  # an admin reset the password and the user has not set their own since
    scopes: dict[str, list[str]] = field(default_factory=dict)  # role -> scope items; roles not named: everywhere


def _utc(at: datetime) -> datetime:
    """A stored instant (SQLite returns it without its zone) as an aware UTC datetime."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _user_info(u: User) -> UserInfo:
    reset_by = u.password_set_by if u.password_set_by not in (None, u.name) else None
    return UserInfo(
        u.name,
        sorted(u.roles),
        u.disabled,
        bool(u.password_hash),
        _utc(u.created_at),
        u.created_by,
        reset_by,
        scopes_json(u.scopes),
    )


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
    """Users, passwords and API tokens of one store (``store.accounts``)."""

    def __init__(self, uow: UnitOfWork, users: UserRepository) -> None:
        self.uow = uow
        self.users_repo = users

    # -- sign-in ----------------------------------------------------------------------------------------------
    def authenticate(self, name: str, password: str) -> Actor | None:
        """The user ``name`` if ``password`` is theirs and the account is enabled, else None. Not audited here:
        the caller records the attempt (with its origin)."""
        with self.uow.read() as s:
            u = find_named(s, User, name)
        if u is None or not u.password_hash:
            check_password(_dummy_hash(), password)  # same cost as a real check
            return None
        if not check_password(u.password_hash, password) or u.disabled:
            return None
        return user_actor(u)

    def session_user(self, name: str) -> tuple[Actor | None, str | None]:
        """The enabled user ``name`` (None if unknown or disabled) and their password hash (to bind sessions)."""
        with self.uow.read() as s:
            u = find_named(s, User, name)
        if u is None or u.disabled:
            return None, None
        return user_actor(u), u.password_hash

    # -- users ------------------------------------------------------------------------------------------------
    def users(self, actor: Actor) -> list[UserInfo]:
        require(actor, "list users", "admin")
        with self.uow.read() as s:
            return [_user_info(u) for u in s.scalars(select(User).order_by(User.name))]

    def add_user(
        self,
        name: str,
        roles: list[str],
        password: str | None,
        actor: Actor,
        scopes: Mapping[str, Scope] | None = None,
    ) -> None:
        """Create a user (admin only), with an Argon2id-hashed password when given (it must meet the password
        policy), each role held for its scope in ``scopes`` (roles not named: everywhere). Audited by the store.

        Raises:
            Forbidden: not an admin. PolicyError: the password does not meet the policy.
        """
        require(actor, "add users", "admin")
        pw_hash = new_password_hash(password, name.strip()) if password else None
        self.users_repo.add(name, roles, actor, pw_hash, scopes)

    def set_password(self, name: str, password: str, actor: Actor, current: str | None = None) -> int:
        """Set a user's password and revoke all their API tokens (their sessions end with the old password).

        Changing one's own password needs the current one (when the account has one). An admin may reset another
        user's password: the account then holds no role until its user sets their own
        (:attr:`Actor.password_set_by`), so a reset never lets the admin act as that person. Audited (never the
        password).

        Returns:
            How many tokens were revoked.

        Raises:
            Forbidden: not the user nor an admin, or the current password is missing or wrong. PolicyError: the
            new password does not meet the policy. NotFound: no such user.
        """
        own = same_name(actor.name, name)  # as the user is found: ``ada `` is ada
        if not own:
            require(actor, "set other users' passwords", "admin")
        pw_hash = new_password_hash(password, name)
        now = datetime.now(UTC)
        with self.uow.write() as s:
            u = self._user(s, name)
            if s.scalar(select(OidcIdentity.id).where(OidcIdentity.user == u.name).limit(1)) is not None:
                raise Forbidden(
                    f"{u.name} signs in through single sign-on: the password is the provider's (a local password "
                    "would outlive a sign-in the provider withdrew)"
                )
            if own and u.password_hash and not check_password(u.password_hash, current or ""):
                raise Forbidden(
                    "changing your password needs your current password"
                    if not current
                    else "the current password is wrong"
                )
            u.password_hash = pw_hash
            u.password_set_by = name if own else actor.name
            revoked = self._revoke_all(s, name, actor.name, now)
            details: dict[str, object] = {"tokens_revoked": revoked, "reset": not own}
            if own and actor.password_set_by:  # the first password of the user's own after a reset
                details["after_reset_by"] = actor.password_set_by
            self.uow.audit(s, actor.name, "user.password", name, details)
            return revoked

    @staticmethod
    def _revoke_all(s: Session, user: str, by: str, now: datetime) -> int:
        rows = list(s.scalars(select(ApiToken).where(ApiToken.user == user, ApiToken.revoked_at.is_(None))))
        for t in rows:
            t.revoked_at, t.revoked_by = now, by
        return len(rows)

    def set_grants(self, name: str, grants: Sequence[RoleGrant], actor: Actor) -> UserInfo:
        """Give a user exactly ``grants`` (roles, each with its scope) — :meth:`update_user` with both. Admin only;
        audited; takes effect at the user's next request and on their open live feeds."""
        scopes: dict[str, Scope] = {}
        for g in grants:
            if g.role in scopes and scopes[g.role] != g.scope:
                raise PolicyError(f"the {g.role} role is granted twice with different scopes; give it one scope")
            scopes[g.role] = g.scope
        return self.update_user(name, actor, roles=[g.role for g in grants], scopes=scopes)

    def update_user(
        self,
        name: str,
        actor: Actor,
        roles: list[str] | None = None,
        disabled: bool | None = None,
        scopes: Mapping[str, Scope] | None = None,
    ) -> UserInfo:
        """Change a user's roles, their scopes, or disable/enable them (admin only). The last enabled admin cannot
        lose the role or be disabled, and an admin cannot disable themself. ``scopes`` (role → scope) replaces
        every scope of the user (a role not named is held everywhere); None keeps the scopes of the roles kept.
        Audited (``user.update`` with the roles and scopes before and after); a scope change applies to the
        user's next request and to their open live feeds within seconds.

        Raises:
            Forbidden: not an admin, or disabling oneself. PolicyError: the last admin, a scope for a role not
            held, an unknown watchlist. InvalidInput: an unknown camera group, a scoped admin or auditor.
            NotFound: no such user.
        """
        require(actor, "change users", "admin")
        new_roles = check_roles(roles) if roles is not None else None
        with self.uow.write() as s:
            u = self._user(s, name)
            if disabled and u.name == actor.name:
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
            if scopes is None:  # the scopes of the roles kept, as stored
                stored = {r: v for r, v in (u.scopes or {}).items() if r in u.roles} or None
            else:
                stored = self.uow.scoping.check_scopes(s, u.roles, scopes)
            if stored != (u.scopes or None):
                details["scopes"] = {"from": scopes_json(u.scopes), "to": scopes_json(stored)}
                u.scopes = stored
            if details:
                self.uow.audit(s, actor.name, "user.update", name, details)
            return _user_info(u)

    @staticmethod
    def _user(s: Session, name: str) -> User:
        u = find_named(s, User, name)
        if u is None:
            raise NotFound(f"unknown user {name!r}")
        return u

    # -- API tokens -------------------------------------------------------------------------------------------
    def create_token(
        self,
        user: str,
        name: str,
        actor: Actor,
        expires_at: datetime | None = None,
        *,
        never_expires: bool = False,
    ) -> tuple[TokenInfo, str]:
        """A new API token acting as its creator, ``user`` (who must be ``actor``: a token is a person's own
        credential, so nobody — not even an admin — can mint one that acts as somebody else).

        Args:
            expires_at: when it expires (UTC); None: :data:`TOKEN_DEFAULT_DAYS` from now, or the role's limit if
                shorter.
            never_expires: a token that never expires (admins only; audited as such).

        Returns:
            ``(info, token)``: the token text is returned once and never stored.

        Raises:
            Forbidden: a token for another user, a never-expiring token for a non-admin, or an account that must
            set its own password first. PolicyError: no name, an expiry in the past or beyond the role's limit.
        """
        if user != actor.name:
            raise Forbidden(
                f"{actor.name} may not create a token acting as {user}: a token is its own user's credential "
                f"({user} signs in and creates it), so that nobody can act as another person"
            )
        if actor.must_set_password:
            raise Forbidden(f"{actor.name} may not create tokens: {actor.must_set_password}")
        name = free_text(name, "token name", 128)  # one line of plain text: no controls, NUL or bidi overrides
        if not name:
            raise PolicyError("a token needs a name (what uses it)")
        now = datetime.now(UTC)
        with self.uow.write() as s:
            u = self._user(s, user)
            if u.disabled:
                raise PolicyError(f"user {user!r} is disabled")
            cap = token_max_days(u.roles)
            if never_expires:
                if cap is not None:
                    raise Forbidden(
                        f"only admins may hold tokens that never expire; {user}'s tokens last at most {cap} days"
                    )
                expires_at = None
            elif expires_at is None:
                expires_at = now + timedelta(days=min(TOKEN_DEFAULT_DAYS, cap or TOKEN_DEFAULT_DAYS))
            else:
                expires_at = aware(expires_at)
                if expires_at <= now:  # type: ignore[operator]
                    raise PolicyError(f"expiry {expires_at.isoformat()} is in the past")  # type: ignore[union-attr]
                if cap is not None and expires_at > now + timedelta(days=cap, minutes=1):  # type: ignore[operator]
                    raise PolicyError(
                        f"tokens of a {'/'.join(sorted(u.roles))} user last at most {cap} days; "
                        "ask for a shorter lifetime and create a new token when it runs out"
                    )
            token = TOKEN_PREFIX + secrets.token_urlsafe(32)
            row = ApiToken(
                name=name,
                user=u.name,
                token_sha256=token_digest(token),
                prefix=token[: len(TOKEN_PREFIX) + 6],
                created_by=actor.name,
                expires_at=expires_at,
            )
            s.add(row)
            s.flush()
            self.uow.audit(
                s,
                actor.name,
                "token.create",
                user,
                {
                    "token_id": row.id,
                    "name": name,
                    "expires_at": expires_at.isoformat() if expires_at else None,
                    "never_expires": expires_at is None,
                },
            )
            return _token_info(row), token

    def token_actor(self, token: str) -> Actor | None:
        """The user a token acts as, or None for an unknown, revoked or expired token, a disabled user, a token
        that has outlived what its user's roles allow now, or one minted by somebody else than its user."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        now = datetime.now(UTC)
        with self.uow.read() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.token_sha256 == token_digest(token)))
            if row is None or row.revoked_at is not None or row.created_by != row.user:
                return None
            if row.expires_at is not None and aware(row.expires_at) <= now:  # type: ignore[operator]
                return None
            u = s.scalar(select(User).where(User.name == row.user))
            if u is None or u.disabled:
                return None
            cap = token_max_days(u.roles)  # the roles may have changed since the token was made
            if cap is not None and aware(row.created_at) + timedelta(days=cap, minutes=1) <= now:  # type: ignore[operator]
                return None
            stale = row.last_used_at is None or now - aware(row.last_used_at) > LAST_USED_EVERY  # type: ignore[operator]
            actor, token_id = user_actor(u), row.id
        if stale:
            with self.uow.write() as s:
                t = s.get(ApiToken, token_id)
                if t is not None:
                    t.last_used_at = now
        return actor

    def tokens(self, actor: Actor) -> list[TokenInfo]:
        """The actor's own tokens; every token for an admin."""
        with self.uow.read() as s:
            q = select(ApiToken).order_by(ApiToken.id)
            if not actor.has("admin"):
                q = q.where(ApiToken.user == actor.name)
            return [_token_info(t) for t in s.scalars(q)]

    def revoke_token(self, token_id: int, actor: Actor) -> TokenInfo:
        """Revoke a token (its user, or an admin). Audited."""
        with self.uow.write() as s:
            t = s.get(ApiToken, token_id)
            if t is None or (t.user != actor.name and not actor.has("admin")):
                raise NotFound(f"no token {token_id}")
            if t.revoked_at is not None:
                raise PolicyError(f"token {token_id} is already revoked")
            t.revoked_at, t.revoked_by = datetime.now(UTC), actor.name
            self.uow.audit(s, actor.name, "token.revoke", t.user, {"token_id": t.id, "name": t.name})
            return _token_info(t)


def _token_info(t: ApiToken) -> TokenInfo:
    return TokenInfo(
        t.id,
        t.name,
        t.user,
        t.prefix,
        _utc(t.created_at),
        t.created_by,
        aware(t.expires_at),
        aware(t.last_used_at),
        aware(t.revoked_at),
    )
