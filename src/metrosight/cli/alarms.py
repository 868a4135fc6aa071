"""How the command line shows alarms and alert policies (``alert list|show|claim|…``, ``watchlist policy``)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final

from metrosight.policy.alarms import AlarmPolicy
from metrosight.store.models import AlarmTransition, AlertRecord

STEP_WORDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "raise": "raised",
        "claim": "claimed",
        "release": "released",
        "takeover": "taken over",
        "acknowledge": "acknowledged",
        "escalate": "escalated",
    }
)


def duration(seconds: float) -> str:
    """``1h02m``, ``4m05s``, ``12s``."""
    s = max(0, round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def alarm_cell(a: AlertRecord, now: float | None = None) -> str:
    """An alert's alarm in a few words: ``critical, claimed by olga, escalates to admin in 4m05s`` (``-``: none)."""
    if a.alarm_state is None:
        return "-"
    now = time.time() if now is None else now
    parts = [a.priority or "normal", f"claimed by {a.owner}" if a.alarm_state == "claimed" else a.alarm_state]
    if a.alarm_state == "acknowledged" and a.owner:
        parts[-1] = f"acknowledged by {a.owner}"
    if a.escalated_at is not None:
        parts.append(f"ESCALATED to {a.escalate_to}")
    elif a.escalate_at is not None and a.alarm_state != "acknowledged" and a.status != "rejected":
        parts.append(f"escalates to {a.escalate_to} in {duration(a.escalate_at - now)}")
    return ", ".join(parts)


def step_line(t: AlarmTransition) -> str:
    """One step of an alarm: ``claimed by olga at 12:03:04 UTC`` (with the previous owner and reason of a
    take-over)."""
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t.at))
    line = f"{STEP_WORDS.get(t.action, t.action)} by {t.actor} at {at} UTC"
    if t.action == "takeover":
        line += f" from {t.previous_owner}: {t.reason}"
    return line


def policy_cells(p: AlarmPolicy) -> Sequence[str]:
    """priority, colour, acknowledgement, groups, escalation — for a table row."""
    esc = f"after {duration(p.escalate_after_s)} to {p.escalate_to}" if p.escalate_after_s else "never"
    return (
        p.priority,
        p.shown_colour,
        "required" if p.ack_required else "optional",
        ", ".join(p.groups) or "all cameras",
        esc,
    )
