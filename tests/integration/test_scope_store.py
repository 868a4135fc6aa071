"""Scoped roles where the data is queried, on SQLite and PostgreSQL: a user scoped to one camera group (or one
watchlist) gets nothing of the other from any read of the store — alerts, an episode half in their scope,
sightings, crops, reviews, the live feed's reads, events, snapshots, counts, entries — and cannot act on it (review,
approve, revoke, enrol). A changed scope applies to the next read."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from metrosight.config.model import Settings
from metrosight.policy.crypto import KeyRing
from metrosight.policy.rules import Forbidden, PolicyError
from metrosight.policy.scope import EVERYTHING, CameraGroups, Scope
from metrosight.store.db import open_engine
from metrosight.store.errors import NotFound
from metrosight.store.repo import Store
from metrosight.store.scoping import ALERT_READERS, CAMERA_READERS
from tests.scope_world import ADA, CAMERA_GROUPS, CAMERAS, MISSING, WANTED, World, populate, vec

GROUPS = CameraGroups.of(
    Settings.model_validate({"cameras": CAMERAS, "camera_groups": CAMERA_GROUPS}).camera_group_members()
)


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Store, World]:
    if request.param == "sqlite":
        store = Store.for_home(tmp_path, camera_groups=GROUPS)
    else:
        url = request.getfixturevalue("pg_url")
        store = Store(open_engine(url), KeyRing(Fernet.generate_key()), None, camera_groups=GROUPS)
    return store, populate(store, tmp_path / "media")


def test_line_scoped_operator_reads_only_line_a(world: tuple[Store, World]) -> None:
    store, w = world
    olga = store.users.actor("olga")
    rows = store.reviews.all(olga)
    assert sorted(a.id for a in rows) == sorted([w.alerts["A"], w.alerts["C"]])
    assert all(a.camera_id == "cam-a1" for a in rows)
    charlie = next(a for a in rows if a.id == w.alerts["C"])
    assert charlie.sightings == 1 and charlie.score == pytest.approx(0.9)  # the cam-b1 sighting (0.95) is not seen
    for hidden in (w.alerts["B"], w.alerts["M"]):
        with pytest.raises(NotFound):
            store.reviews.detail(hidden, olga)
        with pytest.raises(NotFound):
            store.reviews.read_crop(hidden, olga)
        with pytest.raises(NotFound):
            store.reviews.review(hidden, olga, "confirm")
        assert store.reviews.sightings(hidden, olga) == []
    a, _reviews, _earlier = store.reviews.detail(w.alerts["C"], olga)
    assert a.camera_id == "cam-a1" and a.sightings == 1
    assert [sg.camera_id for sg in store.reviews.sightings(w.alerts["C"], olga)] == ["cam-a1"]
    assert b"cam-a1" in store.reviews.read_crop(w.alerts["C"], olga)  # the best shot inside the scope
    assert b"cam-a1" in store.reviews.read_crop(w.alerts["C"], olga, 1)
    with pytest.raises(NotFound):
        store.reviews.read_crop(w.alerts["C"], olga, 2)  # the cam-b1 sighting: only one is visible
    # the stored alert itself is untouched by what olga was shown
    assert next(r for r in store.alerts.all() if r.id == w.alerts["C"]).sightings == 2
    assert store.reviews.review(w.alerts["A"], olga, "confirm") == "confirmed_once"
    with pytest.raises(Forbidden, match="outside olga's scope"):  # half of Charlie's evidence is not hers to see
        store.reviews.review(w.alerts["C"], olga, "confirm")
    assert store.reviews.review(w.alerts["C"], ADA, "confirm") == "confirmed_once"  # a global operator may


def test_feed_events_and_counts_are_scoped(world: tuple[Store, World]) -> None:
    store, w = world
    olga = store.users.actor("olga")
    view = store.scoping.view(olga, ALERT_READERS)
    assert [a.id for a in store.feed.alerts_after(0, view)] == sorted([w.alerts["A"], w.alerts["C"]])
    assert store.feed.alert_cameras([w.alerts["C"], w.alerts["B"]], view) == {w.alerts["C"]: ["cam-a1"]}
    everything = store.feed.alert_cameras([w.alerts["C"]], EVERYTHING)
    assert everything == {w.alerts["C"]: ["cam-a1", "cam-b1"]}
    # an append on cam-b1 to an alert olga was sent is not re-sent to her; it is to a global reader
    _upto, grown = store.feed.appended_after(0, 10**6, view)
    assert w.alerts["C"] not in [a.id for a in grown]
    assert w.alerts["C"] in [a.id for a in store.feed.appended_after(0, 10**6, EVERYTHING)[1]]
    store.reviews.review(w.alerts["B"], ADA, "confirm")
    assert store.feed.reviews_after(0, view) == []
    assert sum(store.alerts.status_counts(view).values()) == 2 and sum(store.alerts.status_counts().values()) == 4
    cams = store.scoping.view(olga, CAMERA_READERS)
    assert [e.camera_id for e in store.feed.recent_events(view=cams)] == ["cam-a1"]
    assert store.feed.recent_events("cam-b1", view=cams) == []
    assert store.feed.event(w.events["cam-b1"], cams) is None and store.feed.event(w.events["cam-a1"], cams)
    assert store.feed.latest_event_snapshot("cam-b1", cams) is None
    assert store.feed.latest_event_snapshot("cam-a1", cams) is not None
    vera = store.scoping.view(store.users.actor("vera"), CAMERA_READERS)  # the named group platform-a
    assert [e.camera_id for e in store.feed.recent_events(view=vera)] == ["cam-a1"]


def test_watchlist_scoped_approver_and_operator(world: tuple[Store, World]) -> None:
    store, w = world
    apma, opmi = store.users.actor("apma"), store.users.actor("opmi")
    view = store.scoping.view(apma, ("approver",))
    assert {x.name for x in store.watchlists.all(view=view)} == {MISSING}
    assert {e.name for e in store.entries.all(view=view)} == {"Mira Missing", "Pending Max"}
    with pytest.raises(NotFound):  # an approver out of scope is not a second person for another list's entry
        store.entries.approve(WANTED, "Pending Pia", apma)
    with pytest.raises(NotFound):
        store.entries.revoke(WANTED, "Alfa Person", apma, "no longer needed")
    with pytest.raises(NotFound):
        store.entries.enroll(WANTED, "New One", vec(99), "m", "n.jpg", "f" * 64, 0.9, apma)
    assert store.entries.approve(MISSING, "Pending Max", apma) == "active"
    alfa, mira = store.persons.person_of(WANTED, "Alfa Person"), store.persons.person_of(MISSING, "Mira Missing")
    max_ = store.persons.person_of(MISSING, "Pending Max")
    with pytest.raises(NotFound):  # a person only on another list: as if absent
        store.persons.link(mira, alfa, apma, "same face")
    with pytest.raises(NotFound):
        store.persons.mark_distinct(mira, alfa, apma, "twins")
    with pytest.raises(NotFound):
        store.persons.unlink_entry(WANTED, "Alfa Person", apma, "wrong link")
    store.persons.link(alfa, mira, ADA, "same face")  # a global approver links across lists
    with pytest.raises(Forbidden, match="outside apma's scope"):  # alfa is on wanted too: not apma's alone
        store.persons.link(max_, alfa, apma, "one person")
    assert [a.id for a in store.reviews.all(opmi)] == [w.alerts["M"]]
    with pytest.raises(NotFound):
        store.reviews.detail(w.alerts["A"], opmi)


def test_scope_change_applies_to_the_next_read_and_is_audited(world: tuple[Store, World]) -> None:
    store, w = world
    assert w.alerts["B"] not in [a.id for a in store.reviews.all(store.users.actor("olga"))]
    store.accounts.update_user(
        "olga", ADA, scopes={"operator": Scope.parse(["cameras:line-b"]), "viewer": Scope.parse(["cameras:line-b"])}
    )
    entry = store.audit.entries(ADA, 5)[-1]
    assert entry.action == "user.update" and entry.target == "olga" and "line-b" in entry.details
    olga = store.users.actor("olga")
    assert sorted(a.id for a in store.reviews.all(olga)) == sorted([w.alerts["B"], w.alerts["C"], w.alerts["M"]])
    with pytest.raises(PolicyError, match="no watchlist"):
        store.accounts.update_user("olga", ADA, scopes={"operator": Scope.parse(["watchlist:nope"])})
