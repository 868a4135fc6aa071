"""The pure rules behind the governed transitions, and the compare-and-set that applies them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from metrosight.core.types import Category
from metrosight.policy.rules import Actor, Authorisation, Forbidden, alert_status, can_approve
from metrosight.store import transitions
from metrosight.store.models import Subject
from metrosight.store.repo import Store

ADA = Actor("ada", frozenset({"admin", "approver"}))
BOB = Actor("bob", frozenset({"approver"}))


@pytest.mark.parametrize(
    ("reviews", "status"),
    [
        ([], "new"),
        ([("a", "confirm")], "confirmed_once"),
        ([("a", "confirm"), ("a", "confirm")], "confirmed_once"),  # one person twice is still one
        ([("a", "confirm"), ("b", "confirm")], "actionable"),
        ([("a", "confirm"), ("b", "reject"), ("c", "confirm")], "rejected"),  # a rejection always stands
        ([("b", "reject"), ("a", "confirm"), ("c", "confirm")], "rejected"),
    ],
)
def test_alert_status_from_its_reviews(reviews, status) -> None:  # type: ignore[no-untyped-def]
    assert alert_status(reviews) == status


def test_a_contributor_may_not_approve() -> None:
    can_approve(BOB, "ada", "pending", False, None, {"ada"})
    with pytest.raises(Forbidden, match="added a photo"):
        can_approve(BOB, "ada", "pending", False, None, {"ada", "bob"})


def test_compare_and_set_refuses_a_changed_row(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = Store.for_home(tmp_path)
    s.users.add("ada", ["admin", "approver"], None)
    s.watchlists.create("wl", Category.WANTED, ADA)
    auth = Authorisation("law", "court", "R", datetime.now(UTC) + timedelta(days=3))
    sid, _ = s.entries.enroll("wl", "Eve", np.ones(128, np.float32), "m", "e.jpg", "e" * 64, 0.9, ADA, auth)
    with s.uow.write() as ses:
        e = transitions.lock_entry(ses, sid)
        stale = Subject(id=e.id, status="pending", approved_by=None)  # what a concurrent reader saw
        transitions.set_entry(ses, e, "pending", status="revoked")
        with pytest.raises(transitions.Changed, match="changed by someone else"):
            transitions.set_entry(ses, stale, "pending", status="active")
        with pytest.raises(transitions.Changed):  # terminal states never move
            transitions.set_entry(ses, stale, ("pending", "revoked"), status="active")
