"""The password policy (ASVS 2.1): length, common and breached passwords, and the context (user, service)."""

from __future__ import annotations

import pytest

from metrosight.policy.passwords import check_new_password, new_password_hash, password_problem
from metrosight.policy.rules import PolicyError


@pytest.mark.parametrize(
    ("password", "user", "reason"),
    [
        ("short", "ann", "12 characters"),
        ("password1234", "ann", "too easy to guess"),
        ("iloveyou12345", "ann", "too easy to guess"),
        ("zxcvbnmasdfgh", "ann", "too easy to guess"),
        ("aaaaaaaaaaaaaaaa", "ann", "too easy to guess"),
        ("Kowalski-Kowalski-1", "kowalski", "user name"),
        ("my metro sight pass", "ann", "service's name"),
        ("x" * 1025, "ann", "at most 1024"),
    ],
)
def test_refused(password: str, user: str, reason: str):
    assert reason in (password_problem(password, user) or "")
    with pytest.raises(PolicyError, match=reason):
        new_password_hash(password, user)


@pytest.mark.parametrize(
    "password",
    ["velvet compass harbour", "Tp-0814ecf79a8c5d2bfa62", "ünïcödé pässwörd ñ 42", "k" * 10 + "Q9!z" + "y" * 100],
)
def test_accepted(password: str):
    check_new_password(password, "ann")
