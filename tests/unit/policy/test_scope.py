"""Scoped roles, the pure rules: parsing ``--scope`` items, which grant covers what, admin/auditor always global."""

from __future__ import annotations

import pytest

from metrosight.core.names import InvalidInput
from metrosight.policy.rules import Actor
from metrosight.policy.scope import GLOBAL, CameraGroups, RoleGrant, Scope, check_grant

GROUPS = CameraGroups.of({"line1": ["cam-1", "cam-2"], "Line2": ["cam-3"], "empty": []})


def test_parse_and_items_round_trip():
    s = Scope.parse(["cameras:line1,Line2", "watchlist:missing"])
    assert s == Scope(frozenset({"line1", "Line2"}), frozenset({"missing"}))
    assert Scope.parse(s.items()) == s
    assert Scope.from_json(s.to_json()) == s and Scope.from_json(None) == GLOBAL
    assert s.describe() == "camera groups Line2, line1; watchlists missing"
    for bad in ("line1", "zones:x", "cameras:", "cameras:a/b", "watchlist:  "):
        with pytest.raises(InvalidInput):
            Scope.parse([bad])


def test_admin_and_auditor_cannot_be_scoped():
    check_grant(RoleGrant("admin"))
    for role in ("admin", "auditor"):
        with pytest.raises(InvalidInput, match="cannot be scoped"):
            check_grant(RoleGrant(role, Scope(frozenset({"line1"}))))


def test_view_of_a_scoped_operator_covers_only_its_group_and_lists():
    op = Actor("op", frozenset({"operator", "viewer"}), scoped=(RoleGrant("operator", Scope.parse(["cameras:LINE1"])),))
    v = op.view(("operator",), GROUPS)
    assert v.covers("cam-1", "wanted") and v.covers("cam-2") and not v.covers("cam-3") and not v.covers(None)
    assert v.camera_ids == frozenset({"cam-1", "cam-2"})
    # the viewer role is global: what viewers read (cameras) is everything
    assert op.view(("viewer",), GROUPS).everything
    # a role the actor does not hold gives nothing
    assert not op.view(("approver",), GROUPS).covers("cam-1")


def test_union_of_grants_is_per_grant_not_a_product():
    a = Actor(
        "a",
        frozenset({"operator", "approver"}),
        scoped=(
            RoleGrant("operator", Scope.parse(["cameras:line1"])),
            RoleGrant("approver", Scope.parse(["watchlist:missing"])),
        ),
    )
    v = a.view(("operator", "approver"), GROUPS)
    assert v.covers("cam-1", "wanted") and v.covers("cam-3", "missing") and not v.covers("cam-3", "wanted")
    assert v.watchlist("wanted") and v.watchlist("missing")  # the operator grant sees every list (on line1)
    assert not a.view(("approver",), GROUPS).watchlist("wanted")


def test_unknown_or_empty_group_sees_nothing_and_reset_password_sees_nothing():
    a = Actor("a", frozenset({"operator"}), scoped=(RoleGrant("operator", Scope.parse(["cameras:empty"])),))
    assert not a.view(("operator",), GROUPS).covers("cam-1") and a.view(("operator",), GROUPS).camera_ids == frozenset()
    reset = Actor("b", frozenset({"operator"}), "ada")
    assert not reset.view(("operator",), GROUPS).covers("cam-1")
    assert Actor("c", frozenset({"operator"})).view(("operator",), GROUPS).everything  # unscoped: as before
