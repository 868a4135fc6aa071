"""Signing (HMAC-SHA256 over timestamp and body, replay window) and the retry schedule (tenacity)."""

from __future__ import annotations

import pytest

from metrosight.outbound.delivery import Backoff
from metrosight.outbound.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, signed_headers, verify

SECRET = "whsec_test-secret"
BODY = b'{"id":"cam-1:s:10.0","type":"alert"}'


def test_a_signed_body_verifies_and_any_change_fails() -> None:
    h = signed_headers(SECRET, BODY, 1_700_000_000)
    assert h[SIGNATURE_HEADER].startswith("v1=") and len(h[SIGNATURE_HEADER]) == 3 + 64
    assert verify(SECRET, h, BODY, now=1_700_000_010) == 1_700_000_000
    lower = {k.lower(): v for k, v in h.items()}
    assert verify(SECRET, lower, BODY, now=1_700_000_010) == 1_700_000_000  # header names in any case
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, h, BODY.replace(b"alert", b"alarm"), now=1_700_000_010)
    with pytest.raises(SignatureError, match="does not match"):
        verify("whsec_other", h, BODY, now=1_700_000_010)
    moved = {**h, TIMESTAMP_HEADER: "1700000001"}  # the timestamp is signed too
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, moved, BODY, now=1_700_000_010)


@pytest.mark.parametrize("skew", [-301, 301, 86_400])
def test_outside_the_replay_window_is_refused(skew: int) -> None:
    h = signed_headers(SECRET, BODY, 1_700_000_000)
    with pytest.raises(SignatureError, match="replay window"):
        verify(SECRET, h, BODY, now=1_700_000_000 + skew)


@pytest.mark.parametrize("ts", ["", "-5", "1e9", "١٧٠٠٠٠٠٠٠٠", "9" * 40])
def test_malformed_timestamps_are_refused(ts: str) -> None:
    h = {**signed_headers(SECRET, BODY, 1_700_000_000), TIMESTAMP_HEADER: ts}
    with pytest.raises(SignatureError, match="malformed"):
        verify(SECRET, h, BODY, now=1_700_000_000)


def test_missing_headers_are_refused() -> None:
    with pytest.raises(SignatureError, match="missing"):
        verify(SECRET, {}, BODY, now=0)


def test_backoff_grows_exponentially_with_bounded_jitter_and_a_cap() -> None:
    b = Backoff(initial=2.0, maximum=300.0, jitter=1.0)
    for n, base in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (6, 64.0), (8, 256.0)]:
        waits = [b.seconds(n) for _ in range(200)]
        assert all(base <= w <= base + 1.0 for w in waits), (n, min(waits), max(waits))
        assert max(waits) - min(waits) > 0.5  # jittered: retries of many deliveries do not arrive in step
    capped = [b.seconds(n) for n in (9, 12, 40, 1000) for _ in range(50)]
    assert all(299.0 <= w <= 300.0 for w in capped) and len(set(capped)) > 1  # at the cap, still jittered
