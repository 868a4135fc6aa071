"""Claims → roles and scopes (auth.oidc.mappings), and which claims are trusted for what."""

from __future__ import annotations

from typing import Any

import pytest

from metrosight.config.auth import OidcConfig
from metrosight.policy.sso import ClaimGrant, grants_of, name_hint, person_of, verified_email


def cfg(*mappings: dict[str, Any], **extra: Any) -> OidcConfig:
    return OidcConfig.model_validate(
        {
            "issuer": "https://sso.example.org",
            "client_id": "ms",
            "redirect_url": "https://ms.example.org/auth/oidc/callback",
            "mappings": list(mappings),
            **extra,
        }
    )


RED = {"group": "red-ops", "roles": ["operator"], "camera_groups": ["red"]}
BLUE = {"group": "blue-ops", "roles": ["operator"], "camera_groups": ["blue"], "watchlists": ["missing"]}
AUDIT = {"claim": "department", "value": "internal-audit", "roles": ["auditor"]}


def test_a_group_gives_its_roles_with_their_scope() -> None:
    grants, rules = grants_of({"groups": ["red-ops", "staff"]}, cfg(RED, BLUE))
    assert grants == (ClaimGrant("operator", frozenset({"red"})),) and rules == ("group red-ops",)


def test_nothing_mapped_gives_no_role() -> None:
    assert grants_of({"groups": ["cleaners"], "department": "ops"}, cfg(RED, AUDIT)) == ((), ())
    assert grants_of({}, cfg(RED)) == ((), ())
    assert grants_of({"groups": ["RED-OPS"]}, cfg(RED)) == ((), ())  # values are compared exactly
    assert grants_of({"groups": "red-ops"}, cfg(RED))[0]  # a single group given as a string
    assert grants_of({"groups": [{"name": "red-ops"}]}, cfg(RED)) == ((), ())  # not a string: ignored


def test_a_claim_value_gives_roles() -> None:
    grants, _ = grants_of({"department": "internal-audit"}, cfg(AUDIT))
    assert [g.role for g in grants] == ["auditor"] and grants[0].is_global
    assert grants_of({"department": ["x", "internal-audit"]}, cfg(AUDIT))[0]
    flag = {"claim": "metro_staff", "value": True, "roles": ["viewer"]}
    assert grants_of({"metro_staff": True}, cfg(flag))[0] and not grants_of({"metro_staff": "true"}, cfg(flag))[0]


def test_several_rules_for_one_role_merge_into_one_scope() -> None:
    grants, rules = grants_of({"groups": ["red-ops", "blue-ops"]}, cfg(RED, BLUE))
    assert grants == (ClaimGrant("operator", frozenset({"red", "blue"})),)  # an unlimited dimension stays unlimited
    assert rules == ("group red-ops", "group blue-ops")
    everywhere = {"group": "all-ops", "roles": ["operator"]}
    assert grants_of({"groups": ["red-ops", "all-ops"]}, cfg(RED, everywhere))[0][0].is_global


@pytest.mark.parametrize(
    ("claims", "email"),
    [
        ({"email": "Olga@Metro.example", "email_verified": True}, "olga@metro.example"),
        ({"email": "olga@metro.example", "email_verified": "true"}, "olga@metro.example"),
        ({"email": "olga@metro.example", "email_verified": False}, None),
        ({"email": "olga@metro.example", "email_verified": "yes"}, None),
        ({"email": "olga@metro.example"}, None),
        ({"email": "not-an-address", "email_verified": True}, None),
    ],
)
def test_only_a_verified_email_is_trusted(claims: dict[str, Any], email: str | None) -> None:
    assert verified_email(claims) == email


def test_the_name_and_the_person() -> None:
    c = cfg(RED)
    assert name_hint({"preferred_username": "olga.k", "email": "o@x"}, c) == "olga.k"
    assert name_hint({"email": "o.k@metro.example"}, c) == "o.k"
    assert name_hint({"upn": "OK@corp"}, cfg(RED, username_claim="upn")) == "OK@corp"
    assert name_hint({}, c) is None
    p = person_of({"iss": "https://sso.example.org", "sub": "42", "groups": ["red-ops"]}, c)
    assert (p.issuer, p.subject, p.roles, p.email) == ("https://sso.example.org", "42", ["operator"], None)
