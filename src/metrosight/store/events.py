"""Behaviour events (analytics; no identity): stored once each, ended later, read back."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from metrosight.store.db import StoreError
from metrosight.store.models import EventRecord
from metrosight.store.uow import UnitOfWork


class EventRepository:
    """Behaviour events (``store.events``)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def save(
        self,
        event_id: str,
        camera_id: str,
        kind: str,
        start_ts: float,
        end_ts: float | None = None,
        track_id: int | None = None,
        data: dict | None = None,
        snapshot_path: str | None = None,
        run_id: int | None = None,
    ) -> bool:
        """Store a behaviour event once (idempotent on ``event_id``). Returns False if it was already stored."""
        try:
            with self.uow.write() as s:
                if s.scalar(select(EventRecord.id).where(EventRecord.event_id == event_id)) is not None:
                    return False
                s.add(
                    EventRecord(
                        event_id=event_id,
                        camera_id=camera_id,
                        kind=kind,
                        start_ts=start_ts,
                        end_ts=end_ts,
                        track_id=track_id,
                        data=data or {},
                        snapshot_path=snapshot_path,
                        run_id=run_id,
                    )
                )
        except IntegrityError as exc:
            with self.uow.read() as s:
                if s.scalar(select(EventRecord.id).where(EventRecord.event_id == event_id)) is not None:
                    return False
            raise StoreError(f"cannot store event {event_id}: {exc.orig}") from None
        return True

    def save_many(self, rows: list[dict]) -> int:
        """Store many behaviour events in one transaction, each once (rows whose ``event_id`` is already stored are
        skipped: ``INSERT … ON CONFLICT DO NOTHING``). Each row has :meth:`save`'s arguments as keys. Returns how
        many were new."""
        if not rows:
            return 0
        keys = ("event_id", "camera_id", "kind", "start_ts", "end_ts", "track_id", "data", "snapshot_path", "run_id")
        values = [{k: r.get(k) for k in keys} | {"created_at": datetime.now(UTC)} for r in rows]
        insert = pg_insert if self.uow.dialect == "postgresql" else sqlite_insert
        stmt = (
            insert(EventRecord)
            .values(values)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(EventRecord.id)
        )
        try:
            with self.uow.write() as s:
                return len(s.execute(stmt).all())  # RETURNING lists the inserted rows only
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot store {len(rows)} events: {exc.__class__.__name__}: {exc}") from None

    def end(self, event_id: str, end_ts: float, data: dict | None = None) -> bool:
        """Set an event's end time and merge ``data`` into its fields. Returns False if there is no such event."""
        with self.uow.write() as s:
            rec = s.scalar(select(EventRecord).where(EventRecord.event_id == event_id))
            if rec is None:
                return False
            rec.end_ts = end_ts
            if data:
                rec.data = {**(rec.data or {}), **data}
            return True

    def all(
        self, run_id: int | None = None, camera_id: str | None = None, kind: str | None = None
    ) -> list[EventRecord]:
        """Stored behaviour events (``EventRecord`` rows), oldest first."""
        with self.uow.read() as s:
            q = select(EventRecord).order_by(EventRecord.start_ts, EventRecord.id)
            if run_id is not None:
                q = q.where(EventRecord.run_id == run_id)
            if camera_id is not None:
                q = q.where(EventRecord.camera_id == camera_id)
            if kind is not None:
                q = q.where(EventRecord.kind == kind)
            return list(s.scalars(q))
