"""Sign-in and transport settings of the operator service: the second factor of local accounts (``totp:``) and
TLS on ``metrosight serve`` (``api.tls:``).

The TLS files are checked by :func:`tls_problem` (``config check`` and ``serve``), not when the settings are
loaded: a command that serves nothing must not fail on a host that lacks the certificate.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from metrosight.config.common import Section

ROLE_NAMES = ("admin", "approver", "operator", "auditor", "viewer")


class TotpSettings(Section):
    """The second factor (TOTP, RFC 6238) of local accounts."""

    required_roles: list[str] = Field(
        default_factory=lambda: ["admin", "approver"],
        description="a local account holding one of these roles must sign in with a TOTP code; until it has "
        "enrolled one, a password sign-in may only enrol it ([] makes the second factor optional for everybody)",
    )
    issuer: str = Field(
        "metrosight", min_length=1, max_length=64, description="the name authenticator apps show for the account"
    )
    recovery_codes: int = Field(10, ge=4, le=20, description="one-time recovery codes handed out at enrolment")

    @field_validator("required_roles")
    @classmethod
    def _roles(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if r not in ROLE_NAMES]
        if bad:
            raise ValueError(f"unknown role(s) {', '.join(map(repr, bad))}; roles are {', '.join(ROLE_NAMES)}")
        return sorted(set(v))


class TlsSettings(Section):
    """HTTPS on ``metrosight serve``: a PEM certificate (chain) and its private key."""

    certificate: Path | None = Field(None, description="PEM certificate (with its chain) served by `serve`")
    key: Path | None = Field(None, description="PEM private key of the certificate (unencrypted; mode 0600)")
    hsts_seconds: int = Field(
        31_536_000,
        ge=0,
        le=63_072_000,
        description="Strict-Transport-Security max-age sent over HTTPS (0: no header)",
    )

    @field_validator("certificate", "key")
    @classmethod
    def _home(cls, v: Path | None) -> Path | None:
        return v.expanduser() if v is not None else None

    @model_validator(mode="after")
    def _both(self) -> TlsSettings:
        if (self.certificate is None) != (self.key is None):
            raise ValueError("give both certificate and key (or neither, to serve plain HTTP behind a proxy)")
        return self

    @property
    def enabled(self) -> bool:
        return self.certificate is not None


def tls_problem(tls: TlsSettings) -> str | None:
    """Why ``serve`` cannot use these TLS files (one line naming the file and what to do), or None when it can:
    both files exist and are readable, the certificate is a PEM X.509 certificate valid now, the key a PEM private
    key without a passphrase, and the key is the certificate's."""
    if tls.certificate is None or tls.key is None:
        return None
    from cryptography import x509  # cryptography: native, only when TLS is configured
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        cert_pem = tls.certificate.read_bytes()
    except OSError as exc:
        return f"api.tls.certificate: cannot read {tls.certificate} ({exc.strerror or exc})"
    try:
        key_pem = tls.key.read_bytes()
    except OSError as exc:
        return f"api.tls.key: cannot read {tls.key} ({exc.strerror or exc}); serve runs as this user and needs it"
    try:
        cert = x509.load_pem_x509_certificates(cert_pem)[0]
    except ValueError:
        return f"api.tls.certificate: {tls.certificate} is not a PEM certificate (-----BEGIN CERTIFICATE-----)"
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        return f"api.tls.key: {tls.key} is encrypted with a passphrase; store it unencrypted with mode 0600"
    except (ValueError, UnsupportedAlgorithm):
        return f"api.tls.key: {tls.key} is not a PEM private key (-----BEGIN … PRIVATE KEY-----)"
    now = datetime.now(UTC)
    if cert.not_valid_after_utc <= now:
        return (
            f"api.tls.certificate: {tls.certificate} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; "
            "install a renewed certificate"
        )
    if cert.not_valid_before_utc > now:
        return (
            f"api.tls.certificate: {tls.certificate} is valid only from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if key.public_key().public_bytes(enc, pub) != cert.public_key().public_bytes(enc, pub):
        return f"api.tls.key: {tls.key} is not the private key of the certificate {tls.certificate}"
    return None


def tls_expiry(tls: TlsSettings) -> datetime | None:
    """When the configured certificate expires (UTC), or None without TLS. Check :func:`tls_problem` first."""
    if tls.certificate is None:
        return None
    from cryptography import x509  # cryptography: native, only when TLS is configured

    return x509.load_pem_x509_certificates(tls.certificate.read_bytes())[0].not_valid_after_utc
