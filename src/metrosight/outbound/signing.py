"""Signing webhook deliveries, and the check a receiver makes (the same code as README's snippet).

Each request carries:

- ``X-Metrosight-Timestamp``: Unix seconds when this attempt was signed;
- ``X-Metrosight-Signature``: ``v1=`` and the hex HMAC-SHA256, keyed with the subscription's secret (the whole
  ``whsec_…`` text, as UTF-8), of ``<timestamp>.<body>`` (the timestamp's decimal digits, a dot, the raw body);
- ``Idempotency-Key``: the same for every attempt of one event to one subscription (a receiver that has seen it
  answers 2xx and does nothing);
- ``X-Metrosight-Event`` (the event type), ``X-Metrosight-Schema``, ``X-Metrosight-Delivery`` (the outbox row) and
  ``X-Metrosight-Attempt`` (1 for the first).

A receiver recomputes the signature over the bytes it received, compares in constant time, and refuses a
timestamp further than :data:`REPLAY_WINDOW_SECONDS` from its clock (a captured request cannot be replayed later).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

SIGNATURE_HEADER = "X-Metrosight-Signature"
TIMESTAMP_HEADER = "X-Metrosight-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "X-Metrosight-Event"
SCHEMA_HEADER = "X-Metrosight-Schema"
DELIVERY_HEADER = "X-Metrosight-Delivery"
ATTEMPT_HEADER = "X-Metrosight-Attempt"
REPLAY_WINDOW_SECONDS = 300
VERSION = "v1"


class SignatureError(ValueError):
    """A delivery's signature is missing, malformed, wrong, or its timestamp is outside the replay window."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{VERSION}={mac}"


def signed_headers(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The timestamp and signature headers of ``body`` signed at ``timestamp`` (Unix seconds)."""
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(secret, timestamp, body)}


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, now: float, window: float = REPLAY_WINDOW_SECONDS
) -> int:
    """Check a received delivery (what a receiver runs). Returns its timestamp.

    Args:
        headers: the request's headers (names compared case-insensitively).
        now: the receiver's clock, Unix seconds.

    Raises:
        SignatureError: a header is missing or malformed, the timestamp is more than ``window`` seconds away from
            ``now``, or the signature does not match the body.
    """
    h = {k.lower(): v for k, v in headers.items()}
    raw_ts, sig = h.get(TIMESTAMP_HEADER.lower()), h.get(SIGNATURE_HEADER.lower())
    if raw_ts is None or sig is None:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
    if not raw_ts.isascii() or not raw_ts.isdigit() or len(raw_ts) > 12:
        raise SignatureError(f"malformed {TIMESTAMP_HEADER}")
    ts = int(raw_ts)
    if abs(now - ts) > window:
        raise SignatureError(f"timestamp {ts} is outside the {window:g} s replay window")
    expected = signature(secret, ts, body)
    if not any(hmac.compare_digest(expected, s.strip()) for s in sig.split(",")):
        raise SignatureError("signature does not match")
    return ts
