"""Outbound channels that are not webhooks: MQTT (alerts, reviews, behaviour events, camera states) and syslog (the
audit log and security events, RFC 5424 over TCP or TLS, for a SIEM).

Files named here (CA bundles, client certificates and keys, password files) must exist and be readable when the
configuration is loaded, so ``metrosight config check`` names a missing one; a password itself never appears in the
configuration (``password_env`` or ``password_file``) and is never logged.
"""

from __future__ import annotations

import os
import re
import ssl
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, Field, model_validator

from metrosight.config.common import Section
from metrosight.config.webhooks import WebhooksConfig
from metrosight.core.names import identifier

#: syslog facility names (RFC 5424 table 1; the names rsyslog and syslog-ng use) and their numbers
FACILITIES: Final[Mapping[str, int]] = MappingProxyType(
    {
        "kern": 0,
        "user": 1,
        "mail": 2,
        "daemon": 3,
        "auth": 4,
        "syslog": 5,
        "lpr": 6,
        "news": 7,
        "uucp": 8,
        "cron": 9,
        "authpriv": 10,
        "ftp": 11,
        "ntp": 12,
        "audit": 13,
        "alert": 14,
        "clock": 15,
        **{f"local{i}": 16 + i for i in range(8)},
    }
)

_PRINTUSASCII = re.compile(r"^[\x21-\x7e]+$")


def _readable_file(v: Path | None) -> Path | None:
    if v is None:
        return None
    p = Path(os.path.expanduser(str(v)))
    if not p.exists():
        raise ValueError(f"{p} does not exist: give the path of an existing file")
    if not p.is_file():
        raise ValueError(f"{p} is not a file")
    if not os.access(p, os.R_OK):
        raise ValueError(f"{p} cannot be read by this user: fix its permissions")
    return p


ReadableFile = Annotated[Path | None, AfterValidator(_readable_file)]


def _host(v: str) -> str:
    v = v.strip()
    if not v or any(c.isspace() for c in v) or "/" in v or v.startswith("-"):
        raise ValueError(f"{v!r} is not a host name or IP address (e.g. broker.metro.local or 10.0.0.5)")
    return v


Host = Annotated[str, AfterValidator(_host)]
CameraGroup = Annotated[str, AfterValidator(lambda v: identifier(v, "camera group"))]
WatchlistName = Annotated[str, AfterValidator(lambda v: unicodedata.normalize("NFC", v).strip())]

#: the outbound event types (metrosight.outbound.events.EventType), for filters in the file
OutboundEventType = Literal["alert", "alert_review", "episode", "behaviour", "camera_state", "alarm"]
Port = Annotated[int, Field(ge=1, le=65535, description="TCP port, 1–65535")]


class TlsConfig(Section):
    """TLS to a broker or collector: the server is verified against ``ca_file`` (else the system's CAs), by host
    name (``server_name``, else the configured host); a client certificate is sent when ``cert_file`` is set."""

    ca_file: ReadableFile = Field(None, description="PEM bundle of the CAs that sign the server's certificate")
    cert_file: ReadableFile = Field(None, description="PEM client certificate (mutual TLS)")
    key_file: ReadableFile = Field(None, description="PEM key of cert_file (default: in cert_file)")
    server_name: str | None = Field(None, description="name the server's certificate must carry (default: host)")

    @model_validator(mode="after")
    def _usable(self) -> TlsConfig:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file is set without cert_file: give the client certificate too")
        self.context()  # a CA bundle or key pair that cannot be loaded is named now, not at the first connection
        return self

    def context(self) -> ssl.SSLContext:
        """A client context: TLS 1.2 or later, the server verified against ``ca_file`` (else the system's CAs)
        and by name, the client certificate when set.

        Raises:
            ValueError: a file holds no usable CA certificate, certificate or key (names the file).
        """
        try:
            ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"ca_file {self.ca_file}: not a PEM bundle of CA certificates ({exc})") from None
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file is not None:
            try:
                ctx.load_cert_chain(str(self.cert_file), str(self.key_file) if self.key_file else None)
            except (ssl.SSLError, OSError) as exc:
                raise ValueError(
                    f"cert_file {self.cert_file} / key_file {self.key_file}: not a matching PEM certificate and "
                    f"unencrypted key ({exc})"
                ) from None
        return ctx


class SyslogConfig(Section):
    """Forward every audit entry (with its sequence number and hash) and the security events among them to a
    syslog collector: RFC 5424 records, octet-counted over TCP (RFC 6587), over TLS when ``tls`` is set (RFC 5425).

    The last forwarded sequence number is kept in the database, so a collector that is down, or a restart, loses
    and repeats nothing: forwarding resumes after it.
    """

    host: Host = Field(..., description="the collector's host name or address")
    port: Port | None = Field(None, description="default: 6514 with TLS (RFC 5425), 601 without (RFC 6587)")
    tls: TlsConfig | None = Field(None, description="TLS to the collector (RFC 5425); omit for plain TCP")
    app_name: str = Field("metrosight", min_length=1, max_length=48, description="RFC 5424 APP-NAME")
    hostname: str | None = Field(
        None, min_length=1, max_length=255, description="RFC 5424 HOSTNAME (default: this machine's FQDN)"
    )
    facility: str | int = Field(
        "authpriv", description="facility name (auth, authpriv, audit, local0…local7, …) or number 0–23"
    )
    enterprise_id: int = Field(
        32473,
        ge=1,
        description="IANA private enterprise number in the structured data's id (audit@N); 32473 is the number "
        "reserved for documentation (RFC 5612): use your organisation's",
    )
    batch: int = Field(200, ge=1, le=10_000, description="entries read and sent at once")
    poll_seconds: float = Field(0.5, gt=0.0, le=60.0, description="how often new audit entries are looked for")
    connect_timeout_seconds: float = Field(5.0, gt=0.0, le=120.0)
    retry_max_seconds: float = Field(
        30.0, gt=0.0, le=3600.0, description="the longest wait between reconnection attempts (exponential backoff)"
    )

    @model_validator(mode="after")
    def _names(self) -> SyslogConfig:
        if not _PRINTUSASCII.match(self.app_name):
            raise ValueError(f"app_name {self.app_name!r}: printable ASCII without spaces (RFC 5424 APP-NAME)")
        if self.hostname is not None and not _PRINTUSASCII.match(self.hostname):
            raise ValueError(f"hostname {self.hostname!r}: printable ASCII without spaces (RFC 5424 HOSTNAME)")
        self.facility_code()
        return self

    def facility_code(self) -> int:
        """The facility's number (0–23). Raises ValueError for an unknown name or a number out of range."""
        f = self.facility
        if isinstance(f, int) or (isinstance(f, str) and f.strip().isdigit()):
            n = int(f)
            if not 0 <= n <= 23:
                raise ValueError(f"facility {n} is out of range: 0–23")
            return n
        code = FACILITIES.get(f.strip().lower())
        if code is None:
            raise ValueError(f"facility {f!r} is unknown: one of {', '.join(FACILITIES)} or a number 0–23")
        return code

    @property
    def effective_port(self) -> int:
        return self.port or (6514 if self.tls is not None else 601)


def _topic_prefix(v: str) -> str:
    if not v or v.startswith("/") or v.endswith("/") or any(c in v for c in "+#\0") or "//" in v:
        raise ValueError(
            f"{v!r} is not a topic prefix: one or more levels separated by '/', no leading or trailing '/', "
            "no '+', '#' or empty level (e.g. metrosight or metro/red-line)"
        )
    if v.startswith("$"):
        raise ValueError(f"{v!r}: topics starting with '$' are the broker's own")
    return v


class MqttConfig(Section):
    """Publish alerts, alert reviews, behaviour events and camera states to an MQTT broker (paho-mqtt; README
    "MQTT" lists the topics and payloads). Messages are sent with ``qos`` (1: at least once); camera states and the
    availability topic are retained; the broker publishes ``offline`` on the availability topic when this client
    goes away uncleanly (last will)."""

    host: Host = Field(..., description="the broker's host name or address")
    port: Port | None = Field(None, description="default: 8883 with TLS, 1883 without")
    tls: TlsConfig | None = Field(None, description="TLS to the broker; omit for plain TCP")
    username: str | None = Field(None, min_length=1, max_length=256)
    password_env: str | None = Field(None, description="environment variable that holds the password")
    password_file: ReadableFile = Field(None, description="file that holds the password (first line)")
    client_id: str | None = Field(None, max_length=128, description="default: metrosight-<host name>-<pid>")
    topic_prefix: Annotated[str, AfterValidator(_topic_prefix)] = Field("metrosight", max_length=200)
    qos: Literal[0, 1, 2] = Field(1, description="QoS of every message (1: at least once)")
    keepalive_seconds: int = Field(30, ge=5, le=3600)
    retry_max_seconds: float = Field(30.0, gt=0.0, le=3600.0, description="longest wait between reconnections")
    events: list[OutboundEventType] = Field(
        default_factory=list,
        description="event types published (alert, alert_review, episode, behaviour, camera_state, alarm); empty: all",
    )
    watchlists: list[WatchlistName] = Field(
        default_factory=list,
        description="events that name people are published only for these watchlists (empty: all); events that "
        "name nobody (behaviour, camera states) are not restricted by it",
    )
    camera_groups: list[CameraGroup] = Field(
        default_factory=list,
        description="only events of cameras in these groups, spelt as under cameras[].group (or line); empty: all",
    )
    queue_limit: int = Field(
        10_000,
        ge=10,
        le=60_000,
        description="QoS 1/2 messages held in memory while the broker is unreachable; beyond it new events are "
        "held by the dispatcher",
    )

    @model_validator(mode="after")
    def _credentials(self) -> MqttConfig:
        if self.tls is not None and self.tls.server_name is not None:
            raise ValueError(
                "tls.server_name is not supported for MQTT: set host to the name the broker's certificate carries"
            )
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("password_env and password_file are both set: keep one")
        if (self.password_env is not None or self.password_file is not None) and self.username is None:
            raise ValueError("a password is configured without username: set username")
        if self.password_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.password_env):
            raise ValueError(f"password_env {self.password_env!r} is not an environment variable name")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or (8883 if self.tls is not None else 1883)

    def password(self) -> str | None:
        """The password, read now from ``password_env`` or ``password_file`` (None: none configured).

        Raises:
            ValueError: the variable is not set, or the file cannot be read (names which, never the value).
        """
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ValueError(f"mqtt.password_env: the environment variable {self.password_env} is not set")
            return value
        if self.password_file is not None:
            try:
                lines = self.password_file.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"mqtt.password_file {self.password_file}: cannot read it ({exc})") from None
            if not lines or not lines[0]:
                raise ValueError(f"mqtt.password_file {self.password_file}: the first line is empty")
            return lines[0]
        return None


class OutboundConfig(Section):
    """The ``outbound`` section: channels configured in the file (each off unless set). Webhook subscriptions are
    kept in the database (``metrosight webhooks …``); ``webhooks`` here says how they are delivered."""

    mqtt: MqttConfig | None = None
    syslog: SyslogConfig | None = None
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig)
