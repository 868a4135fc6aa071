"""Repositories: the only code that reads and writes metrosight's tables."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from metrosight.core.types import Alert, Category
from metrosight.recognize.gallery import DIM, GalleryEntry, fuse
from metrosight.store.db import StoreError, session_factory
from metrosight.store.models import AlertRecord, Run, Subject, Template, Watchlist

log = logging.getLogger(__name__)


class NotFound(StoreError):
    """A named watchlist or subject does not exist."""


class Conflict(StoreError):
    """A name is already taken."""


@dataclass(frozen=True, slots=True)
class WatchlistInfo:
    name: str
    category: str
    subjects: int
    templates: int
    created_at: datetime


def encode_descriptor(vec: np.ndarray) -> bytes:
    """128 float32 little-endian bytes."""
    arr = np.asarray(vec, dtype="<f4").reshape(-1)
    if arr.shape != (DIM,):
        raise ValueError(f"descriptor must have {DIM} values, got {arr.shape[0]}")
    return arr.tobytes()


def decode_descriptor(blob: bytes) -> np.ndarray:
    arr = np.frombuffer(blob, dtype="<f4")
    if arr.shape != (DIM,):
        raise StoreError(f"stored descriptor has {arr.shape[0]} values, expected {DIM}")
    return arr.astype(np.float32)


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


class Store:
    """Watchlists, subjects, templates, alerts and runs."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._session = session_factory(engine)

    # -- watchlists -------------------------------------------------------------------------------------------
    def create_watchlist(self, name: str, category: Category, created_by: str | None = None) -> None:
        """Raises Conflict if ``name`` exists."""
        with self._session.begin() as s:
            if s.scalar(select(Watchlist.id).where(Watchlist.name == name)) is not None:
                raise Conflict(f"watchlist {name!r} already exists")
            s.add(Watchlist(name=name, category=str(category), created_by=created_by))

    def watchlist_category(self, name: str) -> Category:
        """Raises NotFound if there is no such watchlist."""
        with self._session() as s:
            cat = s.scalar(select(Watchlist.category).where(Watchlist.name == name))
        if cat is None:
            raise NotFound(f"no watchlist named {name!r}; create it with `metrosight watchlist create {name} --category …`")
        return Category(cat)

    def list_watchlists(self) -> list[WatchlistInfo]:
        with self._session() as s:
            rows = s.execute(
                select(
                    Watchlist.name,
                    Watchlist.category,
                    Watchlist.created_at,
                    func.count(func.distinct(Subject.id)),
                    func.count(Template.id),
                )
                .outerjoin(Subject, Subject.watchlist_id == Watchlist.id)
                .outerjoin(Template, Template.subject_id == Subject.id)
                .group_by(Watchlist.id)
                .order_by(Watchlist.name)
            ).all()
        return [WatchlistInfo(n, c, subj, tpl, created) for n, c, created, subj, tpl in rows]

    # -- enrolment --------------------------------------------------------------------------------------------
    def enroll(
        self,
        watchlist: str,
        subject: str,
        descriptor: np.ndarray,
        model: str,
        source_name: str,
        source_sha256: str,
        quality: float,
        created_by: str | None = None,
    ) -> tuple[int, bool]:
        """Store one template for ``subject`` on ``watchlist`` (creating the entry if new), in one transaction.

        Returns:
            ``(subject_id, duplicate)``: ``duplicate`` is True when this photo (by SHA-256) was already enrolled
            for this subject, in which case nothing is written.

        Raises:
            NotFound: no such watchlist.
        """
        with self._session.begin() as s:
            wl = s.scalar(select(Watchlist).where(Watchlist.name == watchlist))
            if wl is None:
                raise NotFound(f"no watchlist named {watchlist!r}; create it with `metrosight watchlist create`")
            subj = s.scalar(select(Subject).where(Subject.watchlist_id == wl.id, Subject.name == subject))
            if subj is None:
                subj = Subject(watchlist_id=wl.id, name=subject, status="active", created_by=created_by)
                s.add(subj)
                s.flush()
            dup = s.scalar(
                select(Template.id).where(Template.subject_id == subj.id, Template.source_sha256 == source_sha256)
            )
            if dup is not None:
                return subj.id, True
            s.add(
                Template(
                    subject_id=subj.id,
                    descriptor=encode_descriptor(descriptor),
                    model=model,
                    source_name=source_name,
                    source_sha256=source_sha256,
                    quality=float(quality),
                )
            )
            return subj.id, False

    def active_gallery(self, model: str, camera_id: str | None = None, now: datetime | None = None) -> list[GalleryEntry]:
        """Templates of every entry that may be matched now: status active, within its validity window, and (when
        the entry has a camera scope) in scope for ``camera_id``. One fused template per subject."""
        now = now or datetime.now(UTC)
        with self._session() as s:
            rows = s.execute(
                select(Subject, Watchlist.name, Watchlist.category, Template.descriptor)
                .join(Watchlist, Subject.watchlist_id == Watchlist.id)
                .join(Template, Template.subject_id == Subject.id)
                .where(Subject.status == "active", Template.model == model)
                .order_by(Subject.id, Template.id)
            ).all()
        grouped: dict[int, tuple[Subject, str, str, list[np.ndarray]]] = {}
        for subj, wl_name, cat, blob in rows:
            grouped.setdefault(subj.id, (subj, wl_name, cat, []))[3].append(decode_descriptor(blob))
        out = []
        for subj, wl_name, cat, descs in grouped.values():
            vf, exp = _aware(subj.valid_from), _aware(subj.expires_at)
            if (vf is not None and now < vf) or (exp is not None and now >= exp):
                continue
            cams = (subj.scope or {}).get("cameras") if isinstance(subj.scope, dict) else None
            if cams and camera_id is not None and camera_id not in cams:
                continue
            out.append(GalleryEntry(subj.id, subj.name, wl_name, Category(cat), fuse(np.stack(descs))))
        return out

    # -- runs and alerts --------------------------------------------------------------------------------------
    def start_run(self, camera_id: str, source: str) -> int:
        with self._session.begin() as s:
            run = Run(camera_id=camera_id, source=source)
            s.add(run)
            s.flush()
            return run.id

    def finish_run(
        self, run_id: int, status: str, frames: int, faces: int, tracks: int, alerts: int, error: str | None = None
    ) -> None:
        with self._session.begin() as s:
            s.execute(
                update(Run)
                .where(Run.id == run_id)
                .values(
                    status=status,
                    finished_at=datetime.now(UTC),
                    frames=frames,
                    faces=faces,
                    tracks=tracks,
                    alerts=alerts,
                    error=error,
                )
            )

    def save_alert(self, alert: Alert, crop_path: str | None, run_id: int | None = None) -> bool:
        """Store an alert once (idempotent on ``alert.event_id``). Returns False if it was already stored."""
        m = alert.match
        try:
            with self._session.begin() as s:
                if s.scalar(select(AlertRecord.id).where(AlertRecord.event_id == alert.event_id)) is not None:
                    return False
                s.add(
                    AlertRecord(
                        event_id=alert.event_id,
                        camera_id=alert.camera_id,
                        track_id=alert.track_id,
                        subject_id=m.subject_id,
                        subject_name=m.subject_name,
                        watchlist=m.watchlist,
                        category=str(m.category),
                        score=m.score,
                        distance=m.distance,
                        first_seen=alert.first_seen,
                        last_seen=alert.last_seen,
                        samples=alert.samples,
                        crop_path=crop_path,
                        run_id=run_id,
                    )
                )
        except IntegrityError as exc:
            with self._session() as s:
                if s.scalar(select(AlertRecord.id).where(AlertRecord.event_id == alert.event_id)) is not None:
                    return False  # a concurrent writer stored it first
            raise StoreError(f"cannot store alert {alert.event_id}: {exc.orig}") from None
        return True

    def extend_alert(self, event_id: str, last_seen: float) -> None:
        """Move an alert's ``last_seen`` forward (the track stayed in view after the alert)."""
        with self._session.begin() as s:
            s.execute(
                update(AlertRecord)
                .where(AlertRecord.event_id == event_id, AlertRecord.last_seen < last_seen)
                .values(last_seen=last_seen)
            )

    def alerts(self, run_id: int | None = None) -> list[AlertRecord]:
        with self._session() as s:
            q = select(AlertRecord).order_by(AlertRecord.id)
            if run_id is not None:
                q = q.where(AlertRecord.run_id == run_id)
            return list(s.scalars(q))

    def count(self, model: type) -> int:
        try:
            with self._session() as s:
                return int(s.scalar(select(func.count()).select_from(model)) or 0)
        except SQLAlchemyError as exc:
            raise StoreError(str(exc)) from None
