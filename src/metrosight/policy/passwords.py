"""Passwords: the policy a new password must meet, and hashing with Argon2id (argon2-cffi).

The policy follows OWASP ASVS 4 §2.1: at least :data:`MIN_LENGTH` characters, any characters (no composition
rules), no truncation; refused when it is a common or breached password, or guessable from its context (the user
name, the service's name). "Common" is judged by zxcvbn (Dropbox's estimator, PyPI ``zxcvbn``): its dictionaries
hold the 30,000 most frequent passwords of public breach corpora, English words, names and surnames, and it scores
l33t substitutions, keyboard walks, repeats, sequences and dates; a password it estimates at fewer than 10^8
guesses (score below 3) is refused.

Passwords are compared in Unicode NFC (RFC 8265's OpaqueString profile): ``é`` typed as one character or as ``e``
plus a combining accent (as some keyboards, input methods and macOS pastes give it) is the same password.
Hashes made before this rule still verify with the password as it was then typed.
"""

from __future__ import annotations

import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from metrosight.policy.rules import PolicyError

_hasher = PasswordHasher()

MIN_LENGTH = 12
MAX_LENGTH = 1024
MIN_SCORE = 3  # zxcvbn: 3 = "safely unguessable", ≥ 10^8 guesses
ZXCVBN_MAX = 72  # zxcvbn refuses longer input; the first 72 characters are judged (a longer password only gains)
# Words that belong to this service: a password built on them is guessable by anyone who knows where it is used.
CONTEXT_WORDS = ("metrosight", "metro", "sight", "camera", "watchlist", "admin", "approver", "operator", "auditor")


def _nfc(password: str) -> str:
    return unicodedata.normalize("NFC", password)


def password_problem(password: str, user: str) -> str | None:
    """Why ``password`` may not be ``user``'s new password (one line saying what to do), or None if it may."""
    password = _nfc(password)
    if len(password) < MIN_LENGTH:
        return (
            f"a password needs at least {MIN_LENGTH} characters (a passphrase of three or four unrelated words is "
            "easiest)"
        )
    if len(password) > MAX_LENGTH:
        return f"a password may have at most {MAX_LENGTH} characters"
    low = password.casefold()
    name = user.strip().casefold()
    if len(name) >= 3 and name in low:
        return "a password may not contain the user name"
    if "metrosight" in low.replace(" ", "").replace("-", "").replace("_", ""):
        return "a password may not contain the service's name"
    import zxcvbn  # zxcvbn: large word lists, loaded on first use

    result = zxcvbn.zxcvbn(password[:ZXCVBN_MAX], user_inputs=[user, *CONTEXT_WORDS])
    if result["score"] < MIN_SCORE:
        warning = (result["feedback"].get("warning") or "it follows a common pattern").rstrip(".")
        return (
            f"this password is too easy to guess ({warning[0].lower() + warning[1:]}); use a longer passphrase of "
            "unrelated words"
        )
    return None


def check_new_password(password: str, user: str) -> None:
    """Raises PolicyError (with what to do) unless ``password`` meets the policy for ``user``."""
    problem = password_problem(password, user)
    if problem:
        raise PolicyError(problem)


def new_password_hash(password: str, user: str) -> str:
    """The Argon2id hash of ``user``'s new ``password``, after checking it against the policy. Every place a
    password is set goes through here (CLI, API, UI).

    Raises:
        PolicyError: the password does not meet the policy.
    """
    check_new_password(password, user)
    return _hasher.hash(_nfc(password))


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password`` (salted; safe to store). No policy check: new passwords go through
    :func:`new_password_hash`."""
    if not password:
        raise PolicyError("a password may not be empty")
    return _hasher.hash(_nfc(password))


def check_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash`` (False for a user without a password)."""
    if not stored_hash:
        return False
    for typed in dict.fromkeys((_nfc(password), password)):  # NFC; then as typed, for hashes made before NFC
        try:
            if _hasher.verify(stored_hash, typed):
                return True
        except InvalidHashError:
            return False
        except VerificationError:
            continue
    return False
