"""The gallery version: bumped by every change to what may be matched (entries, templates, keys, windows,
persons), so that running cameras reload their gallery."""

from __future__ import annotations

from sqlalchemy.orm import Session

from metrosight.store.models import Meta

KEY = "gallery_version"


def bump(s: Session) -> None:
    """Inside the change's write transaction ``s``."""
    row = s.get(Meta, KEY)
    if row is None:
        s.add(Meta(key=KEY, value="1"))
    else:
        row.value = str(int(row.value) + 1)


def current(s: Session) -> int:
    row = s.get(Meta, KEY)
    return int(row.value) if row else 0
