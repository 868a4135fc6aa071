"""How people sign in to the operator service: local accounts, and single sign-on with OpenID Connect (``auth:``).

```yaml
auth:
  local_accounts: true                # false: password sign-in on the service is refused (break_glass_users excepted)
  break_glass_users: [chief]          # local accounts that may still sign in with a password when it is false
  oidc:
    issuer: https://sso.example.org/realms/metro   # discovery: <issuer>/.well-known/openid-configuration
    client_id: metrosight
    client_secret_file: /etc/metrosight/oidc-secret  # or METROSIGHT__AUTH__OIDC__CLIENT_SECRET
    redirect_url: https://metrosight.example.org/auth/oidc/callback
    mappings:
      - {group: metro-red-operators, roles: [operator], camera_groups: [red]}
```

The client secret is held as a pydantic ``SecretStr`` (never printed by ``repr``, ``config check`` or a log line);
:meth:`OidcConfig.secret` reads it from the file at the moment it is needed.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator

from metrosight.config.common import Section
from metrosight.core.names import human_name, identifier, same_identifier

Role = Literal["admin", "approver", "operator", "auditor", "viewer"]
CALLBACK_PATH = "/auth/oidc/callback"  # the service's redirection endpoint (metrosight.api.routes.oidc)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(value: str, what: str) -> str:
    """An absolute https URL (http only to a loopback host: a test provider on this machine)."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{what} {value!r} is not an absolute https:// URL")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValueError(f"{what} {value!r} must use https:// (plain http is allowed to a loopback address only)")
    if parts.username or parts.password or parts.fragment:
        raise ValueError(f"{what} {value!r} must not hold a user name, password or #fragment")
    return value.strip()


def _nfc(v: str) -> str:
    out = unicodedata.normalize("NFC", v).strip()
    if not out:
        raise ValueError("must not be empty")
    return out


ClaimText = Annotated[str, AfterValidator(_nfc)]


class OidcRoleMapping(Section):
    """One rule of the claim mapping: people whose ID token holds ``group`` in the groups claim (or whose claim
    ``claim`` equals ``value``, or lists it) get ``roles``, limited to ``camera_groups`` and ``watchlists`` (empty:
    not limited in that dimension). Exactly one of ``group`` and ``claim`` is given; values are compared exactly
    (case and all), as the provider sends them."""

    group: ClaimText | None = Field(None, description="a value of the groups claim (e.g. a Keycloak group path)")
    claim: ClaimText | None = Field(None, description="a claim name, with value")
    value: ClaimText | bool | None = Field(None, description="the value claim must equal (or a list claim hold)")
    roles: list[Role] = Field(..., min_length=1, description="roles given to whoever matches")
    camera_groups: list[str] = Field(
        default_factory=list, description="the roles' scope: camera groups (lines, stations; empty: every camera)"
    )
    watchlists: list[str] = Field(
        default_factory=list, description="the roles' scope: watchlists (empty: every watchlist)"
    )

    @field_validator("camera_groups")
    @classmethod
    def _groups(cls, v: list[str]) -> list[str]:
        return sorted({identifier(g, "camera group") for g in v})

    @field_validator("watchlists")
    @classmethod
    def _lists(cls, v: list[str]) -> list[str]:
        return sorted({human_name(w, "watchlist") for w in v})

    @model_validator(mode="after")
    def _one_condition(self) -> OidcRoleMapping:
        if (self.group is None) == (self.claim is None):
            raise ValueError("a mapping names exactly one of group: (a group) or claim: with value:")
        if self.claim is not None and self.value is None:
            raise ValueError(f"mapping of claim {self.claim!r} needs value: (what the claim must equal or list)")
        if self.group is not None and self.value is not None:
            raise ValueError("value: goes with claim:, not with group:")
        always_global = sorted({"admin", "auditor"}.intersection(self.roles))
        if always_global and (self.camera_groups or self.watchlists):
            raise ValueError(
                f"mapping of {self.describe()}: the {' and '.join(always_global)} role cannot be scoped (an admin "
                "manages users and scopes, an auditor reads the whole audit log); map the scoped roles in a rule "
                "of their own"
            )
        return self

    def describe(self) -> str:
        """``group X`` or ``claim C=V``, for audit entries."""
        return f"group {self.group}" if self.group is not None else f"claim {self.claim}={self.value}"


class OidcConfig(Section):
    """Single sign-on with an OpenID Connect provider (authorization-code flow with PKCE S256)."""

    issuer: str = Field(..., description="the provider's issuer URL; its discovery document is read from it")
    client_id: str = Field(..., min_length=1, max_length=255)
    client_secret: SecretStr | None = Field(
        None,
        description="the client secret; prefer client_secret_file or the environment variable "
        "METROSIGHT__AUTH__OIDC__CLIENT_SECRET to writing it in the file",
    )
    client_secret_file: Path | None = Field(None, description="a file holding the client secret (one line)")
    redirect_url: str = Field(
        ..., description=f"this service's callback as the provider knows it: https://HOST{CALLBACK_PATH}"
    )
    post_logout_redirect_url: str | None = Field(
        None, description="where the provider sends the browser after signing out (default: the service's /login)"
    )
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"], min_length=1)
    groups_claim: str = Field("groups", min_length=1, description="the ID-token claim that lists the user's groups")
    username_claim: str = Field(
        "preferred_username", min_length=1, description="the claim a new user's metrosight name is made from"
    )
    display_name: str = Field("single sign-on", min_length=1, max_length=64, description="the sign-in button's label")
    mappings: list[OidcRoleMapping] = Field(default_factory=list, description="claims → roles and scope")
    clock_skew_seconds: int = Field(60, ge=0, le=600, description="leeway for the ID token's exp/iat/nbf")
    timeout_seconds: float = Field(10.0, gt=0.0, le=120.0, description="HTTP timeout towards the provider")
    ca_file: Path | None = Field(None, description="CA bundle that signs the provider's certificate (default: system)")

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, v: str) -> str:
        # kept exactly as written: the ID token's iss must equal it (a trailing slash included, as some providers
        # write it)
        return _url(v, "auth.oidc.issuer")

    @field_validator("redirect_url")
    @classmethod
    def _redirect(cls, v: str) -> str:
        v = _url(v, "auth.oidc.redirect_url")
        if urlsplit(v).path != CALLBACK_PATH or urlsplit(v).query:
            raise ValueError(f"auth.oidc.redirect_url {v!r} must end in {CALLBACK_PATH} (the service's callback)")
        return v

    @field_validator("post_logout_redirect_url")
    @classmethod
    def _post_logout(cls, v: str | None) -> str | None:
        return None if v is None else _url(v, "auth.oidc.post_logout_redirect_url")

    @field_validator("scopes")
    @classmethod
    def _openid(cls, v: list[str]) -> list[str]:
        out = list(dict.fromkeys(s.strip() for s in v if s.strip()))
        if "openid" not in out:
            raise ValueError("auth.oidc.scopes must include openid")
        if any(" " in s for s in out):
            raise ValueError("auth.oidc.scopes: one scope a list item, without spaces")
        return out

    @model_validator(mode="after")
    def _one_secret(self) -> OidcConfig:
        if self.client_secret is not None and self.client_secret_file is not None:
            raise ValueError("auth.oidc: give client_secret or client_secret_file, not both")
        return self

    def secret(self) -> str:
        """The client secret (read from ``client_secret_file`` now, when given).

        Raises:
            ValueError: neither is set, or the file cannot be read or is empty (the message never holds the
                secret).
        """
        if self.client_secret is not None:
            value = self.client_secret.get_secret_value().strip()
        elif self.client_secret_file is not None:
            try:
                value = self.client_secret_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(
                    f"auth.oidc.client_secret_file {self.client_secret_file}: cannot read it ({type(exc).__name__})"
                ) from None
        else:
            raise ValueError(
                "auth.oidc needs the client secret: client_secret_file, or the environment variable "
                "METROSIGHT__AUTH__OIDC__CLIENT_SECRET"
            )
        if not value:
            raise ValueError("auth.oidc: the client secret is empty")
        return value

    def logout_return(self) -> str:
        """Where the provider returns the browser after signing out: ``post_logout_redirect_url``, else the
        service's ``/login`` (beside the callback)."""
        if self.post_logout_redirect_url:
            return self.post_logout_redirect_url
        return self.redirect_url[: -len(CALLBACK_PATH)] + "/login"


class AuthConfig(Section):
    """Sign-in: local accounts (passwords) and single sign-on (``oidc``)."""

    local_accounts: bool = Field(
        True,
        description="false: the service refuses password sign-in (users sign in through auth.oidc), except for "
        "break_glass_users; the CLI on the server keeps working with local accounts",
    )
    break_glass_users: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="local accounts that may sign in with a password while local_accounts is false (audited)",
    )
    oidc: OidcConfig | None = Field(None, description="single sign-on with OpenID Connect (None: off)")

    @field_validator("break_glass_users")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        return [human_name(n, "user name") for n in v]

    def password_allowed(self, user: str) -> bool:
        """Whether ``user`` may use the service with a password: local accounts are on, or ``user`` is among
        ``break_glass_users``."""
        return self.local_accounts or self.break_glass(user)

    def break_glass(self, user: str) -> bool:
        """Whether ``user`` is among ``break_glass_users`` (compared up to case and Unicode form)."""
        return any(same_identifier(user, u) for u in self.break_glass_users)

    @model_validator(mode="after")
    def _someone_can_sign_in(self) -> AuthConfig:
        if not self.local_accounts and self.oidc is None and not self.break_glass_users:
            raise ValueError(
                "auth.local_accounts is false but auth.oidc is not configured: nobody could sign in to the service"
            )
        return self


def check_mapping_groups(oidc: OidcConfig | None, groups: Iterable[str]) -> None:
    """Raises ValueError naming a camera group of ``auth.oidc.mappings`` that is not among ``groups`` (the
    configuration's camera groups: named ones, each camera's line and group)."""
    if oidc is None:
        return
    known = list(groups)
    for rule in oidc.mappings:
        for g in rule.camera_groups:
            if not any(same_identifier(g, k) for k in known):
                raise ValueError(
                    f"auth.oidc.mappings ({rule.describe()}): no camera group {g!r}; define it under camera_groups "
                    f"or name a line or group of a camera (known: {', '.join(sorted(known)) or 'none'})"
                )
