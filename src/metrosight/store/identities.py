"""People who sign in through an OpenID provider, keyed by the provider's subject (issuer + ``sub``).

Each identity acts as one metrosight user (a row of ``users``), so the audit log and the two-person rules (which
compare user names) work unchanged: two sessions of one subject are one person; a local account and an identity
are two people unless an admin links them (:meth:`Identities.link`, audited).

At every sign-in the user's roles are set from the token's claims (the mapping in ``auth.oidc.mappings``); a change
is audited (``user.update`` with ``via: oidc``). A subject seen for the first time gets a user of its own, named from
its ``preferred_username`` (another name when that one is taken or looks like a taken one) — unless the mapping gives
it no role, in which case nothing is created and the sign-in is refused.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from metrosight.core.names import InvalidInput, human_name, looks_alike
from metrosight.policy.rules import Actor, PolicyError, require
from metrosight.policy.scope import Scope
from metrosight.policy.sso import OidcPerson, describe_grants
from metrosight.store.errors import Conflict, NotFound
from metrosight.store.models import OidcIdentity, User
from metrosight.store.naming import find_named, lookalike_message
from metrosight.store.uow import UnitOfWork
from metrosight.store.users import scopes_json, user_actor

SYSTEM = "oidc"  # the audit actor of changes a sign-in makes by itself (a new user, a role change)
# names the audit log uses for acts of nobody in particular: a new user is never given one (nor a look-alike)
RESERVED_NAMES: Final = (SYSTEM, "anonymous", "system")
# why a sign-in was refused (SignInOutcome.code)
NO_ROLE: Final = "no_role"
DISABLED: Final = "disabled"
MAPPING: Final = "mapping"
NO_ROLE_TEXT: Final = "no group or claim of yours is mapped to a role"


@dataclass(frozen=True, slots=True)
class SignInOutcome:
    """What a sign-in through the provider came to.

    Attributes:
        actor: the user now signed in, or None when refused.
        refused: why not (one line, English: the audit log's reason), when ``actor`` is None.
        code: the same as :data:`NO_ROLE`, :data:`DISABLED` or :data:`MAPPING` (with ``error``).
        created: a new user was made for this subject.
    """

    actor: Actor | None
    refused: str | None = None
    code: str | None = None  # why, for the page: NO_ROLE, DISABLED or MAPPING
    error: str | None = None  # MAPPING: the mapping's problem
    created: bool = False


@dataclass(frozen=True, slots=True)
class IdentityInfo:
    issuer: str
    subject: str | None
    email: str | None
    user: str
    provisioned: bool
    created_at: datetime
    created_by: str
    last_login_at: datetime | None


def _info(row: OidcIdentity) -> IdentityInfo:
    return IdentityInfo(
        row.issuer,
        row.subject,
        row.email,
        row.user,
        row.provisioned,
        row.created_at,
        row.created_by,
        row.last_login_at,
    )


def _address(email: str | None) -> str | None:
    """An e-mail address as :func:`~metrosight.policy.sso.verified_email` keeps it: NFC, trimmed, lower case."""
    return unicodedata.normalize("NFC", email).strip().lower() if email else None


def _scopes(person: OidcPerson) -> dict[str, Scope]:
    """The mapping's scope of each role (a role held everywhere: the global scope)."""
    return {g.role: Scope(g.camera_groups, g.watchlists) for g in person.grants}


def _free_name(s: Session, person: OidcPerson) -> str:
    """A user name for a new subject: its name hint when free, else ``hint (sso)``, ``hint (sso 2)``…, else one
    made from a hash of issuer and subject. Never an existing user's name nor a look-alike of one."""
    digest = hashlib.sha256(f"{person.issuer}\n{person.subject}".encode()).hexdigest()[:10]
    candidates: list[str] = []
    try:
        base = human_name((person.name_hint or "")[:100], "user name")
        candidates = [base, f"{base} (sso)", *(f"{base} (sso {n})" for n in range(2, 10))]
    except InvalidInput:
        pass
    for name in [*candidates, f"sso-{digest}"]:
        reserved = any(looks_alike(name, r) for r in RESERVED_NAMES)
        if not reserved and find_named(s, User, name) is None and lookalike_message(s, User, name, "user") is None:
            return name
    raise Conflict(f"no free user name for the subject of {person.issuer}; link it to a user by hand")


class Identities:
    """OpenID identities of one store (``store.identities``)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def sign_in(self, person: OidcPerson, ip: str) -> SignInOutcome:
        """Sign ``person`` in: find (or make) their user, set its roles from their claims, audit it — in one
        transaction. A pending link by e-mail is completed when the token's address is verified
        (:attr:`OidcPerson.email` is only set then).

        Returns:
            The outcome: the actor, or the reason for a refusal (disabled user, no role; audited as
            ``auth.oidc_refused``).
        """
        now = datetime.now(UTC)
        with self.uow.write() as s:
            row = s.scalar(
                select(OidcIdentity).where(OidcIdentity.issuer == person.issuer, OidcIdentity.subject == person.subject)
            )
            if row is None and person.email is not None:
                row = self._complete_email_link(s, person)
            try:
                scopes = self.uow.scoping.check_scopes(s, person.roles, _scopes(person))
            except (InvalidInput, PolicyError) as exc:  # e.g. a mapped watchlist that does not exist (yet)
                user = row.user if row else None
                return self._refuse(s, person, ip, user, f"the role mapping cannot apply: {exc}", MAPPING, str(exc))
            created = False
            if row is None:
                if not person.grants:
                    return self._refuse(s, person, ip, None, NO_ROLE_TEXT, NO_ROLE)
                row, created = self._provision(s, person, scopes, now), True
            user = find_named(s, User, row.user)
            if user is None or user.disabled:
                return self._refuse(s, person, ip, row.user, "the account is disabled", DISABLED)
            self._apply_grants(s, user, person, scopes)
            row.last_login_at = now
            details: dict[str, object] = {
                "ip": ip,
                "via": "oidc",
                "issuer": person.issuer,
                "subject": person.subject,
                "rules": list(person.rules),
            }
            if not person.grants:
                return self._refuse(s, person, ip, user.name, NO_ROLE_TEXT, NO_ROLE)
            self.uow.audit(s, user.name, "auth.login", user.name, details)
            return SignInOutcome(user_actor(user), created=created)

    def _refuse(
        self, s: Session, person: OidcPerson, ip: str, user: str | None, why: str, code: str, error: str | None = None
    ) -> SignInOutcome:
        details = {"ip": ip, "issuer": person.issuer, "subject": person.subject, "reason": why}
        self.uow.audit(s, SYSTEM, "auth.oidc_refused", user, details)
        return SignInOutcome(None, refused=why, code=code, error=error)

    def _complete_email_link(self, s: Session, person: OidcPerson) -> OidcIdentity | None:
        row = s.scalar(
            select(OidcIdentity).where(
                OidcIdentity.issuer == person.issuer,
                OidcIdentity.subject.is_(None),
                OidcIdentity.email == person.email,
            )
        )
        if row is not None:
            row.subject, row.email = person.subject, None
            details = {"issuer": person.issuer, "subject": person.subject, "email": person.email, "completed": True}
            self.uow.audit(s, SYSTEM, "oidc.link", row.user, details)
        return row

    def _provision(self, s: Session, person: OidcPerson, scopes: dict[str, Any] | None, now: datetime) -> OidcIdentity:
        name = _free_name(s, person)
        s.add(User(name=name, roles=person.roles, created_by=SYSTEM, password_hash=None, scopes=scopes))
        row = OidcIdentity(
            issuer=person.issuer, subject=person.subject, user=name, provisioned=True, created_by=SYSTEM, created_at=now
        )
        s.add(row)
        details: dict[str, object] = {
            "roles": person.roles,
            "via": "oidc",
            "issuer": person.issuer,
            "subject": person.subject,
        }
        if scopes:
            details["scopes"] = scopes_json(scopes)
        self.uow.audit(s, SYSTEM, "user.add", name, details)
        s.flush()
        return row

    def _apply_grants(self, s: Session, user: User, person: OidcPerson, scopes: dict[str, Any] | None) -> None:
        """Set the user's roles and their scopes (checked: ``scopes``) from the claims; audit a change."""
        details: dict[str, object] = {}
        if person.roles != sorted(user.roles):
            details["roles"] = {"from": sorted(user.roles), "to": person.roles}
            user.roles = person.roles
        if scopes != (user.scopes or None):
            details["scopes"] = {"from": scopes_json(user.scopes), "to": scopes_json(scopes)}
            user.scopes = scopes
        if details:
            details.update({"grants": describe_grants(person.grants), "via": "oidc", "rules": list(person.rules)})
            self.uow.audit(s, SYSTEM, "user.update", user.name, details)

    # -- links made by an admin ---------------------------------------------------------------------------------
    def link(
        self, user: str, issuer: str, actor: Actor, *, subject: str | None = None, email: str | None = None
    ) -> IdentityInfo:
        """Link the provider's person ``subject`` (or whoever first signs in with the *verified* address ``email``)
        to the existing user ``user``: they are then one person. Admin only; audited (``oidc.link``).

        A subject that had a user of its own (made by its first sign-in) moves to ``user``; that user is disabled
        (its tokens stop) so the person does not keep two names in the two-person rules.

        Raises:
            Forbidden: not an admin. NotFound: no such user. PolicyError: neither or both of subject and email.
            Conflict: the subject or address is linked to ``user`` already, or the address to another user.
        """
        require(actor, "link single sign-on identities", "admin")
        if (subject is None) == (email is None):
            raise PolicyError("link a subject or an e-mail address (one of them)")
        issuer, key = issuer.strip(), (subject or "").strip() or None
        address = _address(email)
        if not issuer or (subject is not None and not key) or (address is not None and "@" not in address):
            raise PolicyError("an issuer and a subject (or an e-mail address) are needed")
        with self.uow.write() as s:
            target = find_named(s, User, user)
            if target is None:
                raise NotFound(f"unknown user {user!r}")
            where = OidcIdentity.subject == key if key else OidcIdentity.email == address
            row = s.scalar(select(OidcIdentity).where(OidcIdentity.issuer == issuer, where))
            details: dict[str, object] = (
                {"issuer": issuer, "subject": key} if key else {"issuer": issuer, "email": address}
            )
            if row is not None and row.user == target.name:
                raise Conflict(f"{details} is linked to {target.name} already")
            if row is not None and address:
                raise Conflict(f"the address {address} waits for a sign-in linked to {row.user}; unlink it first")
            if row is not None:
                details["from"] = row.user
                self._retire(s, row, actor)
                row.user, row.provisioned = target.name, False
            else:
                row = OidcIdentity(
                    issuer=issuer,
                    subject=key,
                    email=address,
                    user=target.name,
                    provisioned=False,
                    created_by=actor.name,
                )
                s.add(row)
            self.uow.audit(s, actor.name, "oidc.link", target.name, details)
            s.flush()
            return _info(row)

    def _retire(self, s: Session, row: OidcIdentity, actor: Actor) -> None:
        """Disable the user a subject had of its own before it was linked elsewhere (audited)."""
        if not row.provisioned:
            return
        old = find_named(s, User, row.user)
        if old is not None and not old.disabled:
            old.disabled = True
            details = {"disabled": True, "reason": "its single sign-on identity was linked to another user"}
            self.uow.audit(s, actor.name, "user.update", old.name, details)

    def unlink(
        self, user: str, issuer: str, actor: Actor, *, subject: str | None = None, email: str | None = None
    ) -> None:
        """Remove a link made by :meth:`link` (admin only; audited ``oidc.unlink``). The subject's next sign-in
        then gets a user of its own.

        Raises:
            Forbidden: not an admin. NotFound: no such link.
        """
        require(actor, "unlink single sign-on identities", "admin")
        key, address = (subject or "").strip() or None, _address(email)
        with self.uow.write() as s:
            where = OidcIdentity.subject == key if key else OidcIdentity.email == address
            row = s.scalar(select(OidcIdentity).where(OidcIdentity.issuer == issuer.strip(), where))
            target = find_named(s, User, user)
            if row is None or target is None or row.user != target.name:
                raise NotFound(f"{user!r} has no such single sign-on link")
            details = {"issuer": row.issuer, "subject": row.subject, "email": row.email}
            s.delete(row)
            self.uow.audit(s, actor.name, "oidc.unlink", row.user, details)

    def of_user(self, user: str, actor: Actor) -> list[IdentityInfo]:
        """The identities a user acts through (an admin sees anyone's; a user their own)."""
        if actor.name != user:
            require(actor, "see other users' single sign-on identities", "admin")
        with self.uow.read() as s:
            target = find_named(s, User, user)
            if target is None:
                raise NotFound(f"unknown user {user!r}")
            rows = s.scalars(select(OidcIdentity).where(OidcIdentity.user == target.name).order_by(OidcIdentity.id))
            return [_info(r) for r in rows]

    def is_identity_user(self, user: str) -> bool:
        """Whether ``user`` signs in through a provider (it has an identity with a subject)."""
        with self.uow.read() as s:
            return (
                s.scalar(
                    select(OidcIdentity.id).where(OidcIdentity.user == user, OidcIdentity.subject.is_not(None)).limit(1)
                )
                is not None
            )
