"""Dates, times and durations as people type them: one parser for every expiry, validity start and window.

- ``2026-11-30`` (a date): as an **end** (an expiry, a window's end) the *end* of that day, i.e. the next day's
  00:00 in the deployment's time zone, so the whole day is covered and today's date is in the future; as a
  **start** (``--valid-from``, a window's start) the start of that day (00:00 there).
- ``2026-11-30T18:00`` (a wall-clock time, ``T`` or a space): in the deployment's time zone. A time that does not
  exist there (the hour skipped when clocks go forward) or exists twice (when they go back) is refused: give an
  offset (``2026-10-25T02:30+02:00``) to say which.
- ``2026-11-30T18:00+03:00`` or ``…Z``: that instant.
- ``30d``, ``12h``, ``90m``, ``2w``: from now; at most :data:`MAX_DURATION_DAYS` days.

The deployment's zone is the config key ``deployment.timezone`` (an IANA name such as ``Europe/Moscow``; default:
the machine's own zone, see :func:`local_zone`). Results are UTC; :func:`describe` shows an instant in the zone.

Pure functions: the caller passes ``now`` (see :class:`Clock`), so tests pin it.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from metrosight.core.names import InvalidInput

MAX_DURATION_DAYS = 3650  # ten years: longer than any authorisation or token the configuration allows
_DURATION = re.compile(r"^\s*([0-9]+)\s*([wdhm])\s*$", re.IGNORECASE)
_UNITS: Final[Mapping[str, tuple[str, int]]] = {
    "w": ("weeks", 7 * 24 * 60),
    "d": ("days", 24 * 60),
    "h": ("hours", 60),
    "m": ("minutes", 1),
}
FORMS = "YYYY-MM-DD, YYYY-MM-DDTHH:MM (in the deployment's time zone, or with +HH:MM/Z), or a duration like 30d, 12h"


def zone(name: str | None) -> tzinfo:
    """The IANA zone ``name`` (None: the machine's, :func:`local_zone`).

    Raises:
        InvalidInput: no such zone.
    """
    if name is None:
        return local_zone()
    if name.strip().upper() == "UTC":
        return ZoneInfo("UTC")
    try:
        if not name.strip() or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Moscow, America/New_York or UTC"
        ) from None


def local_zone() -> tzinfo:
    """The machine's time zone as an IANA zone when it can be named (``TZ``, ``/etc/localtime``,
    ``/etc/timezone``), else its current fixed offset (also when ``TZ`` holds a POSIX rule such as ``MSK-3``, which
    is what the machine's clock then follows, whatever ``/etc/localtime`` says)."""
    tz_env = os.environ.get("TZ", "").lstrip(":")
    if tz_env:  # TZ decides the machine's zone: an IANA name, else a POSIX rule (MSK-3) that only libc reads
        try:
            if not tz_env.startswith("/"):
                return ZoneInfo(tz_env)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
        return datetime.now().astimezone().tzinfo or UTC
    candidates = []
    try:
        target = os.path.realpath("/etc/localtime")
        if "/zoneinfo/" in target:
            candidates.append(target.split("/zoneinfo/", 1)[1])
    except OSError:
        pass
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text().strip())
    for c in candidates:
        if c and not c.startswith("/"):
            try:
                return ZoneInfo(c)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                continue
    return datetime.now().astimezone().tzinfo or UTC


def zone_name(tz: tzinfo) -> str:
    """``Europe/Moscow`` for a ZoneInfo, else the zone's own name (``UTC``, ``UTC+03:00``)."""
    return getattr(tz, "key", None) or str(tz)


@dataclass(frozen=True, slots=True)
class Clock:
    """Now, and the deployment's time zone. Tests give a fixed ``fixed``; production leaves it None."""

    tz: tzinfo = field(default_factory=local_zone)
    fixed: datetime | None = None

    def now(self) -> datetime:
        return self.fixed if self.fixed is not None else datetime.now(UTC)


def parse_duration(text: str, what: str = "duration") -> timedelta | None:
    """``30d``/``12h``/``90m``/``2w`` as a timedelta; None when ``text`` is not written as a duration.

    Raises:
        InvalidInput: longer than :data:`MAX_DURATION_DAYS` days.
    """
    m = _DURATION.match(text)
    if m is None:
        return None
    n, unit = int(m.group(1)), m.group(2).lower()
    name, minutes = _UNITS[unit]
    if n * minutes > MAX_DURATION_DAYS * 24 * 60:
        raise InvalidInput(
            f"{what} {text.strip()!r} is too long: at most {MAX_DURATION_DAYS} days (10 years); give a date instead"
        )
    return timedelta(**{name: n})


def day_start(d: date, tz: tzinfo) -> datetime:
    """The first instant of day ``d`` in ``tz``, in UTC (where midnight is skipped, the moment the day begins)."""
    return datetime.combine(d, time(0, 0), tzinfo=tz).astimezone(UTC)


def day_end(d: date, tz: tzinfo) -> datetime:
    """The end of day ``d`` in ``tz`` (exclusive: the next day's first instant), in UTC."""
    return day_start(d + timedelta(days=1), tz)


def parse_when(text: str, now: datetime, tz: tzinfo, *, end: bool, what: str = "time") -> datetime:
    """An instant (UTC) from a date, a date and time, or a duration from ``now`` (see the module docstring).

    Args:
        text: what the user typed.
        now: the current instant (aware).
        tz: the deployment's time zone.
        end: the value ends something (an expiry, a window's end): a date means the end of that day.
        what: names the value in errors (``--expires``).

    Raises:
        InvalidInput: unreadable, a non-existent or ambiguous local time, a date out of range, or a duration out
        of bounds.
    """
    t = (text or "").strip()
    if not t:
        raise InvalidInput(f"{what} is empty: use {FORMS}")
    dur = parse_duration(t, what)
    if dur is not None:
        return (now + dur).astimezone(UTC)
    try:
        d = _date_only(t)
        if d is not None:  # every ISO form of a date alone (2026-11-30, 20261130, 2026-W48-1) is a whole day
            return day_end(d, tz) if end else day_start(d, tz)
        dt = datetime.fromisoformat(t.replace(" ", "T", 1) if " " in t and "T" not in t else t)
        if dt.tzinfo is not None:
            return dt.astimezone(UTC)
        return _local(dt, tz, what, t)
    except InvalidInput:
        raise
    except OverflowError:
        raise InvalidInput(f"{what} {t!r} is out of range") from None
    except ValueError:
        raise InvalidInput(f"cannot read {what} {t!r}: use {FORMS}") from None


def _date_only(text: str) -> date | None:
    """The day ``text`` names when it is a date with no time of day (any ISO 8601 form Python reads), else None."""
    if not text.isascii():
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _local(naive: datetime, tz: tzinfo, what: str, text: str) -> datetime:
    """A wall-clock time in ``tz`` as UTC; refused when it does not exist or exists twice there."""
    a = naive.replace(tzinfo=tz, fold=0)
    b = naive.replace(tzinfo=tz, fold=1)
    if a.utcoffset() != b.utcoffset():
        ua, ub = a.astimezone(UTC), b.astimezone(UTC)
        back_a, back_b = ua.astimezone(tz).replace(tzinfo=None), ub.astimezone(tz).replace(tzinfo=None)
        if back_a != naive and back_b != naive:
            raise InvalidInput(
                f"{what} {text!r} does not exist in {zone_name(tz)} (the clocks skip that hour); give another time "
                "or an explicit offset"
            )
        raise InvalidInput(
            f"{what} {text!r} happens twice in {zone_name(tz)} (the clocks go back); add the offset to say which: "
            f"{naive.isoformat(timespec='minutes')}{_offset(a)} or {naive.isoformat(timespec='minutes')}{_offset(b)}"
        )
    return a.astimezone(UTC)


def _offset(dt: datetime) -> str:
    off = dt.utcoffset() or timedelta(0)
    sign = "-" if off < timedelta(0) else "+"
    minutes = abs(int(off.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def describe(dt: datetime, tz: tzinfo, *, end: bool = False) -> str:
    """An instant as people read it in the deployment's zone, with the zone: ``2026-12-01 00:00 MSK
    (Europe/Moscow, UTC+03:00)``; with ``end``, an instant at a day's start reads as the end of the day before:
    ``end of 2026-11-30 (2026-12-01 00:00 MSK, Europe/Moscow, UTC+03:00)``."""
    local = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(tz)
    abbr = local.tzname() or ""
    name = zone_name(tz)
    where = f"{name}, UTC{_offset(local)}"
    stamp = f"{local:%Y-%m-%d %H:%M}" + (f" {abbr}" if abbr and abbr != name else "")
    if end and local.astimezone(UTC) == day_start(local.date(), tz):
        return f"end of {local.date() - timedelta(days=1)} ({stamp}, {where})"
    return f"{stamp} ({where})"


def isoformat_local(dt: datetime | None, tz: tzinfo) -> str | None:
    """ISO 8601 with the zone's offset (``2026-12-01T00:00:00+03:00``), or None."""
    if dt is None:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(tz).isoformat()


def end_of_day_limit(now: datetime, days: int, tz: tzinfo) -> datetime:
    """The latest expiry allowed ``days`` days from ``now``: the end of that day in ``tz`` (so ``--expires`` with
    the last allowed date is accepted as well as a ``365d`` duration)."""
    return day_end((now + timedelta(days=days)).astimezone(tz).date(), tz)
