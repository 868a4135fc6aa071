"""What the store's repositories raise besides :class:`metrosight.store.db.StoreError`."""

from __future__ import annotations

from metrosight.store.db import StoreError


class NotFound(StoreError):
    """A named watchlist, entry, user, alert or window does not exist."""


class Conflict(StoreError):
    """A name is already taken."""
