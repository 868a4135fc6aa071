"""Retention: deleting what is older than its retention period (alerts and their reviews, crop files, behaviour
events, audit entries), in one audited transaction that records where the audit chain now starts. The webhook
outbox follows the alerts: deliveries about a purged alert are cancelled (body cleared) and every outbox row older
than the alert retention is deleted."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select

from metrosight.audit import governed
from metrosight.policy.rules import Actor, require
from metrosight.store import outbox
from metrosight.store.entries import EntryRepository
from metrosight.store.models import AlertRecord, AuditEntry, EventRecord, Meta, Sighting, Subject
from metrosight.store.uow import UnitOfWork

PURGE_PERMIT = "audit_purge_through"  # meta key the audit_log DELETE trigger reads (migration 0007)


@dataclass(frozen=True, slots=True)
class Retention:
    """Retention periods in days (None: keep)."""

    alerts_days: float | None
    crops_days: float | None
    events_days: float | None
    audit_days: float | None


def _unlink(path: str | None) -> None:
    """Remove a crop or snapshot file (gone already: fine)."""
    if path:
        Path(path).unlink(missing_ok=True)


class RetentionRepository:
    """The retention purge (``store.retention``); expired entries are retired first (``entries``)."""

    def __init__(self, uow: UnitOfWork, entries: EntryRepository) -> None:
        self.uow = uow
        self.entries = entries

    def purge(self, retention: Retention, actor: Actor, now: datetime | None = None) -> dict[str, int]:
        """Delete what is older than its retention period: alerts (and their reviews), crop files, events, and
        audit entries (the purge records where the chain now starts, so verification still holds)."""
        require(actor, "purge old records", "admin")
        now = now or datetime.now(UTC)
        counts = {"alerts": 0, "crops": 0, "events": 0, "audit": 0, "entries_expired": self.entries.expire_due(now)}
        with self.uow.write() as s:
            if retention.crops_days is not None:
                cut = now - timedelta(days=retention.crops_days)
                for a in s.scalars(
                    select(AlertRecord).where(AlertRecord.created_at < cut, AlertRecord.crop_path.is_not(None))
                ):
                    _unlink(a.crop_path)
                    a.crop_path = None
                    counts["crops"] += 1
                for sg in s.scalars(select(Sighting).where(Sighting.created_at < cut, Sighting.crop_path.is_not(None))):
                    _unlink(sg.crop_path)  # the alert's own crop is one of these
                    sg.crop_path = None
            if retention.alerts_days is not None:
                cut = now - timedelta(days=retention.alerts_days)
                old = list(s.scalars(select(AlertRecord).where(AlertRecord.created_at < cut)))
                about = outbox.of_alerts(s, [a.id for a in old])  # read before the alerts go
                counts["webhook_deliveries_cancelled"] = outbox.cancel_concerning(s, about, "alert purged", now)
                counts["webhook_deliveries_purged"] = outbox.purge_older_than(s, cut)
                for a in old:
                    _unlink(a.crop_path)
                    for path in s.scalars(
                        select(Sighting.crop_path).where(Sighting.alert_id == a.id, Sighting.crop_path.is_not(None))
                    ):
                        _unlink(path)
                    s.execute(delete(Sighting).where(Sighting.alert_id == a.id))
                    s.delete(a)
                counts["alerts"] = len(old)
            if retention.events_days is not None:
                cut = now - timedelta(days=retention.events_days)
                counts["events"] = s.execute(delete(EventRecord).where(EventRecord.created_at < cut)).rowcount or 0  # type: ignore[attr-defined]
            details: dict = {"counts": counts, "retention": asdict(retention)}
            action = "purge"
            through: int | None = None
            if retention.audit_days is not None:
                cut_at = (now - timedelta(days=retention.audit_days)).isoformat(timespec="microseconds")
                old_audit = list(s.scalars(select(AuditEntry).where(AuditEntry.at < cut_at).order_by(AuditEntry.seq)))
                if old_audit:
                    last = old_audit[-1]
                    through = last.seq
                    counts["audit"] = len(old_audit)
                    action = "audit.purge"
                    details.update(through_seq=last.seq, through_hash=last.hash)
                    # the purged entries' governed state, carried forward (keyed) for `audit verify`'s cross-check
                    log_now = list(s.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
                    details["governed"] = governed.replay(log_now, upto_seq=last.seq).to_json(
                        s.scalars(select(Subject.id)), s.scalars(select(AlertRecord.id))
                    )
            # appended before the old entries go: it continues the sequence (seq and hash) even when all of them go
            self.uow.audit(s, actor.name, action, None, details)
            if through is not None:
                # the database refuses DELETE on audit_log (migration 0007) except of the oldest entries up to a
                # permit this transaction sets and removes; the purge is audited (above) and checkpointed
                s.add(Meta(key=PURGE_PERMIT, value=str(through)))
                s.flush()
                s.execute(delete(AuditEntry).where(AuditEntry.seq <= through))
                s.execute(delete(Meta).where(Meta.key == PURGE_PERMIT))
                self.uow.log.note_purge(s.info, through, details["through_hash"])
        return counts
