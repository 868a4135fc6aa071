"""How an evaluation study talks to whoever runs it — progress bars, the lines and tables it prints, the one-line
error it stops with — and where it wrote its report. Light on purpose: the command line imports it at start-up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class EvalError(ValueError):
    """An evaluation cannot run as asked (bad data, options that do not fit together); the message says what to
    change, in one line."""


class Tick(Protocol):
    """One progress bar: advanced by a number of items, or set to a position (media seconds)."""

    def advance(self, n: float = 1) -> None: ...

    def to(self, completed: float) -> None: ...


class Meter(Protocol):
    """Starts a progress bar for one step: ``with meter("gallery", total=40) as tick: …`` (``total`` None when
    unknown, e.g. seconds of a video)."""

    def __call__(self, label: str, total: float | None = None) -> AbstractContextManager[Tick]: ...


class _NoTick:
    def advance(self, n: float = 1) -> None:
        return None

    def to(self, completed: float) -> None:
        return None


@contextmanager
def no_progress(label: str, total: float | None = None) -> Iterator[Tick]:
    """A :class:`Meter` that shows nothing (tests, scripts)."""
    yield _NoTick()


@dataclass(frozen=True)
class ConsoleTable:
    """A table for the terminal: ``columns`` headers, ``rows`` of cell text, an optional ``title``."""

    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    title: str | None = None


#: what a study prints as it goes: a line of text or a table
Say = Callable[[str | ConsoleTable], None]


def _silent(_item: str | ConsoleTable) -> None:
    return None


@dataclass(frozen=True)
class StudyIO:
    """How a study talks to the person running it: ``meter`` shows progress (on stderr at the CLI), ``say``
    prints results and notes in order (stdout)."""

    meter: Meter = no_progress
    say: Say = _silent


@dataclass(frozen=True)
class Written:
    """Where a study wrote its report."""

    html: Path
    json: Path

    def lines(self) -> str:
        return f"report: {self.html}\njson:   {self.json}"
