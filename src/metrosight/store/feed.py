"""Incremental reads for live views: alerts and reviews newer than an id, newest behaviour events.

These read rows only; the caller checks the reader's role and records the read in the audit log (the live alert
feed records every batch it delivers, with the alert ids). Every read takes the reader's
:class:`~metrosight.policy.scope.View` (``store.scoping.view(actor, roles)``) and returns only what lies inside it.
"""

from __future__ import annotations

from sqlalchemy import func, select

from metrosight.policy.scope import View
from metrosight.store.alert_views import alert_visible, as_seen, sighting_visible
from metrosight.store.models import AlertRecord, AlertReview, EventRecord, Sighting, Subject
from metrosight.store.scoping import where_camera
from metrosight.store.uow import UnitOfWork


class Feed:
    """Reads for the live views (``store.feed``)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def alerts_after(self, after_id: int, view: View, limit: int = 100) -> list[AlertRecord]:
        """Alerts with ``id > after_id`` inside ``view`` (as seen there), oldest first (at most ``limit``)."""
        with self.uow.read() as s:
            q = select(AlertRecord).where(AlertRecord.id > after_id, alert_visible(view))
            return as_seen(s, list(s.scalars(q.order_by(AlertRecord.id).limit(limit))), view)

    def reviews_after(self, after_id: int, view: View, limit: int = 200) -> list[tuple[AlertReview, str]]:
        """Reviews with ``id > after_id`` of alerts inside ``view``, with the resulting status of their alert,
        oldest first."""
        with self.uow.read() as s:
            rows = s.execute(
                select(AlertReview, AlertRecord.status)
                .join(AlertRecord, AlertRecord.id == AlertReview.alert_id)
                .where(AlertReview.id > after_id, alert_visible(view))
                .order_by(AlertReview.id)
                .limit(limit)
            ).all()
            return [(r, st) for r, st in rows]

    def last_ids(self) -> tuple[int, int]:
        """The newest alert id and review id (0 when none)."""
        with self.uow.read() as s:
            a = s.scalar(select(func.max(AlertRecord.id))) or 0
            r = s.scalar(select(func.max(AlertReview.id))) or 0
        return int(a), int(r)

    def recent_events(
        self, camera_id: str | None = None, kind: str | None = None, limit: int = 100, *, view: View
    ) -> list[EventRecord]:
        """Behaviour events (no identity) of the cameras ``view`` sees, newest first."""
        with self.uow.read() as s:
            q = select(EventRecord).where(where_camera(view, EventRecord.camera_id))
            q = q.order_by(EventRecord.id.desc()).limit(limit)
            if camera_id is not None:
                q = q.where(EventRecord.camera_id == camera_id)
            if kind is not None:
                q = q.where(EventRecord.kind == kind)
            return list(s.scalars(q))

    def event(self, event_row_id: int, view: View) -> EventRecord | None:
        """A behaviour event, None when there is none or its camera is outside ``view``."""
        with self.uow.read() as s:
            e = s.get(EventRecord, event_row_id)
            return e if e is not None and view.camera(e.camera_id) else None

    def latest_event_snapshot(self, camera_id: str, view: View) -> str | None:
        """Path of the newest stored (redacted) event snapshot of a camera ``view`` sees, if any."""
        if not view.camera(camera_id):
            return None
        with self.uow.read() as s:
            return s.scalar(
                select(EventRecord.snapshot_path)
                .where(EventRecord.camera_id == camera_id, EventRecord.snapshot_path.is_not(None))
                .order_by(EventRecord.id.desc())
                .limit(1)
            )

    def entry_references(self, subject_ids: list[int]) -> dict[int, str | None]:
        """The authorisation reference (case or order number) of each entry id."""
        ids = sorted({i for i in subject_ids if i is not None})
        if not ids:
            return {}
        with self.uow.read() as s:
            return dict(s.execute(select(Subject.id, Subject.reference).where(Subject.id.in_(ids))).all())

    def last_sighting_id(self) -> int:
        """The newest sighting id (0 when none)."""
        with self.uow.read() as s:
            return int(s.scalar(select(func.max(Sighting.id))) or 0)

    def appended_after(
        self, after_id: int, alerts_upto: int, view: View, limit: int = 200
    ) -> tuple[int, list[AlertRecord]]:
        """Sightings with ``id > after_id`` appended to alerts already delivered (``id <= alerts_upto``): the newest
        sighting id read and those alerts (each once, oldest first, as seen in ``view``), to re-send with their new
        sighting counts. A sighting outside ``view`` re-sends nothing."""
        with self.uow.read() as s:
            appended, seen = Sighting.event_id != AlertRecord.event_id, sighting_visible(view)
            rows = s.execute(
                select(Sighting.id, Sighting.alert_id, appended, seen)
                .join(AlertRecord, AlertRecord.id == Sighting.alert_id)
                .where(Sighting.id > after_id)
                .order_by(Sighting.id)
                .limit(limit)
            ).all()
            if not rows:
                return after_id, []
            ids = sorted({aid for _, aid, appended, seen in rows if appended and seen and aid <= alerts_upto})
            alerts = (
                list(s.scalars(select(AlertRecord).where(AlertRecord.id.in_(ids)).order_by(AlertRecord.id)))
                if ids
                else []
            )
            return int(rows[-1][0]), as_seen(s, alerts, view)

    def alert_cameras(self, alert_ids: list[int], view: View) -> dict[int, list[str]]:
        """The cameras of each alert's sightings inside ``view``, in the order they first saw the person."""
        if not alert_ids:
            return {}
        out: dict[int, list[str]] = {}
        with self.uow.read() as s:
            for aid, cam in s.execute(
                select(Sighting.alert_id, Sighting.camera_id)
                .where(Sighting.alert_id.in_(sorted(set(alert_ids))), sighting_visible(view))
                .order_by(Sighting.first_at, Sighting.id)
            ):
                if cam not in out.setdefault(aid, []):
                    out[aid].append(cam)
        return out
