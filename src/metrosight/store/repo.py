"""Repositories: the only code that reads and writes metrosight's tables."""

from __future__ import annotations

import atexit
import logging
import os
import socket
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from metrosight.core.names import human_name
from metrosight.core.types import Category
from metrosight.policy.crypto import KeyRing, load_master_key
from metrosight.policy.rules import Actor, Authorisation, PolicyError, aware, in_scope, require
from metrosight.recognize.gallery import GalleryEntry, fuse
from metrosight.store import transitions
from metrosight.store.db import StoreError, open_engine
from metrosight.store.episodes import EpisodesMixin
from metrosight.store.governance import Conflict, GovernanceMixin, NotFound
from metrosight.store.models import AlertRecord, Person, Run, Subject, Template, Watchlist, WatchlistKey
from metrosight.store.naming import find_named, lookalike_message
from metrosight.store.persons import PersonsMixin
from metrosight.store.uow import UnitOfWork

log = logging.getLogger(__name__)

CHECKPOINTS_ENV = "METROSIGHT_AUDIT_CHECKPOINTS"
_open_stores: weakref.WeakSet[Store] = weakref.WeakSet()


def checkpoint_path(root: Path) -> Path:
    """Where a home's audit checkpoints go: ``METROSIGHT_AUDIT_CHECKPOINTS`` or ``<home>/audit.checkpoints``."""
    env = os.environ.get(CHECKPOINTS_ENV)
    return Path(env).expanduser() if env else root / "audit.checkpoints"


def process_alive(pid: int, started_at: datetime | None) -> bool:
    """Whether process ``pid`` of this host exists, is not a zombie, and is the one that started at
    ``started_at`` (not a later process that reused the number)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):
            return False
        btime = next(int(x.split()[1]) for x in Path("/proc/stat").read_text().splitlines() if x.startswith("btime"))
        began = btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return True  # no /proc: the process exists, assume it is the same
    return started_at is None or began <= started_at.timestamp() + 2.0


@atexit.register
def checkpoint_all() -> None:
    """Every store of this process signs its newest audit head (at the end of a command; at a normal exit)."""
    for st in list(_open_stores):
        st.checkpoint()


@dataclass(frozen=True, slots=True)
class WatchlistInfo:
    name: str
    category: str
    subjects: int
    templates: int
    created_at: datetime


MAX_DIM = 4096  # descriptor sizes a model may have (dlib's: 128); each template row records its model


def encode_descriptor(vec: np.ndarray) -> bytes:
    """A descriptor ``(D,)`` (1 ≤ D ≤ 4096; dlib's model: 128) as float32 little-endian bytes."""
    arr = np.asarray(vec, dtype="<f4").reshape(-1)
    if not 0 < arr.shape[0] <= MAX_DIM:
        raise ValueError(f"descriptor must have 1 to {MAX_DIM} values, got {arr.shape[0]}")
    return arr.tobytes()


def decode_descriptor(blob: bytes) -> np.ndarray:
    if len(blob) % 4 or not 0 < len(blob) // 4 <= MAX_DIM:
        raise StoreError(f"stored descriptor of {len(blob)} bytes is not 1 to {MAX_DIM} float32 values")
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


class Store(GovernanceMixin, PersonsMixin, EpisodesMixin):
    """Watchlists, persons, entries, templates, alert episodes, runs, users, reviews, windows and the audit log.

    Args:
        engine: the database.
        keyring: encrypts templates and crops with a key per watchlist; the audit chain's keys derive from it.
        checkpoints: the audit log's signed checkpoint file (see :mod:`metrosight.audit.log`); None keeps none.
        max_entry_days: the longest an entry may be authorised for.
        tz: the deployment's time zone (``deployment.timezone``): the last allowed expiry is the end of the day
            ``max_entry_days`` from now there.
        episode_window_s: a person's match on the same camera this soon after their alert extends it.
        group_window_s: a person's matches on cameras of one group this close in time form one episode.
    """

    def __init__(
        self,
        engine: Engine,
        keyring: KeyRing,
        checkpoints: Path | None = None,
        max_entry_days: int = 365,
        tz: tzinfo = UTC,
        episode_window_s: float = 60.0,
        group_window_s: float = 120.0,
    ) -> None:
        self.uow = UnitOfWork(engine, keyring, checkpoints)
        self.engine = engine
        self.tz = tz
        self.keyring = keyring
        self.audit = self.uow.log
        self.max_entry_days = max_entry_days
        self.episode_window_s = episode_window_s
        self.group_window_s = group_window_s
        _open_stores.add(self)

    @classmethod
    def for_home(
        cls,
        root: Path,
        url: str | None = None,
        max_entry_days: int = 365,
        tz: tzinfo = UTC,
        episode_window_s: float = 60.0,
        group_window_s: float = 120.0,
    ) -> Store:
        """The store of a home directory (SQLite there unless ``url`` is given); the audit checkpoints go to
        ``METROSIGHT_AUDIT_CHECKPOINTS`` or ``<home>/audit.checkpoints``."""
        engine = open_engine(url or f"sqlite:///{root / 'metrosight.db'}")
        return cls(
            engine,
            KeyRing(load_master_key(root)),
            checkpoint_path(root),
            max_entry_days,
            tz,
            episode_window_s=episode_window_s,
            group_window_s=group_window_s,
        )

    def checkpoint(self) -> None:
        """Sign the newest audit head this process wrote into the checkpoint file (at the end of a command)."""
        self.audit.checkpoint()

    # -- watchlists -------------------------------------------------------------------------------------------
    def create_watchlist(self, name: str, category: Category, actor: Actor) -> None:
        """Raises Conflict if ``name`` (normalised, :func:`metrosight.core.names.human_name`) exists or looks like
        an existing watchlist's name, Forbidden unless ``actor`` is an admin, InvalidInput for an unusable name."""
        require(actor, "create watchlists", "admin")
        name = human_name(name, "watchlist name")
        with self.uow.write() as s:
            if find_named(s, Watchlist, name) is not None:
                raise Conflict(f"watchlist {name!r} already exists")
            if (why := lookalike_message(s, Watchlist, name, "watchlist")) is not None:
                raise Conflict(why)
            wl = Watchlist(name=name, category=str(category), created_by=actor.name)
            s.add(wl)
            s.flush()
            s.add(WatchlistKey(watchlist_id=wl.id, wrapped_key=self.keyring.new_wrapped_key()))
            self.uow.audit(s, actor.name, "watchlist.create", name, {"category": str(category)})
            self._bump(s)

    def watchlist_category(self, name: str) -> Category:
        """Raises NotFound if there is no such watchlist."""
        with self.uow.read() as s:
            wl = find_named(s, Watchlist, name)
            cat = wl.category if wl is not None else None
        if cat is None:
            raise NotFound(
                f"no watchlist named {name!r}; create it with `metrosight watchlist create {name} --category …`"
            )
        return Category(cat)

    def list_watchlists(self) -> list[WatchlistInfo]:
        with self.uow.read() as s:
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
        actor: Actor,
        auth: Authorisation | None = None,
        now: datetime | None = None,
        person_id: int | None = None,
        link_reason: str | None = None,
    ) -> tuple[int, bool]:
        """Store one encrypted template for ``subject`` on ``watchlist``, in one audited transaction.

        A new entry needs ``auth`` and is created *pending* (or active at once when urgent, for 24 h). It belongs to
        person ``person_id`` when given (the same person on another list; ``link_reason`` says why, for the audit
        log), else to a new person of its own. Adding a photo to an approved entry sends it back to *pending* (a
        changed template needs a fresh approval). On an urgent entry not approved yet, a photo added by anyone but
        its creator is *held* — not matched — until an approver who added no photo approves the entry; the entry
        keeps its 24-hour clock meanwhile. Whoever adds a photo may not approve the entry
        (:func:`metrosight.policy.rules.can_approve`).

        Returns:
            ``(subject_id, duplicate)``: ``duplicate`` is True when this photo (by SHA-256) was already enrolled
            for this subject, in which case nothing is written.

        Raises:
            NotFound: no such watchlist or person. Forbidden: ``actor`` may not record entries. PolicyError:
            missing or invalid authorisation, the entry is revoked/expired, or it belongs to another person than
            ``person_id``.
        """
        require(actor, "record watchlist entries", "approver", "admin")
        now = now or datetime.now(UTC)
        subject = human_name(subject, "the person's name")
        with self.uow.write() as s:
            wl = find_named(s, Watchlist, watchlist)
            if wl is None:
                raise NotFound(f"no watchlist named {watchlist!r}; create it with `metrosight watchlist create`")
            key = s.get(WatchlistKey, wl.id)
            if key is None:
                raise PolicyError(f"watchlist {watchlist!r} was shredded (its key is destroyed); create a new one")
            watchlist = wl.name
            subj = find_named(s, Subject, subject, Subject.watchlist_id == wl.id)
            if subj is not None:
                subject = subj.name  # as stored (an older row may hold another Unicode form)
            if subj is None:
                why = lookalike_message(s, Subject, subject, "entry", Subject.watchlist_id == wl.id)
                if why is not None:
                    raise Conflict(f"{why} (on watchlist {watchlist!r})")
                if auth is None:
                    raise PolicyError(
                        f"{subject!r} is a new entry: give its legal basis, issuing authority, reference and expiry"
                    )
                auth.validate(now, self.max_entry_days, self.tz)
                if person_id is not None:
                    person = s.get(Person, person_id)
                    if person is None:
                        raise NotFound(f"no person {person_id} (see `metrosight person list`)")
                else:
                    person = Person(name=subject, created_by=actor.name)
                    s.add(person)
                    s.flush()
                subj = Subject(
                    watchlist_id=wl.id,
                    person_id=person.id,
                    name=subject,
                    status="active" if auth.urgent else "pending",
                    legal_basis=auth.legal_basis,
                    issuing_authority=auth.issuing_authority,
                    reference=auth.reference,
                    scope=auth.scope(),
                    valid_from=auth.valid_from,
                    expires_at=auth.effective_expiry(now),
                    requested_expires_at=auth.expires_at,
                    urgent=auth.urgent,
                    created_by=actor.name,
                )
                s.add(subj)
                s.flush()
                self.uow.audit(
                    s,
                    actor.name,
                    "entry.create",
                    f"{watchlist}/{subject}",
                    {
                        "entry_id": subj.id,
                        "status": subj.status,
                        "urgent": auth.urgent,
                        "legal_basis": auth.legal_basis,
                        "authority": auth.issuing_authority,
                        "reference": auth.reference,
                        "expires_at": subj.expires_at.isoformat(),
                        "scope": auth.scope(),
                        "person_id": person.id,
                        "linked": person_id is not None,
                        "link_reason": link_reason,
                    },
                )
            else:
                subj = transitions.lock_entry(s, subj.id)  # revoke, approve and other photos wait (or go first)
                if subj.status in transitions.TERMINAL_ENTRY:
                    raise PolicyError(
                        f"entry {watchlist}/{subject} is {subj.status}; record a new authorisation instead"
                    )
                if person_id is not None and subj.person_id != person_id:
                    raise PolicyError(
                        f"entry {watchlist}/{subject} belongs to person {subj.person_id}, not {person_id}: "
                        f"use `metrosight person link {person_id} {subj.person_id}` to record they are one person"
                    )
            subj_id, status, held = subj.id, subj.status, False
            dup = s.scalar(
                select(Template.id).where(Template.subject_id == subj_id, Template.source_sha256 == source_sha256)
            )
            if dup is not None:
                return subj_id, True
            if subj.approved_by is not None:
                # a changed template needs a fresh approval, by someone who added none of them (urgent entries
                # included: their authorisation already ran past 24 h on the strength of the approval now undone)
                transitions.set_entry(s, subj, status, status="pending", approved_by=None, approved_at=None)
                status = "pending"
            elif subj.urgent and status == "active" and actor.name != subj.created_by:
                held = True  # an urgent entry acts on its creator's photos only until someone approves the rest
            s.add(
                Template(
                    subject_id=subj_id,
                    descriptor=self.keyring.encrypt(key.wrapped_key, encode_descriptor(descriptor)),
                    model=model,
                    source_name=source_name,
                    source_sha256=source_sha256,
                    quality=float(quality),
                    added_by=actor.name,
                    held=held,
                )
            )
            self.uow.audit(
                s,
                actor.name,
                "entry.enrol",
                f"{watchlist}/{subject}",
                {
                    "entry_id": subj_id,
                    "photo": source_name,
                    "photo_sha256": source_sha256,
                    "status": status,
                    **({"held_until_approved": True} if held else {}),
                },
            )
            self._bump(s)
            return subj_id, False

    def active_gallery(
        self, model: str, camera_id: str | None = None, now: datetime | None = None, line: str | None = None
    ) -> list[GalleryEntry]:
        """Templates of every entry that may be matched now: active, inside its validity window and in scope for
        ``camera_id``/``line``. Expired entries are retired first (their templates destroyed). One fused template
        per entry, with the entry's person. An entry the database says is active but the keyed audit log does not
        (a forged approval, :meth:`unbacked_active`) is left out and logged as an error."""
        now = now or datetime.now(UTC)
        self.expire_due(now)
        out = []
        forged = self.unbacked_active()  # active in the database but not in the keyed log: never matched
        for eid, why in forged.items():
            log.error("not matching %s: `metrosight audit verify` reports it", why)
        for subj, wl_name, cat, person_name, descs in self._templates(model, ("active",), held=False):
            if subj.id in forged:
                continue
            vf, exp = aware(subj.valid_from), aware(subj.expires_at)
            if (vf is not None and now < vf) or (exp is not None and now >= exp):
                continue
            if not in_scope(subj.scope, camera_id, line):
                continue
            out.append(
                GalleryEntry(
                    subj.id,
                    subj.name,
                    wl_name,
                    Category(cat),
                    fuse(np.stack(descs)),
                    subj.person_id,
                    person_name,
                    subj.reference,
                )
            )
        return out

    def enrolment_gallery(self, model: str) -> list[GalleryEntry]:
        """One fused template per entry that is pending or active (any scope or validity window), with its person:
        what a new enrolment is compared with to find the same person enrolled before."""
        return [
            GalleryEntry(
                subj.id,
                subj.name,
                wl_name,
                Category(cat),
                fuse(np.stack(descs)),
                subj.person_id,
                person_name,
                subj.reference,
            )
            for subj, wl_name, cat, person_name, descs in self._templates(model, ("active", "pending"))
        ]

    def template_models(self) -> dict[str, int]:
        """How many templates of pending or active entries each descriptor model holds (shredded lists left out):
        matching refuses to start when any are of a model other than the configured embedder's."""
        with self.uow.read() as s:
            live = select(WatchlistKey.watchlist_id)
            rows = s.execute(
                select(Template.model, func.count())
                .join(Subject, Template.subject_id == Subject.id)
                .where(Subject.status.in_(("active", "pending")), Subject.watchlist_id.in_(live))
                .group_by(Template.model)
            ).all()
        return {str(m): int(n) for m, n in rows}

    def _templates(
        self, model: str, statuses: tuple[str, ...], held: bool = True
    ) -> list[tuple[Subject, str, str, str, list[np.ndarray]]]:
        """Decrypted descriptors of entries in ``statuses``, grouped per entry: ``(entry, watchlist, category,
        person name, descriptors)``; shredded watchlists are left out, and held photos unless ``held``."""
        with self.uow.read() as s:
            keys = {k.watchlist_id: k.wrapped_key for k in s.scalars(select(WatchlistKey))}
            rows = s.execute(
                select(Subject, Watchlist.name, Watchlist.category, Person.name, Template.descriptor)
                .join(Watchlist, Subject.watchlist_id == Watchlist.id)
                .join(Person, Person.id == Subject.person_id)
                .join(Template, Template.subject_id == Subject.id)
                .where(
                    Subject.status.in_(statuses),
                    Template.model == model,
                    *(() if held else (Template.held.is_(False),)),
                )
                .order_by(Subject.id, Template.id)
            ).all()
        grouped: dict[int, tuple[Subject, str, str, str, list[np.ndarray]]] = {}
        for subj, wl_name, cat, person_name, blob in rows:
            if subj.watchlist_id not in keys:
                continue  # shredded
            vec = decode_descriptor(self.keyring.decrypt(keys[subj.watchlist_id], blob))
            grouped.setdefault(subj.id, (subj, wl_name, cat, person_name, []))[4].append(vec)
        return list(grouped.values())

    # -- runs and alerts --------------------------------------------------------------------------------------
    def start_run(self, camera_id: str, source: str) -> int:
        """A new ``running`` run row, recording this host and process (see :meth:`close_dead_runs`)."""
        with self.uow.write() as s:
            run = Run(camera_id=camera_id, source=source, host=socket.gethostname(), pid=os.getpid())
            s.add(run)
            s.flush()
            return run.id

    def finish_run(
        self, run_id: int, status: str, frames: int, faces: int, tracks: int, alerts: int, error: str | None = None
    ) -> None:
        with self.uow.write() as s:
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

    def close_dead_runs(self) -> int:
        """Close as ``crashed`` the runs left ``running`` on this host by a process that no longer exists (killed,
        or the machine went down); called whenever metrosight starts. Runs of other hosts are left alone.
        Returns how many were closed."""
        host = socket.gethostname()
        with self.uow.read() as s:
            rows = list(
                s.execute(
                    select(Run.id, Run.pid, Run.started_at).where(
                        Run.status == "running", Run.host == host, Run.pid.is_not(None)
                    )
                )
            )
        dead = [(rid, pid) for rid, pid, started in rows if not process_alive(pid, aware(started))]
        if not dead:
            return 0
        with self.uow.write() as s:
            for rid, pid in dead:
                s.execute(
                    update(Run)
                    .where(Run.id == rid, Run.status == "running")
                    .values(
                        status="crashed",
                        finished_at=datetime.now(UTC),
                        error=f"process {pid} on {host} ended without closing the run (killed or crashed)",
                    )
                )
        log.warning("closed %d run(s) left running by processes that died", len(dead))
        return len(dead)

    def tracks_since(self, since: datetime) -> tuple[int, datetime | None]:
        """Face tracks (one watchlist search each) of the runs finished since ``since``, and the earliest start of
        those runs (``None`` when there were none)."""
        with self.uow.read() as s:
            n, first = s.execute(
                select(func.coalesce(func.sum(Run.tracks), 0), func.min(Run.started_at)).where(
                    Run.finished_at.is_not(None), Run.finished_at >= since
                )
            ).one()
        return int(n), aware(first) if first is not None else None

    def alerts(self, run_id: int | None = None) -> list[AlertRecord]:
        with self.uow.read() as s:
            q = select(AlertRecord).order_by(AlertRecord.id)
            if run_id is not None:
                q = q.where(AlertRecord.run_id == run_id)
            return list(s.scalars(q))

    def alert_counts(self) -> dict[str, int]:
        """How many alerts there are in each status."""
        with self.uow.read() as s:
            return {
                st: int(n) for st, n in s.execute(select(AlertRecord.status, func.count()).group_by(AlertRecord.status))
            }

    def count(self, model: type) -> int:
        try:
            with self.uow.read() as s:
                return int(s.scalar(select(func.count()).select_from(model)) or 0)
        except SQLAlchemyError as exc:
            raise StoreError(str(exc)) from None

    # -- behaviour events (analytics; no identity) ----------------------------------------------------------------
    def save_event(
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
        from metrosight.store.models import EventRecord

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

    def save_events(self, rows: list[dict]) -> int:
        """Store many behaviour events in one transaction, each once (rows whose ``event_id`` is already stored are
        skipped: ``INSERT … ON CONFLICT DO NOTHING``). Each row has ``save_event``'s arguments as keys. Returns how
        many were new."""
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        from metrosight.store.models import EventRecord

        if not rows:
            return 0
        keys = ("event_id", "camera_id", "kind", "start_ts", "end_ts", "track_id", "data", "snapshot_path", "run_id")
        values = [{k: r.get(k) for k in keys} | {"created_at": datetime.now(UTC)} for r in rows]
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
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

    def end_event(self, event_id: str, end_ts: float, data: dict | None = None) -> bool:
        """Set an event's end time and merge ``data`` into its fields. Returns False if there is no such event."""
        from metrosight.store.models import EventRecord

        with self.uow.write() as s:
            rec = s.scalar(select(EventRecord).where(EventRecord.event_id == event_id))
            if rec is None:
                return False
            rec.end_ts = end_ts
            if data:
                rec.data = {**(rec.data or {}), **data}
            return True

    def events(self, run_id: int | None = None, camera_id: str | None = None, kind: str | None = None) -> list:
        """Stored behaviour events (``EventRecord`` rows), oldest first."""
        from metrosight.store.models import EventRecord

        with self.uow.read() as s:
            q = select(EventRecord).order_by(EventRecord.start_ts, EventRecord.id)
            if run_id is not None:
                q = q.where(EventRecord.run_id == run_id)
            if camera_id is not None:
                q = q.where(EventRecord.camera_id == camera_id)
            if kind is not None:
                q = q.where(EventRecord.kind == kind)
            return list(s.scalars(q))
