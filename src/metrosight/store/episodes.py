"""Alert episodes in the store: one alert per person per episode, every matching track a sighting of it.

A camera sends one alert per track that matched (a *sighting*, idempotent on its ``event_id``). Here, where alerts
are stored — the single process of ``run``, the node's supervisor, or any of the cluster's store consumers — a
sighting either opens a new alert or is appended to the person's open episode:

- same camera, within ``episode_window_s`` of the episode (a person hidden behind a pillar for a second, whose
  track broke in two): appended, the alert's ``last_seen`` extended;
- a camera of the same group (``cameras[].group``, else its ``line``) within ``group_window_s``: appended (five
  cameras on one platform give one alert, reviewed once by two operators);
- an episode already **rejected**: never extended, the sighting opens a new alert (new evidence gets a fresh
  review; the rejection shows as feedback on it);
- an episode **confirmed once** (one of its two confirmations given): not extended either, the sighting opens a new
  alert — otherwise the second confirmation would make actionable sightings that only its giver ever saw;
- an episode already **actionable** (two confirmations): the sighting is appended, the alert's ``updated_at`` is
  set and the audit entry says the operators were notified (the live feed re-sends the alert).

Time is wall-clock (Unix seconds): the camera stamps each alert with the Unix time of its run's media time 0, so a
sighting's span is ``origin + first_seen … origin + last_seen`` (see :class:`metrosight.config.model.AlertsConfig`).

The merge is atomic under concurrent writers: its first statement updates the person's row (``persons.updated_at``),
which queues every other merge of that person behind it — a row lock on PostgreSQL, the database's write lock on
SQLite — so two cameras' sightings stored at the same moment by two consumers never open two episodes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from metrosight.bus.payloads import AlertV1
from metrosight.core.names import same_identifier
from metrosight.policy.scope import EVERYTHING, View
from metrosight.store.alarms import raise_alarm
from metrosight.store.alert_views import alert_visible
from metrosight.store.db import StoreError
from metrosight.store.models import AlertRecord, Person, Sighting, Subject
from metrosight.store.uow import UnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SightingStored:
    """What storing one sighting did.

    Attributes:
        alert_id: the alert (episode) it belongs to.
        new: False when this ``event_id`` was stored before (a redelivery): nothing was written.
        opened: True when it opened a new alert, False when it was appended to an open one.
        sightings: the alert's sightings now.
        status: the alert's review status (``actionable`` for an appended sighting means operators are notified).
    """

    alert_id: int
    new: bool
    opened: bool
    sightings: int
    status: str


def group_key(camera_id: str, group: str | None) -> str:
    """The episode key of a camera: its group's, or the camera's own when it has none."""
    return f"group:{group}" if group else f"camera:{camera_id}"


def same_group_key(a: str | None, b: str) -> bool:
    """Whether two episode keys name one group (or one camera): the same kind, and names equal by the identifier
    rule (:func:`metrosight.core.names.same_identifier`: ``Red``, ``red`` and Cyrillic ``Rеd`` are one line, as in
    entry scopes)."""
    if a is None:
        return False
    ka, _, va = a.partition(":")
    kb, _, vb = b.partition(":")
    return ka == kb and same_identifier(va, vb)


def _gap(a_first: float, a_last: float, b_first: float, b_last: float) -> float:
    """Seconds between two time spans (0 when they overlap)."""
    return max(0.0, b_first - a_last, a_first - b_last)


class AlertRepository:
    """Alerts and their sightings (``store.alerts``), grouped into episodes per person.

    Args:
        uow: the store's unit of work.
        episode_window_s: a person's match on the same camera this soon after their alert extends it.
        group_window_s: a person's matches on cameras of one group this close in time form one episode.
    """

    def __init__(self, uow: UnitOfWork, episode_window_s: float = 60.0, group_window_s: float = 120.0) -> None:
        self.uow = uow
        self.episode_window_s = episode_window_s
        self.group_window_s = group_window_s

    def save(self, alert: AlertV1, crop_path: str | None) -> bool:
        """Store a sighting once (idempotent on ``alert.event_id``). Returns False if it was already stored."""
        return self.store_sighting(alert, crop_path).new

    def store_sighting(self, alert: AlertV1, crop_path: str | None) -> SightingStored:
        """Store one sighting — the alert as the camera raised it (:class:`~metrosight.bus.payloads.AlertV1`, the
        one alert value from matcher to store; its run is ``alert.run_id``) — opening a new alert for its person or
        appending it to their open episode (see the module docstring), with its audit entry, in one transaction.

        Raises:
            StoreError: the matched entry does not exist (any more), or the database refused the write.
        """
        run_id = alert.run_id
        now = time.time()
        if alert.media_origin is not None:
            first_at, last_at = alert.media_origin + alert.first_seen, alert.media_origin + alert.last_seen
        else:  # no clock from the camera: the time it is stored
            first_at = last_at = now
        key = group_key(alert.camera_id, alert.group)
        try:
            with self.uow.write() as s:
                # first statement: a write on the person's row, so merges of one person queue up (see above)
                person_of_entry = select(Subject.person_id).where(Subject.id == alert.subject_id).scalar_subquery()
                s.execute(update(Person).where(Person.id == person_of_entry).values(updated_at=datetime.now(UTC)))
                person_id = s.scalar(select(Subject.person_id).where(Subject.id == alert.subject_id))
                if person_id is None:
                    raise StoreError(
                        f"cannot store alert {alert.event_id}: entry {alert.subject_id} does not exist (revoked and "
                        "deleted meanwhile?)"
                    )
                known = s.scalar(select(Sighting).where(Sighting.event_id == alert.event_id))
                if known is not None:
                    a = s.get(AlertRecord, known.alert_id)
                    return SightingStored(known.alert_id, False, False, a.sightings if a else 1, a.status if a else "")
                entries = self._entries_json(s, alert)
                episode = self._open_episode(s, person_id, key, alert.camera_id, first_at, last_at)
                sighting = Sighting(
                    event_id=alert.event_id,
                    camera_id=alert.camera_id,
                    track_id=alert.track_id,
                    entry_id=alert.subject_id,
                    watchlist=alert.watchlist,
                    score=alert.score,
                    distance=alert.distance,
                    first_seen=alert.first_seen,
                    last_seen=alert.last_seen,
                    media_origin=alert.media_origin,
                    first_at=first_at,
                    last_at=last_at,
                    samples=alert.samples,
                    crop_path=crop_path,
                    run_id=run_id,
                )
                if episode is None:
                    return self._open(s, alert, sighting, person_id, key, entries, crop_path, run_id)
                return self._append(s, episode, alert, sighting, entries, crop_path, run_id)
        except IntegrityError as exc:
            with self.uow.read() as s:
                known = s.scalar(select(Sighting).where(Sighting.event_id == alert.event_id))
                if known is not None:  # a concurrent writer stored it first
                    a = s.get(AlertRecord, known.alert_id)
                    return SightingStored(known.alert_id, False, False, a.sightings if a else 1, a.status if a else "")
            raise StoreError(f"cannot store alert {alert.event_id}: {exc.orig}") from None

    def _entries_json(self, s: Session, alert: AlertV1) -> list[dict[str, Any]]:
        """Every entry the person was matched on, with its authorisation as stored now."""
        refs = list(alert.entries)
        ids = [e.entry_id for e in refs] or [alert.subject_id]
        rows = {e.id: e for e in s.scalars(select(Subject).where(Subject.id.in_(ids)))}
        names = {e.entry_id: (e.name, e.watchlist, e.category) for e in refs}
        names.setdefault(alert.subject_id, (alert.subject, alert.watchlist, alert.category))
        out = []
        for eid in ids:
            e = rows.get(eid)
            name, wl, cat = names[eid]
            out.append(
                {
                    "entry_id": eid,
                    "name": name,
                    "watchlist": wl,
                    "category": cat,
                    "reference": e.reference if e else None,
                    "authority": e.issuing_authority if e else None,
                    "legal_basis": e.legal_basis if e else None,
                }
            )
        return out

    def _open_episode(
        self, s: Session, person_id: int, key: str, camera_id: str, first_at: float, last_at: float
    ) -> AlertRecord | None:
        """The person's open episode this sighting belongs to, locked, or None."""
        grouped = key.startswith("group:")
        reach = max(self.episode_window_s, self.group_window_s if grouped else 0.0)
        candidates = list(
            s.scalars(
                select(AlertRecord)
                .where(
                    AlertRecord.person_id == person_id,
                    AlertRecord.group_key.startswith(key.split(":", 1)[0] + ":", autoescape=True),
                    # a rejected episode is closed; so is one half-way through its two-person review: a second
                    # confirmation must cover only sightings the first confirmer saw (else one operator alone
                    # would have verified the newer ones), so new evidence opens a new alert with its own review
                    AlertRecord.status.not_in(("rejected", "confirmed_once")),
                    AlertRecord.last_at >= first_at - reach,
                    AlertRecord.first_at <= last_at + reach,
                )
                .order_by(AlertRecord.last_at.desc())
                .with_for_update()
            )
        )
        for a in candidates:
            if not same_group_key(a.group_key, key):
                continue
            a_first, a_last = a.first_at or first_at, a.last_at or last_at  # not NULL: compared in the query
            if grouped and _gap(a_first, a_last, first_at, last_at) <= self.group_window_s:
                return a
            seen = s.execute(
                select(Sighting.camera_id, Sighting.first_at, Sighting.last_at).where(Sighting.alert_id == a.id)
            ).all()
            same_camera = [(f, la) for cam, f, la in seen if same_identifier(cam, camera_id)]
            if any(_gap(f, la, first_at, last_at) <= self.episode_window_s for f, la in same_camera):
                return a
        return None

    def _open(
        self,
        s: Session,
        alert: AlertV1,
        sighting: Sighting,
        person_id: int,
        key: str,
        entries: list[dict],
        crop_path: str | None,
        run_id: int | None,
    ) -> SightingStored:
        a = AlertRecord(
            event_id=alert.event_id,
            camera_id=alert.camera_id,
            track_id=alert.track_id,
            subject_id=alert.subject_id,
            subject_name=alert.person or alert.subject,
            watchlist=alert.watchlist,
            category=alert.category,
            score=alert.score,
            distance=alert.distance,
            first_seen=alert.first_seen,
            last_seen=alert.last_seen,
            samples=alert.samples,
            crop_path=crop_path,
            run_id=run_id,
            person_id=person_id,
            entries=entries,
            group_key=key,
            first_at=sighting.first_at,
            last_at=sighting.last_at,
            sightings=1,
        )
        s.add(a)
        s.flush()
        sighting.alert_id = a.id
        s.add(sighting)
        s.flush()
        self.uow.audit(
            s,
            f"system:{alert.camera_id}",
            "alert.create",
            f"alert:{alert.event_id}",
            {
                "event_id": alert.event_id,
                "alert_id": a.id,
                "entry_id": alert.subject_id,
                "person_id": person_id,
                "watchlist": alert.watchlist,
                "watchlists": sorted({e["watchlist"] for e in entries}),
                "score": round(alert.score, 4),
                "track_id": alert.track_id,
            },
        )
        raise_alarm(self.uow, s, a, alert.group, time.time())  # under its lists' alert policies
        return SightingStored(a.id, True, True, 1, a.status)

    def _append(
        self,
        s: Session,
        a: AlertRecord,
        alert: AlertV1,
        sighting: Sighting,
        entries: list[dict],
        crop_path: str | None,
        run_id: int | None,
    ) -> SightingStored:
        sighting.alert_id = a.id
        s.add(sighting)
        a.sightings = (a.sightings or 1) + 1
        a.first_at = min(a.first_at or sighting.first_at, sighting.first_at)
        a.last_at = max(a.last_at or sighting.last_at, sighting.last_at)
        if a.camera_id == alert.camera_id and a.run_id == run_id:  # the same run's media clock
            a.last_seen = max(a.last_seen, alert.last_seen)
        if alert.score > a.score:
            a.score, a.distance = alert.score, alert.distance
        if a.crop_path is None and crop_path is not None:
            a.crop_path = crop_path
        known = {e["entry_id"] for e in a.entries or []}
        a.entries = list(a.entries or []) + [e for e in entries if e["entry_id"] not in known]
        a.updated_at = datetime.now(UTC)
        s.flush()
        notify = a.status == "actionable"
        self.uow.audit(
            s,
            f"system:{alert.camera_id}",
            "alert.sighting",
            f"alert:{a.id}",
            {
                "alert_id": a.id,
                "event_id": alert.event_id,
                "camera": alert.camera_id,
                "entry_id": alert.subject_id,
                "score": round(alert.score, 4),
                "track_id": alert.track_id,
                "sightings": a.sightings,
                "status": a.status,
                "operators_notified": notify,
            },
        )
        if notify:
            log.warning("alert %d (actionable): %s seen again on %s", a.id, a.subject_name, alert.camera_id)
        return SightingStored(a.id, True, False, a.sightings, a.status)

    def extend(self, event_id: str, last_seen: float) -> None:
        """Move a sighting's ``last_seen`` forward (its track stayed in view after the alert), and its alert's."""
        with self.uow.write() as s:
            # first statement a write (queues behind a merge of the same person, see the module docstring)
            alert_of = select(Sighting.alert_id).where(Sighting.event_id == event_id).scalar_subquery()
            person = select(AlertRecord.person_id).where(AlertRecord.id == alert_of).scalar_subquery()
            s.execute(update(Person).where(Person.id == person).values(updated_at=datetime.now(UTC)))
            sg = s.scalar(select(Sighting).where(Sighting.event_id == event_id).with_for_update())
            if sg is None or sg.last_seen >= last_seen:
                return
            sg.last_seen = last_seen
            sg.last_at = max(sg.last_at, sg.media_origin + last_seen if sg.media_origin is not None else time.time())
            a = s.get(AlertRecord, sg.alert_id, with_for_update=True)
            if a is None:
                return
            a.last_at = max(a.last_at or sg.last_at, sg.last_at)
            if a.camera_id == sg.camera_id and a.run_id == sg.run_id:
                a.last_seen = max(a.last_seen, last_seen)

    def has(self, event_id: str) -> bool:
        """Whether the sighting ``event_id`` is stored (an update that arrives first waits for it)."""
        with self.uow.read() as s:
            return s.scalar(select(Sighting.id).where(Sighting.event_id == event_id)) is not None

    def sightings(self, alert_id: int) -> list[Sighting]:
        """The sightings of an alert, in the order they were seen (metadata only)."""
        with self.uow.read() as s:
            return list(
                s.scalars(
                    select(Sighting).where(Sighting.alert_id == alert_id).order_by(Sighting.first_at, Sighting.id)
                )
            )

    def cameras(self, alert_id: int) -> list[str]:
        """The cameras of an alert's sightings, in the order they first saw the person."""
        return list(dict.fromkeys(sg.camera_id for sg in self.sightings(alert_id)))

    def run_sightings(self, run_id: int) -> list[tuple[str, Sighting]]:
        """Every sighting a run stored, with its alert's person name, in the order seen."""
        with self.uow.read() as s:
            return [
                (name, sg)
                for sg, name in s.execute(
                    select(Sighting, AlertRecord.subject_name)
                    .join(AlertRecord, AlertRecord.id == Sighting.alert_id)
                    .where(Sighting.run_id == run_id)
                    .order_by(Sighting.first_seen, Sighting.id)
                ).all()
            ]

    def all(self, run_id: int | None = None) -> list[AlertRecord]:
        """Every alert (of run ``run_id`` only, when given), oldest first."""
        with self.uow.read() as s:
            q = select(AlertRecord).order_by(AlertRecord.id)
            if run_id is not None:
                q = q.where(AlertRecord.run_id == run_id)
            return list(s.scalars(q))

    def status_counts(self, view: View = EVERYTHING) -> dict[str, int]:
        """How many alerts there are in each status (of those inside ``view``)."""
        with self.uow.read() as s:
            q = select(AlertRecord.status, func.count()).where(alert_visible(view)).group_by(AlertRecord.status)
            rows = s.execute(q)
            return {st: int(n) for st, n in rows}
