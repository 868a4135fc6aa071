"""Dates mean what people mean (core/when.py): pinned "now" and fixed zones, no patched clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from metrosight.core.names import InvalidInput
from metrosight.core.when import MAX_DURATION_DAYS, Clock, describe, parse_when, zone
from metrosight.policy.rules import Authorisation, PolicyError

MSK = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")
NY = ZoneInfo("America/New_York")
# 29 November 2026, 22:30 in Moscow (19:30 UTC): late on the day an order is typed
NOW = datetime(2026, 11, 29, 19, 30, tzinfo=UTC)


def auth(expires_at, valid_from=None):
    return Authorisation("law", "court", "R-1", expires_at, valid_from)


def test_todays_date_as_an_expiry_is_the_end_of_today_and_is_accepted():
    exp = parse_when("2026-11-29", NOW, MSK, end=True)
    assert exp == datetime(2026, 11, 29, 21, 0, tzinfo=UTC)  # 2026-11-30 00:00 MSK
    auth(exp).validate(NOW, 365, MSK)  # not "in the past"


def test_an_expiry_date_covers_its_whole_last_day_in_the_deployment_zone():
    exp = parse_when("2026-11-30", NOW, MSK, end=True)
    assert exp.astimezone(MSK) == datetime(2026, 12, 1, 0, 0, tzinfo=MSK)
    assert exp - timedelta(microseconds=1) > datetime(2026, 11, 30, 23, 59, 59, tzinfo=MSK)
    # the same date read in New York ends eight hours later
    assert parse_when("2026-11-30", NOW, NY, end=True) - exp == timedelta(hours=8)


def test_a_date_only_start_is_the_start_of_that_day():
    assert parse_when("2026-12-05", NOW, MSK, end=False).astimezone(MSK) == datetime(2026, 12, 5, 0, 0, tzinfo=MSK)


def test_yesterday_is_refused_as_in_the_past_and_shows_the_zone():
    exp = parse_when("2026-11-28", NOW, MSK, end=True)
    with pytest.raises(PolicyError, match=r"end of 2026-11-28 .*Europe/Moscow.* in the past"):
        auth(exp).validate(NOW, 365, MSK)


def test_the_last_allowed_day_is_accepted_whole_and_the_day_after_refused():
    last = (NOW + timedelta(days=365)).astimezone(MSK).date()
    auth(parse_when(last.isoformat(), NOW, MSK, end=True)).validate(NOW, 365, MSK)
    auth(parse_when("365d", NOW, MSK, end=True)).validate(NOW, 365, MSK)
    with pytest.raises(PolicyError, match="more than 365 days"):
        auth(parse_when((last + timedelta(days=1)).isoformat(), NOW, MSK, end=True)).validate(NOW, 365, MSK)
    with pytest.raises(PolicyError, match="more than 365 days"):
        auth(parse_when("367d", NOW, MSK, end=True)).validate(NOW, 365, MSK)


def test_wall_clock_times_are_read_in_the_zone_and_explicit_offsets_win():
    assert parse_when("2026-12-05T10:00", NOW, MSK, end=False) == datetime(2026, 12, 5, 7, 0, tzinfo=UTC)
    assert parse_when("2026-12-05 10:00", NOW, MSK, end=False) == datetime(2026, 12, 5, 7, 0, tzinfo=UTC)
    assert parse_when("2026-12-05T10:00Z", NOW, MSK, end=False) == datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    assert parse_when("2026-12-05T10:00+01:00", NOW, MSK, end=False) == datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def test_durations_count_from_now():
    assert parse_when("30d", NOW, MSK, end=True) == NOW + timedelta(days=30)
    assert parse_when("6h", NOW, MSK, end=True) == NOW + timedelta(hours=6)
    assert parse_when("90m", NOW, MSK, end=True) == NOW + timedelta(minutes=90)
    assert parse_when("2w", NOW, MSK, end=True) == NOW + timedelta(days=14)


@pytest.mark.parametrize("text", ["99999999999d", "999999999999999999999999h", f"{MAX_DURATION_DAYS + 1}d", "600w"])
def test_huge_durations_give_a_clear_error_not_an_overflow(text):
    with pytest.raises(InvalidInput, match="too long: at most 3650 days"):
        parse_when(text, NOW, MSK, end=True, what="expires")


@pytest.mark.parametrize("text", ["9999-12-31", "9999-12-31T23:59", "0001-01-01"])
def test_dates_at_the_edge_of_the_calendar_give_a_clear_error_or_an_instant(text):
    try:
        parse_when(text, NOW, MSK, end=True)
    except InvalidInput as exc:
        assert "out of range" in str(exc)


@pytest.mark.parametrize("text", ["yesterday", "30x", "-5d", "2026-13-01", "", "2026-11-31"])
def test_unreadable_values_name_the_forms(text):
    with pytest.raises(InvalidInput, match="YYYY-MM-DD|empty"):
        parse_when(text, NOW, MSK, end=True, what="--expires")


def test_dst_a_skipped_local_time_is_refused():
    with pytest.raises(InvalidInput, match="does not exist in Europe/Berlin"):
        parse_when("2026-03-29T02:30", NOW, BERLIN, end=False)


def test_dst_a_repeated_local_time_is_refused_with_both_offsets_offered():
    with pytest.raises(InvalidInput, match=r"happens twice.*\+02:00 or .*\+01:00"):
        parse_when("2026-10-25T02:30", NOW, BERLIN, end=True)
    assert parse_when("2026-10-25T02:30+01:00", NOW, BERLIN, end=True) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


def test_dst_the_end_of_a_23_and_a_25_hour_day():
    spring = parse_when("2026-03-29", NOW, BERLIN, end=True) - parse_when("2026-03-29", NOW, BERLIN, end=False)
    autumn = parse_when("2026-10-25", NOW, BERLIN, end=True) - parse_when("2026-10-25", NOW, BERLIN, end=False)
    assert spring == timedelta(hours=23) and autumn == timedelta(hours=25)


def test_dst_a_day_whose_midnight_is_skipped_starts_when_the_clocks_jump():
    santiago = ZoneInfo("America/Santiago")  # 2026-09-06 00:00 does not exist there
    start = parse_when("2026-09-06", NOW, santiago, end=False)
    assert start == parse_when("2026-09-05", NOW, santiago, end=True)
    assert start.astimezone(santiago).date().isoformat() == "2026-09-06"


def test_confirmations_show_the_instant_with_its_zone():
    exp = parse_when("2026-11-30", NOW, MSK, end=True)
    assert describe(exp, MSK, end=True) == "end of 2026-11-30 (2026-12-01 00:00 MSK, Europe/Moscow, UTC+03:00)"
    assert describe(NOW, MSK) == "2026-11-29 22:30 MSK (Europe/Moscow, UTC+03:00)"


def test_zones_are_iana_names_and_the_clock_can_be_pinned():
    assert zone("Europe/Moscow") == MSK and zone("UTC") == ZoneInfo("UTC")
    for bad in ("Mars/Base", "../../etc/passwd", "", "Moscow"):
        with pytest.raises(InvalidInput, match="unknown time zone"):
            zone(bad)
    assert Clock(MSK, NOW).now() == NOW
    assert zone(None) is not None  # the machine's zone
