"""RFC 5424 syslog records and their octet-counted framing on a stream (RFC 6587 section 3.4.1, RFC 5425 4.3).

Pure functions, no I/O. A record is::

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID PARAM="VALUE" ...] BOM MSG

Header fields are printable US-ASCII without spaces (``-`` when empty), each cut to its RFC length; a PARAM-VALUE
escapes ``"``, ``\\`` and ``]`` with a backslash; MSG is UTF-8 led by a byte-order mark. On a stream each record is
sent as ``LEN SP RECORD`` (LEN: the record's length in octets, decimal).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum

NILVALUE = "-"
BOM = "\ufeff"

_NON_PRINT = re.compile(r"[^\x21-\x7e]")
_SD_NAME_BAD = re.compile(r'[^\x21-\x7e]|[= \]"]')


class Severity(IntEnum):
    """RFC 5424 severities (table 2)."""

    EMERGENCY = 0
    ALERT = 1
    CRITICAL = 2
    ERROR = 3
    WARNING = 4
    NOTICE = 5
    INFO = 6
    DEBUG = 7


@dataclass(frozen=True, slots=True)
class SDElement:
    """One structured-data element: ``[id name="value" ...]``. ``id`` is ``name@enterprise-number`` for a private
    element (or an IANA-registered id such as ``timeQuality``); parameters keep their order."""

    id: str
    params: Sequence[tuple[str, str]] = ()


@dataclass(frozen=True, slots=True)
class Record:
    """One syslog message's fields (RFC 5424 section 6). ``timestamp`` must be timezone-aware (None: NILVALUE);
    text fields None or empty are sent as NILVALUE."""

    facility: int
    severity: Severity
    timestamp: datetime | None
    hostname: str | None
    app_name: str | None
    procid: str | None
    msgid: str | None
    structured_data: Sequence[SDElement] = field(default_factory=tuple)
    msg: str | None = None


def _header_field(value: str | None, limit: int) -> str:
    if not value:
        return NILVALUE
    return _NON_PRINT.sub("_", value)[:limit]


def _sd_name(name: str) -> str:
    """An SD-NAME: printable ASCII except ``= ] "`` and space, at most 32 octets (the ``@N`` of an SD-ID counts)."""
    cleaned = _SD_NAME_BAD.sub("_", name)
    if not cleaned:
        raise ValueError("a structured-data name must not be empty")
    return cleaned


def sd_id(element: str) -> str:
    """An SD-ID: a name (``@`` and the enterprise number allowed), at most 32 octets before the ``@``."""
    name, at, number = element.partition("@")
    return _sd_name(name)[:32] + (at + number if at else "")


def escape_param(value: str) -> str:
    """A PARAM-VALUE: ``"``, ``\\`` and ``]`` escaped with a backslash (RFC 5424 section 6.3.3)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def format_sd(elements: Sequence[SDElement]) -> str:
    """The STRUCTURED-DATA field: the elements side by side, or NILVALUE when there are none."""
    if not elements:
        return NILVALUE
    out = []
    for el in elements:
        params = "".join(f' {_sd_name(k)[:32]}="{escape_param(v)}"' for k, v in el.params)
        out.append(f"[{sd_id(el.id)}{params}]")
    return "".join(out)


def format_timestamp(ts: datetime | None) -> str:
    """RFC 3339 as RFC 5424 restricts it: ``2026-11-30T02:55:04.1234Z`` (UTC, at most 6 fractional digits, trailing
    zeros dropped).

    Raises:
        ValueError: a naive datetime (no time zone).
    """
    if ts is None:
        return NILVALUE
    if ts.tzinfo is None:
        raise ValueError("a syslog timestamp needs a time zone")
    utc = ts.astimezone(UTC)
    frac = f".{utc.microsecond:06d}".rstrip("0") if utc.microsecond else ""
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def pri(facility: int, severity: int) -> int:
    """PRIVAL = facility × 8 + severity. Raises ValueError outside facility 0–23, severity 0–7."""
    if not 0 <= facility <= 23 or not 0 <= severity <= 7:
        raise ValueError(f"facility {facility} / severity {severity} out of range (0–23 / 0–7)")
    return facility * 8 + severity


def format_record(rec: Record) -> bytes:
    """The record as RFC 5424 octets (UTF-8; MSG led by a BOM)."""
    head = " ".join(
        (
            f"<{pri(rec.facility, rec.severity)}>1",
            format_timestamp(rec.timestamp),
            _header_field(rec.hostname, 255),
            _header_field(rec.app_name, 48),
            _header_field(rec.procid, 128),
            _header_field(rec.msgid, 32),
            format_sd(rec.structured_data),
        )
    )
    if rec.msg is None:
        return head.encode("utf-8")
    return (head + " " + BOM + rec.msg).encode("utf-8")


def frame(record: bytes) -> bytes:
    """Octet-counting framing for a stream transport: ``LEN SP RECORD`` (RFC 6587 3.4.1, RFC 5425 4.3)."""
    return str(len(record)).encode("ascii") + b" " + record


def params(mapping: Mapping[str, object]) -> list[tuple[str, str]]:
    """Structured-data parameters from a mapping, None values left out, everything else as ``str``."""
    return [(k, str(v)) for k, v in mapping.items() if v is not None]
