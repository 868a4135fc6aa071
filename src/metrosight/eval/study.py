"""What the evaluation studies (``metrosight eval …`` and ``metrosight calibrate``) share: the report file's name
and folder, the provenance section, and the encoding and cohort steps.

A study is a function taking a typed options value and a :class:`~metrosight.eval.study_io.StudyIO`; it writes its
HTML/JSON report and returns what it measured. The command line only turns options into that value and the I/O
into a terminal's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.core.names import InvalidInput, identifier
from metrosight.eval.calibrate import build_cohort, photo_files
from metrosight.eval.extract import Encoder, FaceRecord, encode_all, metrosight_encoder
from metrosight.eval.provenance import provenance
from metrosight.eval.report import Report
from metrosight.eval.study_io import EvalError, StudyIO
from metrosight.recognize.normalize import Cohort, CohortError


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
