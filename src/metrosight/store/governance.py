"""Accountability in the store: users, entry approval/revocation/expiry, alert review, no-identification windows,
retention purge and the audit log. Every change here is written with its audit entry in one transaction."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from metrosight.audit import governed
from metrosight.audit.log import VerifyResult, verify
from metrosight.core.names import free_text, human_name, identifiers, looks_alike
from metrosight.policy.crypto import CryptoError
from metrosight.policy.rules import (
    Actor,
    Forbidden,
    PolicyError,
    alert_status,
    aware,
    can_approve,
    check_roles,
    in_scope,
    require,
)
from metrosight.store import transitions
from metrosight.store.db import StoreError
from metrosight.store.models import (
    AlertRecord,
    AlertReview,
    AuditEntry,
    EventRecord,
    Meta,
    NoIdWindow,
    Sighting,
    Subject,
    Template,
    User,
    Watchlist,
    WatchlistKey,
)
from metrosight.store.naming import find_named, lookalike_message

if TYPE_CHECKING:
    from metrosight.audit.log import AuditLog
    from metrosight.policy.crypto import KeyRing
    from metrosight.store.uow import UnitOfWork

log = logging.getLogger(__name__)

SYSTEM = "system"
PURGE_PERMIT = "audit_purge_through"  # meta key the audit_log DELETE trigger reads (migration 0007)


class NotFound(StoreError):
    """A named watchlist, entry, user, alert or window does not exist."""


class Conflict(StoreError):
    """A name is already taken."""


@dataclass(frozen=True, slots=True)
class EntryInfo:
    id: int
    watchlist: str
    name: str
    status: str
    urgent: bool
    legal_basis: str | None
    authority: str | None
    reference: str | None
    scope: dict | None
    expires_at: datetime | None
    created_by: str | None
    approved_by: str | None
    templates: int
    person_id: int | None = None


@dataclass(frozen=True, slots=True)
class Retention:
    """Retention periods in days (None: keep)."""

    alerts_days: float | None
    crops_days: float | None
    events_days: float | None
    audit_days: float | None


def user_actor(u: User) -> Actor:
    """The acting person of a user row: their roles, or none while a password set by somebody else (an admin's
    reset) is theirs (see :attr:`Actor.password_set_by`)."""
    by = u.password_set_by if u.password_set_by not in (None, u.name) else None
    return Actor(u.name, frozenset(u.roles), by)


class GovernanceMixin:
    """Mixed into :class:`metrosight.store.repo.Store` (which provides the session factory, audit and keyring)."""

    uow: UnitOfWork
    audit: AuditLog
    keyring: KeyRing

    # -- users ------------------------------------------------------------------------------------------------
    def actor(self, name: str | None) -> Actor:
        """The acting user. Raises PolicyError for no name, NotFound for an unknown or disabled user."""
        if not name:
            raise PolicyError("this action needs a user: pass --as USER (create users with `metrosight user add`)")
        with self.uow.read() as s:
            u = find_named(s, User, name)
        if u is None or u.disabled:
            raise NotFound(f"unknown user {name!r}")
        return user_actor(u)

    def user_count(self) -> int:
        with self.uow.read() as s:
            return int(s.scalar(select(func.count()).select_from(User)) or 0)

    def add_user(self, name: str, roles: list[str], actor: Actor | None, password_hash: str | None = None) -> None:
        """Create a user. The first user may be created without an actor (and must be an admin); later ones need
        an admin."""
        roles = check_roles(roles)
        name = human_name(name, "user name")
        with self.uow.write() as s:
            first = (s.scalar(select(func.count()).select_from(User)) or 0) == 0
            if actor is None:
                if not first:
                    raise PolicyError("users exist already: an admin must add new ones (--as ADMIN)")
                if "admin" not in roles:
                    raise PolicyError("the first user must have the admin role")
                by = name
            else:
                require(actor, "add users", "admin")
                by = actor.name
            if find_named(s, User, name) is not None:
                raise Conflict(f"user {name!r} already exists")
            if (why := lookalike_message(s, User, name, "user")) is not None:
                raise Conflict(why)
            s.add(User(name=name, roles=roles, created_by=by, password_hash=password_hash))
            self.uow.audit(s, by, "user.add", name, {"roles": roles})

    def list_users(self) -> list[tuple[str, list[str], bool]]:
        with self.uow.read() as s:
            return [(u.name, list(u.roles), u.disabled) for u in s.scalars(select(User).order_by(User.name))]

    # -- gallery version --------------------------------------------------------------------------------------
    def _bump(self, s: Session) -> None:
        row = s.get(Meta, "gallery_version")
        if row is None:
            s.add(Meta(key="gallery_version", value="1"))
        else:
            row.value = str(int(row.value) + 1)

    def gallery_version(self) -> int:
        """Bumped by every change to what may be matched (entries, templates, keys, windows)."""
        with self.uow.read() as s:
            row = s.get(Meta, "gallery_version")
            return int(row.value) if row else 0

    # -- entries ----------------------------------------------------------------------------------------------
    def _entry(self, s: Session, watchlist: str, name: str) -> Subject:
        """The entry ``name`` on ``watchlist``, both found by their normalised names (NFC, trimmed)."""
        wl = find_named(s, Watchlist, watchlist)
        subj = find_named(s, Subject, name, Subject.watchlist_id == wl.id) if wl is not None else None
        if subj is None:
            raise NotFound(f"no entry {name!r} on watchlist {watchlist!r}")
        return subj

    def entries(self, watchlist: str | None = None) -> list[EntryInfo]:
        with self.uow.read() as s:
            q = (
                select(Subject, Watchlist.name, func.count(Template.id))
                .join(Watchlist, Subject.watchlist_id == Watchlist.id)
                .outerjoin(Template, Template.subject_id == Subject.id)
                .group_by(Subject.id, Watchlist.name)
                .order_by(Watchlist.name, Subject.name)
            )
            if watchlist is not None:
                wl = find_named(s, Watchlist, watchlist)
                q = q.where(Watchlist.id == (wl.id if wl is not None else -1))
            return [
                EntryInfo(
                    e.id,
                    wl,
                    e.name,
                    e.status,
                    e.urgent,
                    e.legal_basis,
                    e.issuing_authority,
                    e.reference,
                    e.scope,
                    aware(e.expires_at),
                    e.created_by,
                    e.approved_by,
                    n,
                    e.person_id,
                )
                for e, wl, n in s.execute(q).all()
            ]

    def approve(self, watchlist: str, name: str, actor: Actor, now: datetime | None = None) -> str:
        """Activate a pending entry (or confirm an urgent one, lifting its 24 h limit, and releasing templates held
        until approval). Returns the new status. An atomic transition (:mod:`metrosight.store.transitions`).

        Raises:
            Forbidden: not an approver, or the approver recorded the entry or added one of its templates.
            PolicyError: nothing to approve, it expired meanwhile, or it changed under the approval (``Changed``).
        """
        now = now or datetime.now(UTC)
        self.expire_due(now)
        with self.uow.write() as s:
            e = transitions.lock_entry(s, self._entry(s, watchlist, name).id)
            watchlist, name = s.get(Watchlist, e.watchlist_id).name, e.name  # as stored, for the audit entry
            can_approve(actor, e.created_by, e.status, e.urgent, e.approved_by, transitions.contributors(s, e))
            expires_at = e.requested_expires_at if e.urgent and e.requested_expires_at is not None else e.expires_at
            entry_id = e.id
            transitions.set_entry(
                s,
                e,
                e.status,
                Subject.expires_at.is_(None) | (Subject.expires_at > now),
                status="active",
                approved_by=actor.name,
                approved_at=now,
                expires_at=expires_at,
            )
            released = transitions.release_templates(s, entry_id)
            self.uow.audit(
                s,
                actor.name,
                "entry.approve",
                f"{watchlist}/{name}",
                {
                    "entry_id": entry_id,
                    "expires_at": aware(expires_at).isoformat() if expires_at else None,
                    **({"templates_released": released} if released else {}),
                },
            )
            self._bump(s)
            return "active"

    def _destroy_templates(self, s: Session, entry_id: int) -> int:
        return s.execute(delete(Template).where(Template.subject_id == entry_id)).rowcount or 0

    def revoke(self, watchlist: str, name: str, actor: Actor, reason: str) -> int:
        """Stop matching an entry at once and destroy its templates. Returns how many templates were destroyed."""
        require(actor, "revoke watchlist entries", "approver", "admin")
        reason = free_text(reason, "reason")
        if not reason:
            raise PolicyError("a revocation needs a reason")
        with self.uow.write() as s:
            e = transitions.lock_entry(s, self._entry(s, watchlist, name).id)
            watchlist, name = s.get(Watchlist, e.watchlist_id).name, e.name  # as stored, for the audit entry
            if e.status in transitions.TERMINAL_ENTRY:
                raise PolicyError(f"entry {watchlist}/{name} is already {e.status}")
            entry_id = e.id
            transitions.set_entry(
                s,
                e,
                e.status,
                status="revoked",
                revoked_at=datetime.now(UTC),
                revoked_by=actor.name,
                revoke_reason=reason,
            )
            n = self._destroy_templates(s, entry_id)
            self.uow.audit(
                s,
                actor.name,
                "entry.revoke",
                f"{watchlist}/{name}",
                {"entry_id": entry_id, "reason": reason, "templates_destroyed": n},
            )
            self._bump(s)
            return n

    def expire_due(self, now: datetime | None = None) -> int:
        """Retire entries whose expiry has passed: status expired, templates destroyed. Returns how many."""
        now = now or datetime.now(UTC)
        with self.uow.read() as s:
            due = list(
                s.scalars(
                    select(Subject.id)
                    .where(
                        Subject.status.in_(("pending", "active")),
                        Subject.expires_at.is_not(None),
                        Subject.expires_at <= now,
                    )
                    .order_by(Subject.id)
                )
            )
        if not due:
            return 0
        done = 0
        with self.uow.write() as s:
            for eid in due:
                e = transitions.locked(s, Subject, eid)  # workers expire concurrently: one of them does it
                if e is None or e.status not in transitions.LIVE_ENTRY or aware(e.expires_at) > now:  # type: ignore[operator]
                    continue  # already retired, or approved meanwhile with a later expiry
                expired_at, urgent_unapproved = aware(e.expires_at), bool(e.urgent and e.approved_by is None)
                transitions.set_entry(s, e, e.status, Subject.expires_at <= now, status="expired")
                n = self._destroy_templates(s, eid)
                self.uow.audit(
                    s,
                    SYSTEM,
                    "entry.expire",
                    f"entry:{eid}",
                    {
                        "entry_id": eid,
                        "expired_at": expired_at.isoformat(),
                        "templates_destroyed": n,  # type: ignore[union-attr]
                        "urgent_unapproved": urgent_unapproved,
                    },
                )
                done += 1
            if done:
                self._bump(s)
        return done

    def shred_watchlist(self, watchlist: str, actor: Actor) -> None:
        """Destroy a watchlist's key (crypto-shredding) and its templates; its entries end as revoked."""
        require(actor, "shred watchlists", "admin")
        with self.uow.write() as s:
            wl = find_named(s, Watchlist, watchlist)
            if wl is None:
                raise NotFound(f"no watchlist named {watchlist!r}")
            s.execute(delete(WatchlistKey).where(WatchlistKey.watchlist_id == wl.id))
            n = 0
            for e in s.scalars(select(Subject).where(Subject.watchlist_id == wl.id)):
                n += self._destroy_templates(s, e.id)
                if e.status in ("pending", "active"):
                    e.status, e.revoked_at, e.revoked_by, e.revoke_reason = (
                        "revoked",
                        datetime.now(UTC),
                        actor.name,
                        "watchlist shredded",
                    )
            self.uow.audit(s, actor.name, "watchlist.shred", watchlist, {"templates_destroyed": n})
            self._bump(s)

    def wrapped_key(self, watchlist: str) -> bytes | None:
        with self.uow.read() as s:
            wl = find_named(s, Watchlist, watchlist)
            return s.scalar(select(WatchlistKey.wrapped_key).where(WatchlistKey.watchlist_id == wl.id)) if wl else None

    def encrypt_for(self, watchlist: str, data: bytes) -> bytes:
        """Encrypt ``data`` (e.g. a crop) with the watchlist's key. Raises CryptoError if the key is destroyed."""
        key = self.wrapped_key(watchlist)
        if key is None:
            raise CryptoError(f"watchlist {watchlist!r} has no key (shredded)")
        return self.keyring.encrypt(key, data)

    # -- alerts: review and reads -----------------------------------------------------------------------------
    def review(self, alert_id: int, actor: Actor, action: str, reason: str | None = None) -> str:
        """Confirm or reject an alert. Two different operators' confirmations make it *actionable*; one rejection
        (with a reason) makes it *rejected*. Returns the new status.

        Raises:
            Forbidden: not an operator, or the same operator confirming twice. PolicyError: bad action, missing
            reason, or the alert is already decided.
        """
        require(actor, f"{action} alerts", "operator")
        if action not in ("confirm", "reject"):
            raise PolicyError(f"unknown review action {action!r}: use confirm or reject")
        reason = free_text(reason, "reason") if reason is not None else None
        if action == "reject" and not reason:
            raise PolicyError("a rejection needs a reason (it is kept as feedback)")
        with self.uow.write() as s:
            a = transitions.lock_alert(s, alert_id)
            if a is None:
                raise NotFound(f"no alert {alert_id}")
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

    def alert_detail(self, alert_id: int, actor: Actor) -> tuple[AlertRecord, list[AlertReview], list[AlertReview]]:
        """An alert, its reviews, and earlier rejections of alerts of the same person (feedback). Audited read.

        Returns:
            ``(alert, reviews, earlier_rejections)``.
        """
        require(actor, "read alerts", "operator", "admin", "auditor")
        with self.uow.write() as s:
            a = s.get(AlertRecord, alert_id)
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
                    )
                    .order_by(AlertReview.at.desc())
                )
            )
            self.uow.audit(s, actor.name, "alert.read", f"alert:{alert_id}", {"alert_id": alert_id})
            return a, reviews, earlier

    def list_alerts(self, actor: Actor, status: str | None = None, limit: int = 100) -> list[AlertRecord]:
        """Alerts, newest first (metadata only; no crops). Audited."""
        require(actor, "list alerts", "operator", "admin", "auditor")
        with self.uow.write() as s:
            q = select(AlertRecord).order_by(AlertRecord.id.desc()).limit(limit)
            if status:
                q = q.where(AlertRecord.status == status)
            rows = list(s.scalars(q))
            self.uow.audit(s, actor.name, "alert.list", None, {"status": status, "count": len(rows)})
            return rows

    def read_crop(self, alert_id: int, actor: Actor, sighting: int | None = None) -> bytes:
        """The decrypted best-shot JPEG of an alert, or of its ``sighting``-th sighting (1-based, in the order of
        ``sightings``) — an export of biometric data; audited.

        Raises:
            NotFound: no alert or sighting, or it has no crop. CryptoError: the watchlist was shredded.
        """
        require(actor, "export alert crops", "operator", "admin")
        with self.uow.read() as s:
            a = s.get(AlertRecord, alert_id)
            if a is None:
                raise NotFound(f"alert {alert_id} has no stored crop")
            if sighting is None:
                path = a.crop_path
                sg = (
                    s.scalar(select(Sighting).where(Sighting.alert_id == alert_id, Sighting.crop_path == path))
                    if path
                    else None
                )
            else:
                rows = list(
                    s.scalars(
                        select(Sighting).where(Sighting.alert_id == alert_id).order_by(Sighting.first_at, Sighting.id)
                    )
                )
                if not 1 <= sighting <= len(rows):
                    raise NotFound(f"alert {alert_id} has {len(rows)} sighting(s), not {sighting}")
                sg = rows[sighting - 1]
                path = sg.crop_path
            if not path:
                raise NotFound(
                    f"alert {alert_id} has no stored crop" + (f" for sighting {sighting}" if sighting else "")
                )
            wl = sg.watchlist if sg is not None else a.watchlist  # the key the crop was sealed with
        data = self.keyring.decrypt(self.wrapped_key(wl), Path(path).read_bytes())
        with self.uow.write() as s:
            self.uow.audit(
                s, actor.name, "alert.export_crop", f"alert:{alert_id}", {"alert_id": alert_id, "sighting": sighting}
            )
        return data

    # -- no-identification windows ----------------------------------------------------------------------------
    def add_window(
        self,
        name: str,
        cameras: list[str],
        lines: list[str],
        starts_at: datetime,
        ends_at: datetime,
        reason: str,
        actor: Actor,
        now: datetime | None = None,
    ) -> int:
        """A no-identification window from ``starts_at`` to ``ends_at`` (UTC). Raises PolicyError when it ends
        before it starts or is already over (a mistyped year would otherwise be "set" and never switch anything
        off); InvalidInput for a name, id or reason that breaks its rule."""
        require(actor, "set no-identification windows", "admin")
        name = human_name(name, "window name")
        cameras, lines = list(identifiers(cameras, "camera id")), list(identifiers(lines, "line"))
        if ends_at <= starts_at:
            raise PolicyError("a window must end after it starts")
        if ends_at <= (now or datetime.now(UTC)):
            raise PolicyError(
                f"the window ends in the past ({ends_at:%Y-%m-%d %H:%M} UTC): it would never switch matching off; "
                "check the dates"
            )
        reason = free_text(reason, "reason")
        if not reason:
            raise PolicyError("a no-identification window needs a reason")
        with self.uow.write() as s:
            w = NoIdWindow(
                name=name,
                scope={"cameras": cameras, "lines": lines},
                starts_at=starts_at,
                ends_at=ends_at,
                reason=reason,
                created_by=actor.name,
            )
            s.add(w)
            s.flush()
            self.uow.audit(
                s,
                actor.name,
                "window.add",
                name,
                {
                    "window_id": w.id,
                    "cameras": cameras,
                    "lines": lines,
                    "starts_at": starts_at.isoformat(),
                    "ends_at": ends_at.isoformat(),
                    "reason": reason,
                },
            )
            self._bump(s)
            return w.id

    def remove_window(self, window_id: int, actor: Actor) -> None:
        require(actor, "remove no-identification windows", "admin")
        with self.uow.write() as s:
            w = s.get(NoIdWindow, window_id)
            if w is None or w.removed_at is not None:
                raise NotFound(f"no active no-identification window {window_id}")
            w.removed_at, w.removed_by = datetime.now(UTC), actor.name
            self.uow.audit(s, actor.name, "window.remove", w.name, {"window_id": window_id})
            self._bump(s)

    def windows(self) -> list[NoIdWindow]:
        with self.uow.read() as s:
            return list(
                s.scalars(select(NoIdWindow).where(NoIdWindow.removed_at.is_(None)).order_by(NoIdWindow.starts_at))
            )

    def identification_allowed(self, camera_id: str | None, line: str | None, now: datetime | None = None) -> bool:
        """False while a no-identification window covers this camera."""
        now = now or datetime.now(UTC)
        for w in self.windows():
            if aware(w.starts_at) <= now < aware(w.ends_at) and in_scope(w.scope, camera_id, line):
                return False
        return True

    # -- retention --------------------------------------------------------------------------------------------
    def purge(self, retention: Retention, actor: Actor, now: datetime | None = None) -> dict[str, int]:
        """Delete what is older than its retention period: alerts (and their reviews), crop files, events, and
        audit entries (the purge records where the chain now starts, so verification still holds)."""
        require(actor, "purge old records", "admin")
        now = now or datetime.now(UTC)
        counts = {"alerts": 0, "crops": 0, "events": 0, "audit": 0, "entries_expired": self.expire_due(now)}
        with self.uow.write() as s:
            if retention.crops_days is not None:
                cut = now - timedelta(days=retention.crops_days)
                for a in s.scalars(
                    select(AlertRecord).where(AlertRecord.created_at < cut, AlertRecord.crop_path.is_not(None))
                ):
                    Path(a.crop_path).unlink(missing_ok=True)
                    a.crop_path = None
                    counts["crops"] += 1
                for sg in s.scalars(select(Sighting).where(Sighting.created_at < cut, Sighting.crop_path.is_not(None))):
                    Path(sg.crop_path).unlink(missing_ok=True)  # the alert's own crop is one of these
                    sg.crop_path = None
            if retention.alerts_days is not None:
                cut = now - timedelta(days=retention.alerts_days)
                old = list(s.scalars(select(AlertRecord).where(AlertRecord.created_at < cut)))
                for a in old:
                    if a.crop_path:
                        Path(a.crop_path).unlink(missing_ok=True)
                    for path in s.scalars(
                        select(Sighting.crop_path).where(Sighting.alert_id == a.id, Sighting.crop_path.is_not(None))
                    ):
                        Path(path).unlink(missing_ok=True)
                    s.execute(delete(Sighting).where(Sighting.alert_id == a.id))
                    s.delete(a)
                counts["alerts"] = len(old)
            if retention.events_days is not None:
                cut = now - timedelta(days=retention.events_days)
                counts["events"] = s.execute(delete(EventRecord).where(EventRecord.created_at < cut)).rowcount or 0
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
                self.audit.note_purge(s.info, through, details["through_hash"])
        return counts

    # -- audit ------------------------------------------------------------------------------------------------
    def audit_entries(self, actor: Actor | None = None, limit: int | None = None) -> list[AuditEntry]:
        if actor is not None:
            require(actor, "read the audit log", "auditor", "admin")
        with self.uow.read() as s:
            if not limit:
                return list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
            newest = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)))
        return newest[::-1]  # the newest ``limit`` entries, oldest first, without reading the whole log

    def verify_audit(self) -> VerifyResult:
        """Check the keyed chain against the signed checkpoints (see :func:`metrosight.audit.log.verify`)."""
        cps = self.audit.read_checkpoints()
        from metrosight.audit.log import LEGACY_META

        with self.uow.read() as s:
            users = bool(s.scalar(select(func.count()).select_from(User)))
            legacy = s.get(Meta, LEGACY_META)
        path = str(self.audit.checkpoints.path) if self.audit.checkpoints is not None else None
        unkeyed = int(legacy.value) if legacy is not None and legacy.value.isdigit() else None
        entries = self.audit_entries()
        res = verify(entries, self.audit.key, cps, path, users, unkeyed)
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
        every gallery load (:meth:`active_gallery` leaves these entries out)."""
        from metrosight.audit.log import KEYED_ACTION, entry_hash

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
            if e.action == KEYED_ACTION and entry_hash(e, self.audit.key) == e.hash:
                unkeyed_through = int(json.loads(e.details).get("legacy_through", 0))
                break
        good = [e for e in rows if entry_hash(e, self.audit.key if e.seq > unkeyed_through else None) == e.hash]
        g = governed.replay(good, first_seq=first)
        return dict(governed.entry_mismatches(g, [tuple(r) for r in active]))  # type: ignore[misc]

    def governed_mismatches(self, entries: list[AuditEntry] | None = None) -> list[str]:
        """Stored approvals, revocations, templates (who added them, held or not), alert reviews and alert statuses
        that the keyed audit log does not back, one line each (see :mod:`metrosight.audit.governed`); ``entries``: the verified log (read when None)."""
        g = governed.replay(entries if entries is not None else self.audit_entries())
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
        return governed.mismatches(
            g,
            [tuple(r) for r in rows],
            [tuple(a) for a in alerts],  # type: ignore[misc]
            [tuple(r) for r in reviews],
            [tuple(t) for t in templates],
        )  # type: ignore[misc]

    def record(self, actor: str, action: str, target: str | None, details: dict) -> None:
        """Write a standalone audit entry (e.g. an identify call or a login)."""
        with self.uow.write() as s:
            self.uow.audit(s, actor, action, target, details)
