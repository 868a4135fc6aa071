"""What the evaluation studies (``metrosight eval …`` and ``metrosight calibrate``) share: the error they stop
with, how they report progress and what they print, the report file's name, and the encoding and cohort steps.

A study is a function taking a typed options value and a :class:`StudyIO`; it writes its HTML/JSON report and
returns what it measured. The command line only turns options into that value and the I/O into a terminal's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.core.names import InvalidInput, identifier
from metrosight.eval.calibrate import build_cohort, photo_files
from metrosight.eval.extract import Encoder, FaceRecord, encode_all, metrosight_encoder
from metrosight.eval.provenance import provenance
from metrosight.eval.report import Report
from metrosight.recognize.normalize import Cohort, CohortError


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


def report_stem(kind: str, name: str | None) -> str:
    """The report's file stem: ``name`` under the camera id rule (no ``/``, no leading ``.``: the report stays in
    its folder), else ``KIND-<UTC time>``.

    Raises:
        EvalError: ``name`` breaks the rule.
    """
    if name is None:
        return f"{kind}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
    try:
        return identifier(name, "--name")
    except InvalidInput as exc:
        raise EvalError(str(exc)) from exc


def report_dir(out_dir: Path | None, home: Home) -> Path:
    """``out_dir``, else ``<home>/reports``."""
    return Path(out_dir) if out_dir is not None else home.root / "reports"


def add_provenance(
    report: Report, settings: Settings, measured: Sequence[Path], fddb_folds: Sequence[int] = ()
) -> None:
    """A report section (and ``data["provenance"]``) saying which data chose the settings, which measured them."""
    prov = provenance(settings, measured, fddb_folds)
    report.section("Which data chose the settings, which data measured them").notes.extend(prov["notes"])
    report.data["provenance"] = prov


def pct(x: float) -> str:
    """A share as ``12.3%``."""
    return f"{100 * x:.1f}%"


def encode(
    io: StudyIO, items: Sequence[tuple[Path, str]], encoder: Encoder, cache: Path | None, label: str
) -> list[FaceRecord]:
    """:func:`metrosight.eval.extract.encode_all` with a progress bar."""
    with io.meter(label, total=len(items)) as tick:
        return encode_all(items, encoder, cache, on_progress=tick.advance)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def load_cohort(io: StudyIO, path: Path, settings: Settings, home: Home, exclude: Sequence[Path] = ()) -> Cohort:
    """A cohort from a ``.npz`` written by ``metrosight calibrate --cohort`` or from a folder of photos (every usable
    face). Photos identical (by content) to any of ``exclude`` are refused: the background set must share no photo
    with the gallery or the probes it is scored on.

    Raises:
        EvalError: not a cohort file or a folder of photos; no photos; photos shared with ``exclude``; no face.
    """
    if path.is_file() and path.suffix == ".npz":
        try:
            return Cohort.load(path)
        except CohortError as exc:
            raise EvalError(str(exc)) from exc
    if not path.is_dir():
        raise EvalError(f"--cohort {path}: neither a folder of photos nor a cohort .npz file")
    photos = photo_files(path)
    if not photos:
        raise EvalError(f"--cohort {path}: no photos found")
    if exclude:
        banned = {_sha(p) for p in exclude}
        clash = [p for p in photos if _sha(p) in banned]
        if clash:
            raise EvalError(
                f"--cohort shares {len(clash)} photo(s) with the evaluated set (e.g. {clash[0]}); use disjoint data"
            )
    enc = metrosight_encoder(settings, home, flip=True)
    with io.meter("cohort faces", total=len(photos)) as tick:
        try:
            return build_cohort(photos, enc, on_progress=tick.advance)
        except CohortError as exc:
            raise EvalError(str(exc)) from exc
