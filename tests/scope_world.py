"""A small installation with two camera groups and two watchlists, for the scoped-role tests (unit and integration):
what one group's or one list's users must never see of the other.

Cameras ``cam-a1`` (line ``line-a``) and ``cam-b1`` (line ``line-b``) share the episode group ``hub``, so one
person seen on both forms ONE alert (Charlie's), half inside and half outside a ``line-a`` scope. The named group
``platform-a`` is ``cam-a1``. Watchlists ``wl-wanted-x`` (Alfa, Bravo, Charlie; pending Pia) and ``wl-missing-y``
(Mira; pending Max). Everything of group B carries ``cam-b1`` or ``line-b`` in its text (camera ids, event ids,
crop and snapshot bytes), so "never sees anything of B" is checked by looking for those markers in what a user
gets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from metrosight.bus.payloads import AlertV1, EventV1
from metrosight.core.types import Category
from metrosight.policy.rules import Actor, Authorisation
from metrosight.policy.scope import Scope
from metrosight.services.sinks import AlertSink, EventSink
from metrosight.store.repo import Store

CAMERAS = [
    {"id": "cam-a1", "source": "rtsp://10.0.0.1/a", "line": "line-a", "group": "hub"},
    {"id": "cam-b1", "source": "rtsp://10.0.0.2/b", "line": "line-b", "group": "hub"},
]
CAMERA_GROUPS = {"platform-a": {"cameras": ["cam-a1"]}}
WANTED, MISSING = "wl-wanted-x", "wl-missing-y"
B_MARKERS = ("cam-b1", "line-b")  # nothing a user scoped to line-a / platform-a gets may contain these
WANTED_MARKERS = (WANTED, "Alfa Person", "Bravo Person", "Charlie Both", "Pending Pia")  # for watchlist:missing
ADA = Actor("ada", frozenset({"admin", "approver", "operator", "auditor"}))
BOB = Actor("bob", frozenset({"approver", "operator"}))
# user -> (roles, scopes)
SCOPED_USERS: dict[str, tuple[list[str], dict[str, list[str]]]] = {
    "olga": (["operator", "viewer"], {"operator": ["cameras:line-a"], "viewer": ["cameras:line-a"]}),
    "vera": (["viewer"], {"viewer": ["cameras:platform-a"]}),
    "apma": (["approver"], {"approver": [f"watchlist:{MISSING}"]}),
    "opmi": (["operator"], {"operator": [f"watchlist:{MISSING}"]}),
}
MARKERS = {"olga": B_MARKERS, "vera": B_MARKERS, "apma": WANTED_MARKERS, "opmi": WANTED_MARKERS}


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


@dataclass
class World:
    """Ids of what was stored: alerts by person (A, B, C, M), events by camera, entries by name."""

    alerts: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    entries: dict[str, int] = field(default_factory=dict)


def _auth() -> Authorisation:
    return Authorisation("Code art. 1", "District court", "R-1", datetime.now(UTC) + timedelta(days=30))


def populate(store: Store, media: Path, passwords: dict[str, str] | None = None) -> World:
    """Users (ada, bob global; the :data:`SCOPED_USERS`), watchlists, entries, alerts, events. ``passwords``: hashes
    by user name (none: users without a password, for tokens)."""
    pw = passwords or {}
    store.users.add("ada", sorted(ADA.roles), None, pw.get("ada"))
    store.users.add("bob", sorted(BOB.roles), ADA, pw.get("bob"))
    store.watchlists.create(WANTED, Category.WANTED, ADA)
    store.watchlists.create(MISSING, Category.MISSING, ADA)
    for name, (roles, scopes) in SCOPED_USERS.items():
        store.users.add(name, roles, ADA, pw.get(name), {r: Scope.parse(i) for r, i in scopes.items()})
    w = World()
    for i, (wl, name) in enumerate(
        [(WANTED, "Alfa Person"), (WANTED, "Bravo Person"), (WANTED, "Charlie Both"), (MISSING, "Mira Missing")]
    ):
        w.entries[name], _ = store.entries.enroll(wl, name, vec(i), "m", f"{i}.jpg", f"{i:064x}", 0.9, ADA, _auth())
        store.entries.approve(wl, name, BOB)
    for i, (wl, name) in enumerate([(WANTED, "Pending Pia"), (MISSING, "Pending Max")], 10):
        w.entries[name], _ = store.entries.enroll(wl, name, vec(i), "m", f"{i}.jpg", f"{i:064x}", 0.9, ADA, _auth())
    sink = AlertSink(store, media, None)
    t0 = time.time() - 86400
    for key, name, wl, cam, at in (
        ("A", "Alfa Person", WANTED, "cam-a1", t0),
        ("B", "Bravo Person", WANTED, "cam-b1", t0 + 10),
        ("C", "Charlie Both", WANTED, "cam-a1", t0 + 3600),
        ("C", "Charlie Both", WANTED, "cam-b1", t0 + 3610),  # the same episode (group hub): a second sighting
        ("M", "Mira Missing", MISSING, "cam-b1", t0 + 7200),
    ):
        sink.on_alert(
            AlertV1(
                event_id=f"{cam}:run:{key}:{at}",
                camera_id=cam,
                track_id=1,
                subject_id=w.entries[name],
                subject=name,
                watchlist=wl,
                category="missing" if wl == MISSING else "wanted",
                score=0.9 if cam == "cam-a1" else 0.95,
                distance=0.3,
                first_seen=0.0,
                last_seen=1.0,
                samples=2,
                crop_jpeg=f"\xff\xd8crop of {key} on {cam}".encode(),
                group="hub",
                media_origin=at,
            )
        )
    w.alerts = {name.split()[0][0]: a.id for a in store.alerts.all() for name in [a.subject_name]}
    events = EventSink(store, media)
    for cam in ("cam-a1", "cam-b1"):
        events.on_event(
            EventV1(
                event_id=f"{cam}:ev:1",
                camera_id=cam,
                kind="loitering",
                start_ts=1.0,
                data={"zone": "gate"},
                snapshot_jpeg=f"\xff\xd8snapshot of {cam}".encode(),
            )
        )
    w.events = {e.camera_id: e.id for e in store.events.all()}
    return w
