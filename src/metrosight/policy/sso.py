"""Single sign-on: what a validated ID token says about a person, as metrosight uses it. Pure functions.

- :func:`grants_of`: the configured mapping (``auth.oidc.mappings``) applied to the token's claims: the roles, each
  with its scope (camera groups and watchlists; empty: not limited). A group or claim value that no rule names gives
  nothing: a person whose token matches no rule holds no role.
- :func:`verified_email`: the ``email`` claim only when ``email_verified`` is true; an unverified address is never
  used to link a person to an existing account (anyone can type any address at many providers).
- :func:`name_hint`: what a new user's metrosight name is made from.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from metrosight.config.auth import OidcConfig, OidcRoleMapping

MAX_GROUPS = 1000  # groups read from one token (a token listing more is cut here)


@dataclass(frozen=True, slots=True)
class ClaimGrant:
    """A role from the mapping, with its scope (an empty set: that dimension is not limited)."""

    role: str
    camera_groups: frozenset[str] = frozenset()
    watchlists: frozenset[str] = frozenset()

    @property
    def is_global(self) -> bool:
        return not self.camera_groups and not self.watchlists

    def to_json(self) -> dict[str, object]:
        return {"role": self.role, "camera_groups": sorted(self.camera_groups), "watchlists": sorted(self.watchlists)}


@dataclass(frozen=True, slots=True)
class OidcPerson:
    """A person signing in, from a validated ID token.

    Attributes:
        issuer, subject: who they are at the provider (the identity metrosight keys people by).
        name_hint: what a new account's name is made from (``username_claim``, else the e-mail's local part).
        email: the address, only when the provider says it is verified (else None).
        grants: roles and scopes from the mapping (empty: no role).
        rules: the mapping rules that matched, for the audit log.
    """

    issuer: str
    subject: str
    name_hint: str | None
    email: str | None
    grants: tuple[ClaimGrant, ...]
    rules: tuple[str, ...]

    @property
    def roles(self) -> list[str]:
        return sorted({g.role for g in self.grants})


def _strings(value: Any) -> list[str]:
    """A claim as a list of strings (a single string, a list, or a comma-free value; anything else: empty)."""
    if isinstance(value, str):
        return [unicodedata.normalize("NFC", value)]
    if isinstance(value, list | tuple):
        return [unicodedata.normalize("NFC", v) for v in value[:MAX_GROUPS] if isinstance(v, str)]
    return []


def _matches(rule: OidcRoleMapping, claims: Mapping[str, Any], groups: set[str]) -> bool:
    if rule.group is not None:
        return rule.group in groups
    value = claims.get(str(rule.claim))
    if isinstance(rule.value, bool):
        return value is rule.value
    if isinstance(value, bool):
        return False
    return str(rule.value) in _strings(value)


def grants_of(claims: Mapping[str, Any], cfg: OidcConfig) -> tuple[tuple[ClaimGrant, ...], tuple[str, ...]]:
    """The roles (with scope) that ``cfg.mappings`` give to a token with ``claims``, and the rules that matched.

    Several rules giving one role merge into one scope per role (as a local user holds each role once): the union
    of their camera groups and of their watchlists, where a rule that does not limit a dimension lifts the limit.
    """
    groups = set(_strings(claims.get(cfg.groups_claim)))
    merged: dict[str, tuple[set[str] | None, set[str] | None]] = {}
    rules: list[str] = []
    for rule in cfg.mappings:
        if not _matches(rule, claims, groups):
            continue
        rules.append(rule.describe())
        for role in rule.roles:
            cams, lists = merged.get(role, (set(), set()))
            cams = None if cams is None or not rule.camera_groups else cams | set(rule.camera_groups)
            lists = None if lists is None or not rule.watchlists else lists | set(rule.watchlists)
            merged[role] = (cams, lists)
    grants = tuple(
        ClaimGrant(role, frozenset(cams or ()), frozenset(lists or ()))
        for role, (cams, lists) in sorted(merged.items())
    )
    return grants, tuple(rules)


def verified_email(claims: Mapping[str, Any]) -> str | None:
    """The ``email`` claim, lower-cased, when ``email_verified`` is true (a JSON true, or the string ``"true"`` some
    providers send); else None."""
    email, verified = claims.get("email"), claims.get("email_verified")
    if not isinstance(email, str) or "@" not in email or len(email) > 320:
        return None
    if verified is True or (isinstance(verified, str) and verified.strip().lower() == "true"):
        return unicodedata.normalize("NFC", email.strip()).lower()
    return None


def name_hint(claims: Mapping[str, Any], cfg: OidcConfig) -> str | None:
    """The ``username_claim`` (else ``preferred_username``, else the e-mail's local part), or None."""
    for key in (cfg.username_claim, "preferred_username", "email"):
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            return value.split("@", 1)[0] if key == "email" else value
    return None


def person_of(claims: Mapping[str, Any], cfg: OidcConfig) -> OidcPerson:
    """The :class:`OidcPerson` of a validated ID token's ``claims`` (``iss`` and ``sub`` are present: the
    validation requires them)."""
    grants, rules = grants_of(claims, cfg)
    return OidcPerson(
        issuer=str(claims["iss"]),
        subject=str(claims["sub"]),
        name_hint=name_hint(claims, cfg),
        email=verified_email(claims),
        grants=grants,
        rules=rules,
    )


def describe_grants(grants: Iterable[ClaimGrant]) -> list[dict[str, object]]:
    """Grants as JSON for audit entries."""
    return [g.to_json() for g in grants]
