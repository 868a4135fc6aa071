"""Time-based one-time passwords (TOTP, RFC 6238, with pyotp) and recovery codes: the second factor of local
accounts. Pure functions; the store keeps the secret (encrypted) and the last accepted time step.

A code is six digits for a 30-second *time step*; the step before and the one after the current one are accepted
too (a phone's clock a little off, a code typed as it changes). The caller stores the step a code matched and
accepts only a later step next time, so a code is never accepted twice (replay).

Recovery codes are ten random groups ``xxxxx-xxxxx`` (50 bits each) shown once at enrolment, stored as Argon2id
hashes (:mod:`metrosight.policy.passwords`), each usable once instead of a code.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from typing import Final

import pyotp

from metrosight.policy.rules import Actor

STEP_SECONDS: Final = 30
DIGITS: Final = 6
WINDOW: Final = 1  # time steps accepted either side of the current one
RECOVERY_ALPHABET: Final = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i look-alikes
_CODE = re.compile(r"^\d{6}$")
_RECOVERY = re.compile(r"^[a-z0-9]{10}$")


def new_secret() -> str:
    """A fresh base32 secret of 160 bits (RFC 4226's recommended length)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, user: str, issuer: str) -> str:
    """The ``otpauth://totp/…`` URI an authenticator app reads (from a QR code or typed in)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(name=user, issuer_name=issuer)


def normalise_code(code: str) -> str:
    """A typed code without spaces (``123 456`` → ``123456``)."""
    return "".join(str(code).split())


def is_code(code: str) -> bool:
    """Whether ``code`` has the shape of a TOTP code (six digits, spaces ignored)."""
    return bool(_CODE.match(normalise_code(code)))


def current_step(now: float | None = None) -> int:
    """The time step of ``now`` (Unix seconds; default: the clock)."""
    return int((time.time() if now is None else now) // STEP_SECONDS)


def code_at(secret: str, step: int) -> str:
    """The code of ``secret`` for time step ``step``."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).generate_otp(step)


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step (within :data:`WINDOW` of now) whose code is ``code``, or None. The latest such step wins;
    every candidate is compared in constant time. Replay is the caller's to refuse (store the step; accept only a
    later one)."""
    code = normalise_code(code)
    if not _CODE.match(code):
        return None
    step = current_step(now)
    found = None
    for s in range(step - WINDOW, step + WINDOW + 1):
        if hmac.compare_digest(code_at(secret, s), code):
            found = s
    return found


def new_recovery_codes(count: int) -> list[str]:
    """``count`` random recovery codes ``xxxxx-xxxxx`` (shown once; store their hashes)."""
    out = []
    for _ in range(count):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(10))
        out.append(f"{raw[:5]}-{raw[5:]}")
    return out


def normalise_recovery(code: str) -> str | None:
    """A typed recovery code in its stored form (lower case, no dash or spaces), or None when it cannot be one."""
    raw = "".join(ch for ch in str(code).lower() if ch not in "- \t")
    return raw if _RECOVERY.match(raw) else None


def requiring_role(roles: frozenset[str] | set[str], required: list[str] | tuple[str, ...]) -> str | None:
    """The first of ``roles`` (sorted) for which a second factor is ``required``, or None when none is."""
    return next((r for r in sorted(roles) if r in required), None)


def enrol_restriction(actor: Actor, amr: str, required: list[str] | tuple[str, ...]) -> str | None:
    """Why a session that signed in by ``amr`` may do nothing but enrol a second factor (one line saying what to
    do), or None when it may act. Only a password-only session (``pwd``) of an account holding a role in
    ``required`` is restricted; an account that must first set its own password (an admin reset it) is left to that
    rule (:attr:`Actor.must_set_password`)."""
    if amr != "pwd" or actor.must_set_password:
        return None
    role = requiring_role(actor.roles, required)
    if role is None:
        return None
    return (
        f"{actor.name} holds the {role} role, which needs a second factor: enrol an authenticator app on the "
        f"Account page (or `metrosight --as {actor.name} user totp enrol`), or sign in again with your code"
    )
