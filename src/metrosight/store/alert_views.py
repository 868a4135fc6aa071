"""Alerts as a scoped reader sees them (:mod:`metrosight.store.scoping`).

An alert is an episode whose sightings may lie on cameras of several camera groups (a station whose platforms are
scoped to different operators) and name entries of several watchlists. A reader sees an alert when one of its
sightings is inside their view (its camera, and its watchlist — the list of the entry the sighting matched best);
they then see it *as it is inside their view*: only those sightings, the cameras, times, best score and crop of
those sightings, and only the entries on watchlists they see. An alert wholly inside the view is the stored row
itself; one partly inside is a copy that is never written back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from metrosight.policy.scope import View
from metrosight.store.models import AlertRecord, Sighting
from metrosight.store.scoping import where_visible


def sighting_visible(view: View) -> ColumnElement[bool]:
    """A SQL condition on :class:`Sighting` rows: inside ``view``."""
    return where_visible(view, Sighting.camera_id, Sighting.watchlist)


def alert_visible(view: View) -> ColumnElement[bool]:
    """A SQL condition on :class:`AlertRecord` rows: at least one sighting inside ``view``."""
    if view.everything:
        return sighting_visible(view)  # true()
    return exists(select(Sighting.id).where(Sighting.alert_id == AlertRecord.id, sighting_visible(view)))


def visible_sightings(s: Session, alert_id: int, view: View) -> list[Sighting]:
    """The sightings of an alert inside ``view``, in the order they were seen."""
    return list(
        s.scalars(
            select(Sighting)
            .where(Sighting.alert_id == alert_id, sighting_visible(view))
            .order_by(Sighting.first_at, Sighting.id)
        )
    )


def as_seen(s: Session, alerts: Sequence[AlertRecord], view: View) -> list[AlertRecord]:
    """``alerts`` as the reader of ``view`` sees them (see the module docstring); an alert with no sighting inside
    the view is left out. One query for the visible sightings of all of them."""
    if view.everything or not alerts:
        return list(alerts)
    by_alert: dict[int, list[Sighting]] = {a.id: [] for a in alerts}
    for sg in s.scalars(
        select(Sighting)
        .where(Sighting.alert_id.in_(sorted(by_alert)), sighting_visible(view))
        .order_by(Sighting.first_at, Sighting.id)
    ):
        by_alert[sg.alert_id].append(sg)
    out = []
    for a in alerts:
        seen = _seen(a, by_alert[a.id], view)
        if seen is not None:
            out.append(seen)
    return out


def as_seen_one(s: Session, a: AlertRecord, view: View) -> AlertRecord | None:
    """One alert as the reader of ``view`` sees it, or None when nothing of it is inside the view."""
    if view.everything:
        return a
    return _seen(a, visible_sightings(s, a.id, view), view)


def _seen(a: AlertRecord, vis: list[Sighting], view: View) -> AlertRecord | None:
    """``a`` made of its visible sightings ``vis`` (seen order): itself when all of it is visible."""
    if not vis:
        return None
    entries = [e for e in (a.entries or []) if view.watchlist(e.get("watchlist"))]
    whole = len(vis) == (a.sightings or 1) and len(entries) == len(a.entries or []) and view.watchlist(a.watchlist)
    if whole:
        return a
    return _partial(a, vis, entries)


def _partial(a: AlertRecord, vis: list[Sighting], entries: list[dict[str, Any]]) -> AlertRecord:
    """A detached copy of ``a`` made of its visible sightings ``vis`` (seen order) and ``entries``."""
    c = AlertRecord(**{col.key: getattr(a, col.key) for col in AlertRecord.__table__.columns})
    first, best = vis[0], max(vis, key=lambda sg: sg.score)
    c.camera_id, c.track_id, c.run_id = first.camera_id, first.track_id, first.run_id
    c.first_seen, c.last_seen, c.samples = first.first_seen, first.last_seen, first.samples
    c.first_at, c.last_at = min(sg.first_at for sg in vis), max(sg.last_at for sg in vis)
    c.score, c.distance, c.sightings = best.score, best.distance, len(vis)
    c.crop_path = best.crop_path or next((sg.crop_path for sg in vis if sg.crop_path), None)
    c.entries = entries
    if c.policy_watchlist is not None and not any(e.get("watchlist") == c.policy_watchlist for e in entries):
        c.policy_watchlist = None  # the alarm's policy came from a list outside the scope: not named
    shown = next((e for e in entries if e.get("entry_id") == best.entry_id), entries[0] if entries else None)
    if shown is not None:
        c.watchlist, c.category, c.subject_id = shown["watchlist"], shown.get("category", a.category), shown["entry_id"]
    else:  # no entry list stored: the best visible sighting's list
        c.watchlist, c.subject_id = best.watchlist, best.entry_id
    return c
