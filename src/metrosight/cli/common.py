"""Helpers shared by the command groups: the one-line error exit, refusals turned into it, and the text and JSON
lines that alerts and behaviour events are printed as (``run``, ``demo`` and ``node`` print the same)."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from metrosight.console import SafeConsole, error_line
from metrosight.core.names import InvalidInput
from metrosight.eval.study_io import ConsoleTable, Meter, StudyIO, Tick
from metrosight.policy.crypto import CryptoError
from metrosight.policy.rules import Forbidden, PolicyError
from metrosight.recognize.normalize import CohortError
from metrosight.store.db import StoreError

if TYPE_CHECKING:
    from types import TracebackType

    from metrosight.bus.payloads import AlertV1, EventV1
    from metrosight.config.model import IngestConfig
    from metrosight.pipeline.analytics import AnalyticsStats
    from metrosight.store.episodes import SightingStored

MAX_ID = 2**63 - 1  # database ids: a larger number is refused by the option, not by the database (a traceback)


def fail(message: str, code: int = 2) -> NoReturn:
    """One clear line on stderr (``error: MESSAGE``), then exit with ``code`` (2: bad input; 1: could not do it)."""
    SafeConsole(stderr=True, soft_wrap=True).print(error_line(message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


class governed:  # noqa: N801 - used as a context manager
    """Turns refusals of the policy and the store into one clear error line and a non-zero exit. A permission
    refused to an authenticated user (:class:`~metrosight.policy.rules.Forbidden`) is audited first
    (``cli.denied``: who, which command, why), as the service audits its 403s."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        if exc is not None and isinstance(exc, PolicyError | StoreError | CryptoError | CohortError | InvalidInput):
            if isinstance(exc, Forbidden):
                _audit_denial(exc)
            fail(str(exc))
        return False


def _current_context() -> Any:
    """The command's click context (typer ≥ 0.20 carries its own copy of click; older ones use click)."""
    try:
        from typer._click import globals as found
    except ImportError:  # typer without its own click
        import click as found  # type: ignore[no-redef]
    return found.get_current_context(silent=True)


def _audit_denial(exc: Forbidden) -> None:
    """Record ``cli.denied`` for the command's authenticated user in the store it opened (nothing when the command
    has no authenticated user yet: a refused credential is audited as ``cli.auth_failed``)."""
    ctx = _current_context()
    obj = ctx.find_root().obj if ctx is not None else None
    actor, opened = getattr(obj, "authenticated", None), getattr(obj, "opened", None)
    if ctx is None or actor is None or not opened:
        return
    try:
        opened[-1].store.audit.record(
            actor.name, "cli.denied", ctx.command_path, {"command": ctx.command_path, "reason": str(exc)[:500]}
        )
    except Exception as err:  # noqa: BLE001 - the refusal is still reported; the audit failure is said too
        SafeConsole(stderr=True, soft_wrap=True).print(f"note: the refusal could not be audited: {err}")


def when(dt: datetime | None) -> str:
    """A stored time as ``YYYY-MM-DD HH:MM UTC``, or ``-``."""
    return dt.strftime("%Y-%m-%d %H:%M UTC") if dt else "-"


def command_line() -> str:
    """The command line this process was started with, as ``metrosight ARGS…`` (recorded in reports)."""
    return "metrosight " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""


# -- evaluation studies at the terminal --------------------------------------------------------------------------
class _BarTick:
    def __init__(self, bar: Progress, task: TaskID) -> None:
        self.bar = bar
        self.task = task

    def advance(self, n: float = 1) -> None:
        self.bar.advance(self.task, n)

    def to(self, completed: float) -> None:
        self.bar.update(self.task, completed=completed)


def progress_bars(console: SafeConsole) -> Meter:
    """A :class:`~metrosight.eval.study.Meter` drawing transient progress bars on ``console`` (standard error)."""

    @contextmanager
    def meter(label: str, total: float | None = None) -> Iterator[Tick]:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=True) as bar:
            yield _BarTick(bar, bar.add_task(label, total=total))

    return meter


def study_io(out: SafeConsole, err: SafeConsole) -> StudyIO:
    """How a study talks at the terminal: progress bars on ``err``, lines and tables on ``out``."""

    def say(item: str | ConsoleTable) -> None:
        if isinstance(item, str):
            out.print(item, highlight=False)
            return
        table = Table(*item.columns, title=item.title)
        for row in item.rows:
            table.add_row(*row)
        out.print(table)

    return StudyIO(meter=progress_bars(err), say=say)


# -- alert and event lines ---------------------------------------------------------------------------------------
def episode_text(stored: SightingStored | None) -> str:
    """How an alert was stored: `` → alert 7 (new)`` or `` → alert 7 (sighting 2…)``; empty when not stored."""
    if stored is None:
        return ""
    if stored.opened:
        return f" → alert {stored.alert_id} (new)"
    note = "; actionable: operators notified" if stored.status == "actionable" else ""
    return f" → alert {stored.alert_id} (sighting {stored.sightings}{note})"


def alert_line(a: AlertV1, crop: str | None, stored: SightingStored | None = None) -> str:
    """The ``ALERT …`` line ``run``, ``demo`` and ``node`` print for one alert."""
    lists = ", ".join(dict.fromkeys(e.watchlist for e in a.entries)) or a.watchlist
    return (
        f"ALERT {a.camera_id} track {a.track_id}: {a.subject} [{lists}/{a.category}] score {a.score:.3f} "
        f"seen {a.first_seen:.2f}s–{a.last_seen:.2f}s best shot {crop or '-'}{episode_text(stored)}"
        + (
            "; AMBIGUOUS, also " + ", ".join(f"{c.name} [{c.watchlist}] score {c.score:.3f}" for c in a.candidates)
            if a.candidates
            else ""
        )
    )


def alert_json(a: AlertV1, crop: str | None, stored: SightingStored | None = None) -> str:
    """One alert as the JSON object ``--json`` prints (``"type": "alert"``)."""
    return json.dumps(
        {
            "type": "alert",
            "camera": a.camera_id,
            "subject": a.subject,
            "person_id": a.person_id,
            "watchlist": a.watchlist,
            "watchlists": list(dict.fromkeys(e.watchlist for e in a.entries)) or [a.watchlist],
            "entries": [e.model_dump() for e in a.entries],
            "category": a.category,
            "score": a.score,
            "first_seen": a.first_seen,
            "last_seen": a.last_seen,
            "track_id": a.track_id,
            "best_shot": crop,
            "event_id": a.event_id,
            "alert_id": stored.alert_id if stored is not None else None,
            "episode": None if stored is None else ("new" if stored.opened else "sighting"),
            "sightings": stored.sightings if stored is not None else None,
            "status": stored.status if stored is not None else None,
            "ambiguous": bool(a.candidates),
            "candidates": [c.model_dump() for c in a.candidates],
        }
    )


def event_json(ev: EventV1, snapshot: str | None) -> str:
    """One behaviour event as the JSON object ``run --json`` prints (``"type": "event"``)."""
    return json.dumps(
        {
            "type": "event",
            "camera": ev.camera_id,
            "kind": ev.kind,
            "start": ev.start_ts,
            "end": ev.end_ts,
            "track_id": ev.track_id,
            **dict(ev.data.items()),
            "snapshot": snapshot,
            "event_id": ev.event_id,
        }
    )


def event_line(ev: EventV1, snapshot: str | None) -> str:
    """The ``EVENT …`` line ``run`` prints for one behaviour event."""
    what = ", ".join(f"{k} {v}" for k, v in ev.data.items() if k != "person")
    who = f"track {ev.track_id}" if ev.track_id is not None else "crowd"  # an occupancy alarm: nobody in particular
    return f"EVENT {ev.camera_id} {ev.kind} {who} from {ev.start_ts:.2f}s: {what} snapshot {snapshot or '-'}"


def analytics_summary(stats: AnalyticsStats) -> dict[str, object]:
    """The analytics part of ``run``'s summary: events by kind, line counts, peak occupancy, gating."""
    return {
        "person_tracks": stats.tracks,
        "events": dict(stats.events),
        "crossings": {f"{line}:{d}": n for (line, d), n in sorted(stats.crossings.items())},
        "peak_occupancy": dict(stats.peak_occupancy),
        "detected_frames": stats.detected_frames,
    }


def require_decoder(ingest: IngestConfig) -> None:
    """Stop with one line (exit 2) when ``ingest.decode.hwaccel`` asks for a device this machine cannot open
    (before anything is opened or stored); ``auto`` never stops (it decodes on the CPU)."""
    from metrosight.ingest.hwaccel import decoder_problem  # PyAV: loaded only by the commands that decode

    if (why := decoder_problem(ingest.decode.hwaccel, ingest.decode.hwaccel_device)) is not None:
        fail(why)
