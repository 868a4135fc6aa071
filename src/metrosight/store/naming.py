"""Finding rows by the names people type, and refusing look-alike new names (rules: :mod:`metrosight.core.names`).

Names are stored normalised (NFC, trimmed, whitespace collapsed). Rows written before that rule may hold another
form (e.g. NFD from a macOS folder); lookups find them too: an exact match first, then a comparison of normalised
forms.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from metrosight.core.names import find_lookalike, human_name, same_name


def find_named(s: Session, model: Any, name: str, *where: Any) -> Any | None:
    """The row of ``model`` (which has a ``name`` column) called ``name`` once both are normalised, among the rows
    matching ``where``; None if there is none."""
    if "\x00" in name:  # no stored name holds one (PostgreSQL cannot): not found, on either store
        return None
    row = s.scalar(select(model).where(model.name == name, *where))
    if row is not None:
        return row
    try:
        typed = human_name(name)
    except ValueError:
        return None
    row = s.scalar(select(model).where(model.name == typed, *where))
    if row is not None:
        return row
    return next((r for r in s.scalars(select(model).where(*where)) if same_name(r.name, typed)), None)


def lookalike_message(s: Session, model: Any, name: str, what: str, *where: Any) -> str | None:
    """Why ``name`` may not be used as a new ``what`` (``entry``, ``user``, ``watchlist``): a row of ``model``
    (among ``where``) has a name that looks like it without being it. None when there is none."""
    other = find_lookalike(name, s.scalars(select(model.name).where(*where)))
    if other is None:
        return None
    return (
        f"{what} {name!r} looks like the existing {what} {other!r} (the same up to case, Unicode form or look-alike "
        f"letters of another script); use {other!r}, or a name that cannot be mistaken for it"
    )
