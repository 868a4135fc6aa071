"""The second factor of local accounts (``store.second_factor``): TOTP secrets, encrypted at rest, and recovery
codes (rules and codes: :mod:`metrosight.policy.totp`).

- **Enrolment** (:meth:`SecondFactors.begin`, then :meth:`SecondFactors.confirm`) is the user's own act: the
  secret is shown once, and the factor is used at sign-in only once a valid code from it has been typed;
  confirming hands out the recovery codes (shown once, stored as Argon2id hashes, each found by a tag keyed by the
  master key, so that a typed code costs one Argon2id check).
- **The secret** is encrypted with a data key of its own, wrapped by the installation's master key (the at-rest
  crypto of templates, :class:`~metrosight.policy.crypto.KeyRing`); a reset deletes both.
- **Replay**: :meth:`SecondFactors.verify` stores the time step of each accepted code with one conditional
  ``UPDATE … WHERE last_step < :step`` (atomic on SQLite and PostgreSQL: of two sign-ins racing with one code,
  exactly one wins), and a recovery code is spent the same way (``WHERE used_at IS NULL``).
- **Reset** by the user or an admin (audited; the user enrols again and their second-factor sessions end).

Every change is written with its audit entry in one transaction.
"""

from __future__ import annotations

import hashlib
import hmac
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from metrosight.core.names import same_name
from metrosight.policy.crypto import CryptoError
from metrosight.policy.passwords import check_password, hash_password
from metrosight.policy.rules import Actor, Forbidden, PolicyError, require
from metrosight.policy.totp import (
    matching_step,
    new_recovery_codes,
    new_secret,
    normalise_recovery,
    provisioning_uri,
)
from metrosight.store.errors import Conflict, NotFound
from metrosight.store.models import TotpFactor, TotpRecoveryCode, User
from metrosight.store.naming import find_named
from metrosight.store.uow import UnitOfWork


class Check(Enum):
    """What :meth:`SecondFactors.verify` made of a code."""

    TOTP = "totp"  # a valid, fresh code
    RECOVERY = "recovery"  # an unused recovery code (now spent)
    WRONG = "wrong"  # not a valid code now, nor an unused recovery code
    REPLAYED = "replayed"  # a valid code of a time step already used (or older than the last used one)
    NONE = "none"  # the user has no confirmed factor


@dataclass(frozen=True, slots=True)
class TotpStatus:
    """A user's second factor: ``enrolled`` (confirmed), ``pending`` (begun, not confirmed), recovery codes left."""

    enrolled: bool
    pending: bool
    recovery_left: int


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A begun enrolment: the secret (base32, to type in) and the ``otpauth://`` URI (for the QR code)."""

    user: str
    secret: str
    uri: str


class SecondFactors:
    """TOTP factors and recovery codes of one store."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    # -- reads ------------------------------------------------------------------------------------------------
    def status(self, user: str) -> TotpStatus:
        with self.uow.read() as s:
            f = s.scalar(select(TotpFactor).where(TotpFactor.user == user))
            left = s.scalar(
                select(func.count())
                .select_from(TotpRecoveryCode)
                .where(TotpRecoveryCode.user == user, TotpRecoveryCode.used_at.is_(None))
            )
        confirmed = f is not None and f.confirmed_at is not None
        return TotpStatus(confirmed, f is not None and not confirmed, int(left or 0) if confirmed else 0)

    def enrolled(self, user: str) -> bool:
        """Whether ``user`` signs in with a (confirmed) TOTP factor."""
        with self.uow.read() as s:
            return (
                s.scalar(select(TotpFactor.id).where(TotpFactor.user == user, TotpFactor.confirmed_at.is_not(None)))
                is not None
            )

    def mark(self, user: str) -> str | None:
        """Which confirmed factor ``user`` has (its row and when it was confirmed), None without one: a session
        signed in with a factor keeps its mark and ends once the mark differs (reset, and maybe enrolled again)."""
        with self.uow.read() as s:
            row = s.execute(
                select(TotpFactor.id, TotpFactor.confirmed_at).where(
                    TotpFactor.user == user, TotpFactor.confirmed_at.is_not(None)
                )
            ).first()
        return None if row is None or row[1] is None else f"{row[0]}:{row[1].isoformat()}"

    # -- enrolment --------------------------------------------------------------------------------------------
    def begin(self, actor: Actor, issuer: str) -> Enrolment:
        """Start (or restart) ``actor``'s own enrolment: a new secret, stored encrypted and unconfirmed. Audited
        (never the secret).

        Raises:
            Forbidden: the account's password was set by an admin (its user sets their own first).
            Conflict: a confirmed factor exists (reset it first).
        """
        if actor.must_set_password:
            raise Forbidden(f"{actor.name} may not enrol a second factor yet: {actor.must_set_password}")
        secret = new_secret()
        keyring = self.uow.keyring
        wrapped = keyring.new_wrapped_key()
        sealed = keyring.encrypt(wrapped, secret.encode("ascii"))
        with self.uow.write() as s:
            self._user(s, actor.name)
            f = s.scalar(select(TotpFactor).where(TotpFactor.user == actor.name))
            if f is not None and f.confirmed_at is not None:
                raise Conflict(
                    f"{actor.name} already has a second factor; reset it first (it asks for a code from it, or an "
                    "admin resets it) to enrol a new device"
                )
            if f is None:
                s.add(TotpFactor(user=actor.name, wrapped_key=wrapped, secret=sealed))
            else:
                f.wrapped_key, f.secret, f.last_step, f.created_at = wrapped, sealed, None, datetime.now(UTC)
            self.uow.audit(s, actor.name, "totp.enrol_begin", actor.name, {})
        return Enrolment(actor.name, secret, provisioning_uri(secret, actor.name, issuer))

    def pending(self, actor: Actor, issuer: str) -> Enrolment | None:
        """``actor``'s own begun, unconfirmed enrolment (to show its QR code again after a mistyped code), else
        None. Not audited: nothing new is revealed to the person who began it."""
        with self.uow.read() as s:
            f = s.scalar(select(TotpFactor).where(TotpFactor.user == actor.name, TotpFactor.confirmed_at.is_(None)))
            if f is None:
                return None
            secret = self._secret(f)
        return Enrolment(actor.name, secret, provisioning_uri(secret, actor.name, issuer))

    def confirm(self, actor: Actor, code: str, recovery_count: int) -> list[str]:
        """Confirm ``actor``'s begun enrolment with a valid code from the new device; returns the recovery codes
        (shown once; any earlier ones are void). The code's time step counts as used. Audited, a wrong code too
        (``totp.enrol_failed``).

        Raises:
            NotFound: no enrolment was begun. Conflict: already confirmed. PolicyError: the code is wrong.
        """
        with self.uow.read() as s:
            f = s.scalar(select(TotpFactor).where(TotpFactor.user == actor.name))
            if f is None:
                raise NotFound(f"{actor.name} has not begun enrolling a second factor")
            if f.confirmed_at is not None:
                raise Conflict(f"{actor.name}'s second factor is already confirmed")
            step, factor_id, sealed = matching_step(self._secret(f), code), f.id, f.secret
        if step is None:  # checked before the recovery codes are hashed: a wrong code costs no Argon2id
            self.uow.record(actor.name, "totp.enrol_failed", actor.name, {"reason": "wrong code"})
            raise PolicyError("wrong code: type the 6-digit code your authenticator app shows now")
        codes = new_recovery_codes(recovery_count)
        raw = [normalise_recovery(c) or c for c in codes]
        with ThreadPoolExecutor(max_workers=4) as pool:  # Argon2id runs in C without the GIL: one core each
            hashes = list(zip([self._lookup(r) for r in raw], pool.map(hash_password, raw), strict=True))
        with self.uow.write() as s:
            f = s.get(TotpFactor, factor_id)
            if f is None or f.secret != sealed or f.confirmed_at is not None:
                raise Conflict(f"{actor.name}'s enrolment changed meanwhile (begun again, reset or confirmed)")
            f.confirmed_at, f.last_step = datetime.now(UTC), step
            s.execute(delete(TotpRecoveryCode).where(TotpRecoveryCode.user == actor.name))
            s.add_all(TotpRecoveryCode(user=actor.name, code_hash=h, lookup=tag) for tag, h in hashes)
            self.uow.audit(s, actor.name, "totp.enrol", actor.name, {"recovery_codes": len(codes)})
        return codes

    # -- sign-in ----------------------------------------------------------------------------------------------
    def verify(self, user: str, code: str) -> Check:
        """Check a TOTP code or a recovery code of ``user`` and spend it (see the module docstring for replay).
        A spent recovery code is audited (``totp.recovery_used`` with the codes left); the caller audits the
        sign-in and failures."""
        with self.uow.read() as s:
            f = s.scalar(select(TotpFactor).where(TotpFactor.user == user, TotpFactor.confirmed_at.is_not(None)))
            if f is None:
                return Check.NONE
            secret, factor_id = self._secret(f), f.id
            unused = list(
                s.execute(
                    select(TotpRecoveryCode.id, TotpRecoveryCode.code_hash, TotpRecoveryCode.lookup).where(
                        TotpRecoveryCode.user == user, TotpRecoveryCode.used_at.is_(None)
                    )
                )
            )
        step = matching_step(secret, code)
        if step is not None:
            with self.uow.write() as s:
                won = s.execute(
                    update(TotpFactor)
                    .where(
                        TotpFactor.id == factor_id,
                        or_(TotpFactor.last_step.is_(None), TotpFactor.last_step < step),
                    )
                    .values(last_step=step)
                ).rowcount  # type: ignore[attr-defined]
            return Check.TOTP if won == 1 else Check.REPLAYED
        typed = normalise_recovery(code)
        if typed is None:
            return Check.WRONG
        tag = self._lookup(typed)  # one Argon2id check (codes made before the tag: each is checked)
        hit = next((rid for rid, h, t in unused if t in (tag, None) and check_password(h, typed)), None)
        if hit is None:
            return Check.WRONG
        with self.uow.write() as s:
            now = datetime.now(UTC)
            won = s.execute(
                update(TotpRecoveryCode)
                .where(TotpRecoveryCode.id == hit, TotpRecoveryCode.used_at.is_(None))
                .values(used_at=now)
            ).rowcount  # type: ignore[attr-defined]
            if won != 1:
                return Check.REPLAYED
            self.uow.audit(s, user, "totp.recovery_used", user, {"recovery_left": len(unused) - 1})
        return Check.RECOVERY

    # -- reset ------------------------------------------------------------------------------------------------
    def reset(self, user: str, actor: Actor) -> bool:
        """Remove ``user``'s factor and recovery codes (the user's own act, or an admin's). The secret's data key
        goes with it. The user enrols again; their sessions signed in with the factor end. Audited. Returns
        whether there was a factor (begun or confirmed).

        Raises:
            Forbidden: neither the user nor an admin. NotFound: no such user.
        """
        own = same_name(actor.name, user)
        if not own:
            require(actor, "reset other users' second factors", "admin")
        with self.uow.write() as s:
            name = self._user(s, user).name
            f = s.scalar(select(TotpFactor).where(TotpFactor.user == name))
            had = f is not None
            confirmed = had and f.confirmed_at is not None  # type: ignore[union-attr]
            s.execute(delete(TotpFactor).where(TotpFactor.user == name))
            s.execute(delete(TotpRecoveryCode).where(TotpRecoveryCode.user == name))
            self.uow.audit(s, actor.name, "totp.reset", name, {"had_factor": had, "confirmed": confirmed, "own": own})
        return had

    # -- helpers ----------------------------------------------------------------------------------------------
    @staticmethod
    def _user(s: Session, name: str) -> User:
        u = find_named(s, User, name)
        if u is None:
            raise NotFound(f"unknown user {name!r}")
        return u

    def _lookup(self, code: str) -> str:
        """The keyed tag of a (normalised) recovery code: HMAC-SHA256 under a key derived from the master key."""
        key = self.uow.keyring.derive("totp-recovery-lookup")
        return hmac.new(key, code.encode("ascii", "replace"), hashlib.sha256).hexdigest()[:32]

    def _secret(self, f: TotpFactor) -> str:
        try:
            return self.uow.keyring.decrypt(f.wrapped_key, f.secret).decode("ascii")
        except CryptoError:
            raise CryptoError(
                f"{f.user}'s second factor cannot be decrypted (wrong master key or damaged record); an admin "
                "resets it and the user enrols again"
            ) from None
