"""Alert reviews and audited reads of alerts: two-person confirmation, rejection with a reason, the detail of an
alert with earlier feedback on the same person, and the export of a crop."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

from sqlalchemy import select

from metrosight.bus.payloads import AlertReviewV1
from metrosight.core.names import free_text, looks_alike
from metrosight.policy.rules import Actor, Forbidden, PolicyError, alert_status, require
from metrosight.store import transitions
from metrosight.store.alert_views import alert_visible, as_seen, as_seen_one, visible_sightings
from metrosight.store.errors import NotFound
from metrosight.store.models import AlertRecord, AlertReview, Sighting
from metrosight.store.scoping import ALERT_READERS, CROP_READERS
from metrosight.store.uow import UnitOfWork
from metrosight.store.watchlists import WatchlistRepository


class ReviewRepository:
    """Reviews of alerts and the audited reads of them (``store.reviews``); crops are decrypted with their
    watchlist's key (``watchlists``). Every read and review is limited to the actor's scope (an alert outside it
    is not found, see :mod:`metrosight.store.alert_views`)."""

    def __init__(self, uow: UnitOfWork, watchlists: WatchlistRepository) -> None:
        self.uow = uow
        self.watchlists = watchlists

    def review(self, alert_id: int, actor: Actor, action: str, reason: str | None = None) -> str:
        """Confirm or reject an alert. Two different operators' confirmations make it *actionable*; one rejection
        (with a reason) makes it *rejected*. Returns the new status.

        Raises:
            Forbidden: not an operator, the same operator confirming twice, or an alert with sightings outside the
            operator's scope (reviewed only by one who sees all of its evidence). NotFound: no such alert in the
            operator's scope. PolicyError: bad action, missing reason, or the alert is already decided.
        """
        require(actor, f"{action} alerts", "operator")
        if action not in ("confirm", "reject"):
            raise PolicyError(f"unknown review action {action!r}: use confirm or reject")
        reason = free_text(reason, "reason") if reason is not None else None
        if action == "reject" and not reason:
            raise PolicyError("a rejection needs a reason (it is kept as feedback)")
        view = self.uow.scoping.view(actor, ("operator",))
        with self.uow.write() as s:
            a = transitions.lock_alert(s, alert_id)
            seen = as_seen_one(s, a, view) if a is not None else None
            if a is None or seen is None:  # outside the operator's scope: as if absent
                raise NotFound(f"no alert {alert_id}")
            if seen is not a:  # two operators must judge the same evidence: all of it
                raise Forbidden(
                    f"alert {alert_id} has sightings outside {actor.name}'s scope; an operator whose scope covers all "
                    "of them must review it"
                )
            prior = transitions.reviews_of(s, alert_id)
            stored = alert_status((r.user, r.action) for r in prior)
            if a.status in transitions.DECIDED_ALERT or stored in transitions.DECIDED_ALERT:
                raise PolicyError(
                    f"alert {alert_id} is already {stored if stored in transitions.DECIDED_ALERT else a.status}"
                )
            if any(looks_alike(r.user, actor.name) for r in prior):  # look-alike names: one person
                raise Forbidden(
                    f"{actor.name} has already reviewed alert {alert_id}: a second, different operator must"
                )
            status = alert_status([*((r.user, r.action) for r in prior), (actor.name, action)])
            event_id, subject, wl = a.event_id, a.subject_name, a.watchlist
            transitions.set_alert_status(s, a, status)
            s.add(AlertReview(alert_id=alert_id, user=actor.name, action=action, reason=reason))
            self.uow.audit(
                s,
                actor.name,
                f"alert.{action}",
                f"alert:{alert_id}",
                {
                    "alert_id": alert_id,
                    "event_id": event_id,
                    "status": status,
                    "reason": reason,
                    "subject": subject,
                    "watchlist": wl,
                },
            )
            return status

    def detail(self, alert_id: int, actor: Actor) -> tuple[AlertRecord, list[AlertReview], list[AlertReview]]:
        """An alert, its reviews, and earlier rejections of alerts of the same person (feedback). Audited read.

        Returns:
            ``(alert, reviews, earlier_rejections)``.
        """
        require(actor, "read alerts", *ALERT_READERS)
        view = self.uow.scoping.view(actor, ALERT_READERS)
        with self.uow.write() as s:
            stored = s.get(AlertRecord, alert_id)
            a = as_seen_one(s, stored, view) if stored is not None else None
            if a is None:
                raise NotFound(f"no alert {alert_id}")
            reviews = list(
                s.scalars(select(AlertReview).where(AlertReview.alert_id == alert_id).order_by(AlertReview.id))
            )
            earlier = list(
                s.scalars(
                    select(AlertReview)
                    .join(AlertRecord, AlertRecord.id == AlertReview.alert_id)
                    .where(
                        AlertReview.action == "reject",
                        (AlertRecord.person_id == a.person_id)
                        if a.person_id is not None
                        else (AlertRecord.subject_id == a.subject_id),
                        AlertRecord.id != a.id,
                        alert_visible(view),
                    )
                    .order_by(AlertReview.at.desc())
                )
            )
            self.uow.audit(s, actor.name, "alert.read", f"alert:{alert_id}", {"alert_id": alert_id})
            return a, reviews, earlier

    def all(self, actor: Actor, status: str | None = None, limit: int = 100) -> list[AlertRecord]:
        """Alerts, newest first (metadata only; no crops). Audited."""
        require(actor, "list alerts", *ALERT_READERS)
        view = self.uow.scoping.view(actor, ALERT_READERS)
        with self.uow.write() as s:
            q = select(AlertRecord).where(alert_visible(view)).order_by(AlertRecord.id.desc()).limit(limit)
            if status:
                q = q.where(AlertRecord.status == status)
            rows = as_seen(s, list(s.scalars(q)), view)
            self.uow.audit(s, actor.name, "alert.list", None, {"status": status, "count": len(rows)})
            return rows

    def sightings(self, alert_id: int, actor: Actor) -> list[Sighting]:
        """The sightings of an alert inside the actor's scope, in the order they were seen (metadata only; the
        read of the alert itself is audited by :meth:`detail`)."""
        require(actor, "read alerts", *ALERT_READERS)
        with self.uow.read() as s:
            return visible_sightings(s, alert_id, self.uow.scoping.view(actor, ALERT_READERS))

    def read_crop(self, alert_id: int, actor: Actor, sighting: int | None = None) -> bytes:
        """The decrypted best-shot JPEG of an alert, or of its ``sighting``-th sighting (1-based, in the order of
        ``sightings`` as the actor sees them) — an export of biometric data; audited. Only crops of sightings
        inside the actor's scope are read.

        Raises:
            NotFound: no alert or sighting, or it has no crop. CryptoError: the watchlist was shredded.
        """
        require(actor, "export alert crops", *CROP_READERS)
        view = self.uow.scoping.view(actor, CROP_READERS)
        with self.uow.read() as s:
            stored = s.get(AlertRecord, alert_id)
            a = as_seen_one(s, stored, view) if stored is not None else None
            if a is None:
                raise NotFound(f"alert {alert_id} has no stored crop")
            rows = visible_sightings(s, alert_id, view)
            if sighting is None:
                path = a.crop_path
                sg = next((r for r in rows if path and r.crop_path == path), None)
                if sg is None and not view.everything:
                    path = None  # the crop of a sighting outside the scope is never read
            else:
                if not 1 <= sighting <= len(rows):
                    raise NotFound(f"alert {alert_id} has {len(rows)} sighting(s), not {sighting}")
                sg = rows[sighting - 1]
                path = sg.crop_path
            if not path:
                raise NotFound(
                    f"alert {alert_id} has no stored crop" + (f" for sighting {sighting}" if sighting else "")
                )
            wl = sg.watchlist if sg is not None else a.watchlist  # the key the crop was sealed with
        data = self.uow.keyring.decrypt(self.watchlists.wrapped_key(wl), Path(path).read_bytes())
        with self.uow.write() as s:
            self.uow.audit(
                s, actor.name, "alert.export_crop", f"alert:{alert_id}", {"alert_id": alert_id, "sighting": sighting}
            )
        return data

    def announcement(self, alert_id: int, reviewer: str) -> AlertReviewV1 | None:
        """The bus payload of ``reviewer``'s review of alert ``alert_id`` (for the outbound channels; read after
        :meth:`review` returned), or None when there is no such review."""
        with self.uow.read() as s:
            r = s.scalar(select(AlertReview).where(AlertReview.alert_id == alert_id, AlertReview.user == reviewer))
            a = s.get(AlertRecord, alert_id)
            if r is None or a is None:
                return None
            kind, _, name = (a.group_key or "").partition(":")
            at = r.at if r.at.tzinfo is not None else r.at.replace(tzinfo=UTC)
            return AlertReviewV1(
                event_id=f"review:{alert_id}:{r.user}",
                alert_id=alert_id,
                alert_event_id=a.event_id,
                action="reject" if r.action == "reject" else "confirm",
                reviewer=r.user,
                reason=r.reason,
                status=a.status,
                at=round(at.timestamp(), 3),
                camera_id=a.camera_id,
                group=name if kind == "group" else None,
                subject=a.subject_name,
                person_id=a.person_id,
                watchlist=a.watchlist,
                watchlists=tuple(dict.fromkeys(e["watchlist"] for e in a.entries or [])) or (a.watchlist,),
                category=a.category,
            )
