"""RFC 5424 records and octet-counted framing, checked against the RFC's own examples (section 6.5) and a strict
parser (tests/integration/receivers.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from metrosight.outbound.rfc5424 import (
    BOM,
    Record,
    SDElement,
    Severity,
    escape_param,
    format_record,
    format_timestamp,
    frame,
    pri,
)
from tests.integration.receivers import parse_rfc5424, read_frames

T = datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC)
EVENT = SDElement("exampleSDID@32473", (("iut", "3"), ("eventSource", "Application"), ("eventID", "1011")))


def test_rfc_example_1_without_structured_data():
    rec = Record(
        4,
        Severity.CRITICAL,
        T,
        "mymachine.example.com",
        "su",
        None,
        "ID47",
        (),
        "'su root' failed for lonvick on /dev/pts/8",
    )
    assert (
        format_record(rec)
        == (
            "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
            + BOM
            + "'su root' failed for lonvick on /dev/pts/8"
        ).encode()
    )


def test_rfc_example_3_structured_data_and_message():
    rec = Record(
        20,
        Severity.NOTICE,
        T,
        "mymachine.example.com",
        "evntslog",
        None,
        "ID47",
        (EVENT,),
        "An application event log entry...",
    )
    assert (
        format_record(rec)
        == (
            '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
            'eventSource="Application" eventID="1011"] ' + BOM + "An application event log entry..."
        ).encode()
    )


def test_rfc_example_4_two_elements_and_no_message():
    rec = Record(
        20,
        Severity.NOTICE,
        T,
        "mymachine.example.com",
        "evntslog",
        None,
        "ID47",
        (EVENT, SDElement("examplePriority@32473", (("class", "high"),))),
    )
    raw = format_record(rec)
    assert raw == (
        b'<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
        b'eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]'
    )
    parsed = parse_rfc5424(raw)
    assert parsed.sd == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
        "examplePriority@32473": {"class": "high"},
    }
    assert parsed.msg is None


def test_rfc_example_2_offset_timestamp_is_the_same_instant_in_utc():
    # 2003-08-24T05:14:15.000003-07:00 (RFC 5424 example 2)
    ts = datetime(2003, 8, 24, 5, 14, 15, 3, tzinfo=timezone(timedelta(hours=-7)))
    assert format_timestamp(ts) == "2003-08-24T12:14:15.000003Z"
    with pytest.raises(ValueError, match="time zone"):
        format_timestamp(datetime(2003, 8, 24, 5, 14, 15))


def test_param_values_escape_quote_backslash_and_bracket_and_parse_back():
    tricky = 'a "quoted" \\path] and ] more'
    assert escape_param('"\\]') == '\\"\\\\\\]'
    rec = Record(
        10,
        Severity.WARNING,
        T,
        "h",
        "metrosight",
        "42",
        "auth.login_failed",
        (SDElement("audit@32473", (("target", tricky), ("actor", "Алёна"))),),
        "тест",
    )
    parsed = parse_rfc5424(format_record(rec))
    assert parsed.sd["audit@32473"] == {"target": tricky, "actor": "Алёна"}
    assert (parsed.facility, parsed.severity, parsed.msgid, parsed.msg) == (10, 4, "auth.login_failed", "тест")


def test_header_fields_are_printable_ascii_cut_to_their_length():
    rec = Record(1, Severity.INFO, None, "host with space", "a" * 60, "", "m" * 40, (), None)
    raw = format_record(rec).decode()
    assert raw == f"<14>1 - host_with_space {'a' * 48} - {'m' * 32} -"
    parsed = parse_rfc5424(raw.encode())
    assert (parsed.hostname, parsed.procid, parsed.timestamp) == ("host_with_space", "-", "-")


def test_pri_range():
    assert pri(23, 7) == 191
    with pytest.raises(ValueError):
        pri(24, 0)


def test_octet_counting_frames_split_back_exactly():
    a = format_record(Record(4, Severity.NOTICE, T, "h", "x", None, "a", (), "ünïcode"))  # length in octets
    b = format_record(Record(4, Severity.NOTICE, T, "h", "x", None, "b", (), "two"))
    framed = frame(a) + frame(b)
    assert framed.startswith(str(len(a)).encode() + b" <")
    buf = bytearray(framed[:10])
    assert read_frames(buf) == []  # incomplete: nothing taken
    buf.extend(framed[10:])
    assert read_frames(buf) == [a, b] and not buf
