"""The audit log as the store holds it (``store.audit``): standalone entries, reads, and verification of the keyed
chain, its signed checkpoints and the governed rows it describes (:mod:`metrosight.audit.log`,
:mod:`metrosight.audit.governed`). Entries of changes are written by each repository in the change's own
transaction (:meth:`metrosight.store.uow.UnitOfWork.audit`)."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from metrosight.audit import governed
from metrosight.audit.checkpoint import CheckpointRead
from metrosight.audit.log import KEYED_ACTION, LEGACY_META, AuditLog, VerifyResult, entry_hash, verify
from metrosight.policy.rules import Actor, require
from metrosight.store.exclusive import ExclusiveLock
from metrosight.store.models import AlertRecord, AlertReview, AuditEntry, Meta, Subject, Template, User, Watchlist
from metrosight.store.uow import UnitOfWork


def _cursor_key(channel: str) -> str:
    return f"forwarded:{channel}"[:64]


class AuditRepository:
    """The audit log of one store."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    @property
    def log(self) -> AuditLog:
        """The chain's key, checkpoint file and this process's checkpoint schedule."""
        return self.uow.log

    def record(self, actor: str, action: str, target: str | None, details: dict) -> None:
        """Write a standalone audit entry (e.g. an identify call or a login)."""
        self.uow.record(actor, action, target, details)

    def checkpoint(self) -> None:
        """Sign the newest audit head this process wrote into the checkpoint file (at the end of a command)."""
        self.uow.checkpoint()

    def read_checkpoints(self) -> CheckpointRead | None:
        """What the checkpoint file holds (None: the store keeps none)."""
        return self.uow.log.read_checkpoints()

    def after(self, seq: int, limit: int) -> list[AuditEntry]:
        """The entries with a sequence number above ``seq``, oldest first, at most ``limit`` of them: what an
        outbound forwarder (syslog) has not sent yet. Appends are serialised and commit in ``seq`` order, so what
        this returns is always a gap-free run after ``seq`` (up to a retention purge)."""
        with self.uow.read() as s:
            return list(s.scalars(select(AuditEntry).where(AuditEntry.seq > seq).order_by(AuditEntry.seq).limit(limit)))

    def forwarded(self, channel: str) -> int | None:
        """The last audit sequence number ``channel`` forwarded (its durable cursor); None: it never ran."""
        with self.uow.read() as s:
            row = s.get(Meta, _cursor_key(channel))
        return int(row.value) if row is not None and row.value.isdigit() else None

    def mark_forwarded(self, channel: str, before: int | None, seq: int) -> bool:
        """Move ``channel``'s cursor from ``before`` to ``seq`` (compare-and-set, one short write transaction).
        Returns False, changing nothing, when the stored cursor is no longer ``before`` (another forwarder moved
        it)."""
        with self.uow.write() as s:
            row = s.get(Meta, _cursor_key(channel))
            now = int(row.value) if row is not None and row.value.isdigit() else None
            if now != before:
                return False
            if row is None:
                s.add(Meta(key=_cursor_key(channel), value=str(seq)))
            else:
                row.value = str(seq)
        return True

    def forwarding_lock(self, channel: str) -> ExclusiveLock:
        """The lock that lets one process at a time forward the log to ``channel`` (across processes and hosts
        sharing this database): see :mod:`metrosight.store.exclusive`."""
        return ExclusiveLock(self.uow.engine, f"forward:{channel}")

    def entries(self, actor: Actor | None = None, limit: int | None = None) -> list[AuditEntry]:
        """The log oldest first (only its newest ``limit`` entries, when given). With ``actor``: auditors and
        admins only (Forbidden else)."""
        if actor is not None:
            require(actor, "read the audit log", "auditor", "admin")
        with self.uow.read() as s:
            if not limit:
                return list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
            newest = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)))
        return newest[::-1]  # the newest ``limit`` entries, oldest first, without reading the whole log

    def verify(self) -> VerifyResult:
        """Check the keyed chain against the signed checkpoints (see :func:`metrosight.audit.log.verify`), then
        the governed rows against the keyed log (:meth:`governed_mismatches`)."""
        lg = self.uow.log
        cps = lg.read_checkpoints()
        with self.uow.read() as s:
            users = bool(s.scalar(select(func.count()).select_from(User)))
            legacy = s.get(Meta, LEGACY_META)
        path = str(lg.checkpoints.path) if lg.checkpoints is not None else None
        unkeyed = int(legacy.value) if legacy is not None and legacy.value.isdigit() else None
        entries = self.entries()
        res = verify(entries, lg.key, cps, path, users, unkeyed)
        if not res.ok:
            return res
        problems = self.governed_mismatches(entries)
        if not problems:
            return res
        return VerifyResult(
            False,
            res.checked,
            None,
            f"{len(problems)} governed record(s) not backed by the keyed log (forged or rolled back in the "
            f"database): " + "; ".join(problems[:5]) + ("; …" if len(problems) > 5 else ""),
            res.checkpoints,
            tuple(problems),
        )

    def unbacked_active(self) -> dict[int, str]:
        """Entries stored *active* that the keyed log does not show active (approved by the approver the row
        names, or urgent and unapproved): entry id → why. Reads only the entry, shred and purge entries of the log,
        each checked against the chain key (a forged row does not count), not the whole chain: cheap enough for
        every gallery load (:meth:`metrosight.store.gallery.GalleryRepository.active` leaves these entries out)."""
        key = self.uow.log.key
        with self.uow.read() as s:
            first = s.scalar(select(func.min(AuditEntry.seq)))
            rows = list(
                s.scalars(
                    select(AuditEntry)
                    .where(AuditEntry.action.in_((*governed.ENTRY_LOG_ACTIONS, KEYED_ACTION)))
                    .order_by(AuditEntry.seq)
                )
            )
            active = s.execute(
                select(
                    Subject.id, Watchlist.name, Subject.name, Subject.status, Subject.approved_by, Subject.created_at
                )
                .join(Watchlist, Watchlist.id == Subject.watchlist_id)
                .where(Subject.status == "active")
            ).all()
        if not active:
            return {}
        unkeyed_through = 0  # an installation upgraded from the unkeyed chain: its old links are plain SHA-256
        for e in rows:
            if e.action == KEYED_ACTION and entry_hash(e, key) == e.hash:
                unkeyed_through = int(json.loads(e.details).get("legacy_through", 0))
                break
        good = [e for e in rows if entry_hash(e, key if e.seq > unkeyed_through else None) == e.hash]
        g = governed.replay(good, first_seq=first)
        return dict(governed.entry_mismatches(g, [tuple(r) for r in active]))  # type: ignore[misc]

    def governed_mismatches(self, entries: list[AuditEntry] | None = None) -> list[str]:
        """Stored approvals, revocations, templates (who added them, held or not), alert reviews, alert statuses
        and alarms that the keyed audit log does not back, one line each (see :mod:`metrosight.audit.governed`);
        ``entries``: the verified log (read when None)."""
        g = governed.replay(entries if entries is not None else self.entries())
        with self.uow.read() as s:
            rows = s.execute(
                select(
                    Subject.id, Watchlist.name, Subject.name, Subject.status, Subject.approved_by, Subject.created_at
                )
                .join(Watchlist, Watchlist.id == Subject.watchlist_id)
                .order_by(Subject.id)
            ).all()
            alerts = s.execute(
                select(AlertRecord.id, AlertRecord.status, AlertRecord.created_at).order_by(AlertRecord.id)
            ).all()
            reviews = s.execute(
                select(AlertReview.id, AlertReview.alert_id, AlertReview.user, AlertReview.action).order_by(
                    AlertReview.id
                )
            ).all()
            templates = s.execute(
                select(
                    Template.id,
                    Template.subject_id,
                    Template.added_by,
                    Template.source_sha256,
                    Template.held,
                    Subject.created_at,
                )
                .join(Subject, Subject.id == Template.subject_id)
                .order_by(Template.id)
            ).all()
            alarms = s.execute(
                select(
                    AlertRecord.id,
                    AlertRecord.alarm_state,
                    AlertRecord.owner,
                    AlertRecord.escalated_at,
                    AlertRecord.priority,
                    AlertRecord.escalate_at,
                    AlertRecord.escalate_to,
                    AlertRecord.created_at,
                ).order_by(AlertRecord.id)
            ).all()
        return governed.mismatches(
            g,
            [tuple(r) for r in rows],  # type: ignore[misc]
            [tuple(a) for a in alerts],  # type: ignore[misc]
            [tuple(r) for r in reviews],  # type: ignore[misc]
            [tuple(t) for t in templates],  # type: ignore[misc]
        ) + governed.alarm_mismatches(g, [tuple(a) for a in alarms])  # type: ignore[misc]
