"""Scoped roles over the WHOLE route matrix: every route of the app (enumerated from the app itself, so a new route
without an entry here fails :func:`test_every_route_is_in_the_matrix`) is called by users scoped to one camera group
or one watchlist, with the ids of the other group's alerts, crops, events, cameras and entries; nothing of the other
group may come back (its camera ids, line, crops and snapshots carry markers, see ``tests/scope_world.py``), from any
API route, page or export. The insider cases are spelled out: a scoped operator guessing another group's alert id,
crop URL and camera snapshot; a scoped approver approving an entry of a list outside their scope.

The live feed is tested on a real server in ``test_scope_live.py``; the store's filters on SQLite and PostgreSQL in
``tests/integration/test_scope_store.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pytest
from fastapi import FastAPI

from metrosight.policy.scope import CameraGroups, Scope
from metrosight.services.identification import scoped_face
from tests.scope_world import (
    MARKERS,
    MISSING,
    SCOPED_USERS,
    WANTED,
    World,
)
from tests.unit.api.scope_fixtures import Scoped, hashed, scoped  # noqa: F401 - fixtures

# Every route of the app and how scope applies to it:
#   scoped  - returns or acts on camera-group or watchlist data: filtered by the caller's scope (checked below)
#   global  - admin or auditor only (roles that are never scoped): a scoped user is refused
#   self    - the caller's own account and credentials only
#   public  - no data of any camera or watchlist (sign-in, health, docs, static files)
#   stream  - the live feed (test_scope_live.py)
# A NEW ROUTE must be added here with its kind, and its data filtered by ``store.scoping`` if it is scoped.
ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/openapi.json"): "public",
    ("GET", "/docs"): "public",
    ("GET", "/healthz"): "public",
    ("GET", "/static"): "public",
    ("GET", "/static/docs"): "public",
    ("POST", "/api/login"): "public",
    ("GET", "/login"): "public",
    ("POST", "/login"): "public",
    ("GET", "/auth/oidc/login"): "public",
    ("GET", "/auth/oidc/callback"): "public",
    ("GET", "/api/me"): "self",
    ("GET", "/api/tokens"): "self",
    ("POST", "/api/tokens"): "self",
    ("DELETE", "/api/tokens/{token_id}"): "self",
    ("PUT", "/api/users/{name}/password"): "self",
    ("GET", "/account"): "self",
    ("POST", "/account"): "self",
    ("POST", "/api/logout"): "self",
    ("POST", "/logout"): "self",
    ("GET", "/api/alerts"): "scoped",
    ("GET", "/api/alerts/stream"): "stream",
    ("GET", "/api/alerts/{alert_id}"): "scoped",
    ("GET", "/api/alerts/{alert_id}/crop"): "scoped",
    ("POST", "/api/alerts/{alert_id}/confirm"): "scoped",
    ("POST", "/api/alerts/{alert_id}/reject"): "scoped",
    ("POST", "/api/alerts/{alert_id}/claim"): "scoped",
    ("POST", "/api/alerts/{alert_id}/release"): "scoped",
    ("POST", "/api/alerts/{alert_id}/takeover"): "scoped",
    ("POST", "/api/alerts/{alert_id}/acknowledge"): "scoped",
    ("GET", "/api/alert-policies"): "scoped",
    ("GET", "/api/watchlists/{watchlist}/policy"): "scoped",
    ("PUT", "/api/watchlists/{watchlist}/policy"): "global",
    ("DELETE", "/api/watchlists/{watchlist}/policy"): "global",
    ("GET", "/api/watchlists"): "scoped",
    ("POST", "/api/watchlists"): "global",
    ("GET", "/api/entries"): "scoped",
    ("GET", "/api/watchlists/{watchlist}/entries"): "scoped",
    ("POST", "/api/watchlists/{watchlist}/entries"): "scoped",
    ("POST", "/api/watchlists/{watchlist}/entries/{entry}/approve"): "scoped",
    ("POST", "/api/watchlists/{watchlist}/entries/{entry}/revoke"): "scoped",
    ("POST", "/api/watchlists/{watchlist}/shred"): "global",
    ("POST", "/api/identify"): "scoped",
    ("GET", "/api/recognition"): "scoped",
    ("GET", "/api/cameras"): "scoped",
    ("GET", "/api/cameras/{camera_id}/snapshot"): "scoped",
    ("GET", "/api/events"): "scoped",
    ("GET", "/api/events/{event_id}/snapshot"): "scoped",
    ("GET", "/api/audit"): "global",
    ("POST", "/api/audit/verify"): "global",
    ("GET", "/api/users"): "global",
    ("POST", "/api/users"): "global",
    ("PATCH", "/api/users/{name}"): "global",
    ("GET", "/"): "scoped",
    ("GET", "/cameras"): "scoped",
    ("GET", "/watchlists"): "scoped",
    ("GET", "/events"): "scoped",
    ("GET", "/audit"): "global",
    ("GET", "/users"): "global",
    ("GET", "/metrics"): "scoped",
    # single sign-on links of a user (admins); the UI's language catalogue and the caller's own preferences
    ("GET", "/api/users/{name}/sso"): "self",
    ("POST", "/api/users/{name}/sso"): "global",
    ("DELETE", "/api/users/{name}/sso"): "global",
    ("GET", "/i18n/{code}.js"): "public",
    ("POST", "/account/preferences"): "self",
    # second factor (TOTP): the caller's own, or an admin's reset
    ("POST", "/api/login/totp"): "public",
    ("GET", "/login/totp"): "public",
    ("POST", "/login/totp"): "public",
    ("GET", "/api/me/totp"): "self",
    ("POST", "/api/me/totp"): "self",
    ("POST", "/api/me/totp/confirm"): "self",
    ("POST", "/api/me/totp/reset"): "self",
    ("GET", "/account/totp"): "self",
    ("POST", "/account/totp/begin"): "self",
    ("POST", "/account/totp/confirm"): "self",
    ("POST", "/account/totp/reset"): "self",
    ("DELETE", "/api/users/{name}/totp"): "global",
    # outbound webhooks: admins only (their deliveries hold alerts of every group)
    ("GET", "/api/webhooks"): "global",
    ("POST", "/api/webhooks"): "global",
    ("PATCH", "/api/webhooks/{webhook_id}"): "global",
    ("DELETE", "/api/webhooks/{webhook_id}"): "global",
    ("GET", "/api/webhooks/deliveries"): "global",
    ("GET", "/api/webhooks/deliveries/{delivery_id}/attempts"): "global",
    ("POST", "/api/webhooks/deliveries/{delivery_id}/retry"): "global",
    ("POST", "/api/webhooks/{webhook_id}/retry"): "global",
    ("POST", "/api/webhooks/{webhook_id}/test"): "global",
}
# they end the caller's session, token or factor: called last
LAST = ("/api/logout", "/logout", "/api/tokens/{token_id}", "/api/me/totp/reset", "/account/totp/reset")
BODIES: dict[str, dict[str, Any]] = {
    "reject": {"reason": "not the person"},
    "takeover": {"reason": "shift change"},
    "revoke": {"reason": "order withdrawn"},
    "tokens": {"name": "probe"},
}


def app_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """``(method, path)`` of every route of ``app``, included routers and mounts too (HEAD left out)."""

    def walk(routes: list[Any], prefix: str) -> Iterator[tuple[str, str]]:
        for r in routes:
            if hasattr(r, "path"):
                for m in sorted(getattr(r, "methods", None) or {"GET"}):
                    if m != "HEAD":
                        yield m, prefix + r.path
            elif hasattr(r, "original_router"):  # FastAPI's included router
                yield from walk(r.original_router.routes, prefix + (r.include_context.prefix or ""))

    yield from walk(list(app.routes), "")


def test_every_route_is_in_the_matrix(scoped: Scoped) -> None:  # noqa: F811
    found = set(app_routes(scoped.app))
    missing = sorted(found - set(ROUTES))
    assert not missing, (
        f"routes without scope handling in the matrix: {missing}; add each to ROUTES with its kind (and filter its "
        "data by store.scoping where it is 'scoped')"
    )
    gone = sorted(set(ROUTES) - found)
    assert not gone, f"routes in the matrix that the app no longer has: {gone}"


def _urls(path: str, w: World, user: str, s: Scoped) -> list[str]:
    """``path`` with every combination of ids of both groups (and both lists) for its parameters."""
    values = {
        "alert_id": [str(i) for i in w.alerts.values()],
        "event_id": [str(i) for i in w.events.values()],
        "camera_id": ["cam-a1", "cam-b1"],
        "watchlist": [WANTED, MISSING],
        "entry": ["Pending Pia", "Pending Max", "Alfa Person"],
        "name": [user, "ada"],
        "token_id": [str(s.token_ids["ada"])],
        "webhook_id": ["1"],
        "code": ["ru", "en"],
        "delivery_id": ["1"],
    }
    names = [n for n in values if "{" + n + "}" in path]
    out = []
    for combo in itertools.product(*(values[n] for n in names)):
        url = path
        for n, v in zip(names, combo, strict=True):
            url = url.replace("{" + n + "}", v)
        out.append(url)
    if path == "/api/alerts/{alert_id}/crop":
        out += [f"{u}?sighting={n}" for u in list(out) for n in (1, 2)]
    if path in ("/api/events", "/events"):
        out += [f"{path}?camera=cam-b1", f"{path}?camera=cam-a1"]
    return out


def _unechoed(body: bytes, status: int, url: str, marker: str) -> bytes:
    """``body`` without the caller's own words echoed back: an error naming the id asked for (``no snapshot of
    camera 'cam-b1'``), a page's filter field showing the value typed (``value="cam-b1"``)."""
    if marker not in unquote(url):
        return body
    if status >= 400:
        return body.replace(marker.encode(), b"")
    return body.replace(f'value="{marker}"'.encode(), b"")


@pytest.mark.parametrize("user", sorted(SCOPED_USERS))
def test_a_scoped_user_never_gets_anything_of_the_other_group(scoped: Scoped, user: str) -> None:  # noqa: F811
    client = scoped.client(user)
    markers = MARKERS[user]
    order = sorted(ROUTES, key=lambda r: (r[1] in LAST, r[1], r[0]))
    calls = 0
    for method, path in order:
        kind = ROUTES[(method, path)]
        if kind == "stream" or path.startswith("/static"):
            continue
        for url in _urls(path, scoped.world, user, scoped):
            body = BODIES.get(path.rsplit("/", 1)[-1])
            res = client.request(method, url, json=body if method != "GET" else None, follow_redirects=False)
            calls += 1
            assert res.status_code < 500, f"{user} {method} {url}: {res.status_code} {res.text[:300]}"
            leaked = [m for m in markers if m.encode() in _unechoed(res.content, res.status_code, url, m)]
            assert not leaked, f"{user} {method} {url} ({res.status_code}) shows {leaked}: {res.text[:500]}"
            if kind == "global":
                assert res.status_code in (401, 403, 404, 422), f"{user} {method} {url}: {res.status_code}"
    assert calls > 100


def test_insider_operator_guessing_the_other_groups_ids(scoped: Scoped) -> None:  # noqa: F811
    w, c = scoped.world, scoped.client("olga")
    b, charlie = w.alerts["B"], w.alerts["C"]
    for url in (
        f"/api/alerts/{b}",
        f"/api/alerts/{b}/crop",
        f"/api/alerts/{b}/crop?sighting=1",
        f"/api/alerts/{charlie}/crop?sighting=2",  # the half of Charlie's episode seen on cam-b1
        "/api/cameras/cam-b1/snapshot",
        f"/api/events/{w.events['cam-b1']}/snapshot",
    ):
        assert c.get(url).status_code == 404, url
    for action in ("confirm", "claim", "acknowledge"):
        assert c.post(f"/api/alerts/{b}/{action}").status_code == 404, action
    assert c.post(f"/api/alerts/{b}/reject", json={"reason": "x"}).status_code == 404
    assert scoped.rt.store.reviews.all(scoped.rt.store.users.actor("ada"))[0].status == "new"  # nothing changed
    # what olga does see: her half of Charlie's episode, its crop, her camera
    detail = c.get(f"/api/alerts/{charlie}").json()
    assert detail["cameras"] == ["cam-a1"] and [s["camera_id"] for s in detail["sighting_list"]] == ["cam-a1"]
    assert b"cam-a1" in c.get(f"/api/alerts/{charlie}/crop").content
    assert c.get("/api/cameras/cam-a1/snapshot").content.endswith(b"cam-a1")
    assert [x["id"] for x in c.get("/api/cameras").json()] == ["cam-a1"]
    assert sorted(a["id"] for a in c.get("/api/alerts").json()) == sorted([w.alerts["A"], charlie])
    assert c.post(f"/api/alerts/{w.alerts['A']}/confirm").json()["status"] == "confirmed_once"
    # Charlie's episode is half outside her scope: she may not judge evidence she cannot see
    res = c.post(f"/api/alerts/{charlie}/confirm")
    assert res.status_code == 403 and "outside olga's scope" in res.json()["detail"] and "cam-b1" not in res.text
    metrics = c.get("/metrics").text
    assert 'camera="cam-a1"' in metrics and "cam-b1" not in metrics
    assert 'metrosight_alerts_stored{status="new"} 1.0' in metrics  # Charlie's (A is confirmed once now)


def test_insider_approver_out_of_scope_cannot_approve_nor_be_the_second_person(scoped: Scoped) -> None:  # noqa: F811
    c, store = scoped.client("apma"), scoped.rt.store
    res = c.post(f"/api/watchlists/{WANTED}/entries/Pending Pia/approve")
    assert res.status_code == 404, res.text
    assert next(e for e in store.entries.all(WANTED) if e.name == "Pending Pia").status == "pending"
    assert c.get(f"/api/watchlists/{WANTED}/entries").status_code == 404
    assert [w["name"] for w in c.get("/api/watchlists").json()] == [MISSING]
    page = c.get("/watchlists")  # the page (session cookie) too
    assert page.status_code == 200 and "Pending Max" in page.text and "Pending Pia" not in page.text
    assert c.post(f"/api/watchlists/{MISSING}/entries/Pending Max/approve").json()["status"] == "active"
    # a global approver is the second person on the other list, as before
    bob = scoped.client("bob")
    assert bob.post(f"/api/watchlists/{WANTED}/entries/Pending Pia/approve").json()["status"] == "active"


def test_scope_change_by_the_api_is_audited_and_applies_at_once(scoped: Scoped) -> None:  # noqa: F811
    ada, olga = scoped.client("ada"), scoped.client("olga")
    page = ada.get("/users").text  # the admin's Users page shows each role's scope and the form to change it
    assert 'operator: <span translate="no">cameras:line-a</span>' in page and 'id="set-scope"' in page
    assert olga.get(f"/api/alerts/{scoped.world.alerts['B']}").status_code == 404
    res = ada.patch("/api/users/olga", json={"scopes": {"operator": ["cameras:line-b"]}})
    assert res.status_code == 200, res.text
    assert res.json()["scopes"] == {"operator": ["cameras:line-b"]}  # the viewer role is global now
    assert olga.get(f"/api/alerts/{scoped.world.alerts['B']}").status_code == 200  # the same session and token
    assert olga.get(f"/api/alerts/{scoped.world.alerts['A']}").status_code == 404
    assert olga.get("/api/me").json()["scopes"] == {"operator": ["cameras:line-b"]}
    entry = next(
        e for e in scoped.rt.store.audit.entries(scoped.rt.store.users.actor("ada"), 20) if e.action == "user.update"
    )
    assert entry.actor == "ada" and entry.target == "olga" and "line-b" in entry.details
    for bad, status in (
        ({"operator": ["cameras:nowhere"]}, 422),
        ({"operator": ["zones:x"]}, 422),
        ({"operator": ["watchlist:nope"]}, 409),
        ({"admin": ["cameras:line-a"]}, 409),  # olga holds no admin role
    ):
        assert ada.patch("/api/users/olga", json={"scopes": bad}).status_code == status, bad
    made = ada.post(
        "/api/users",
        json={"name": "newop", "roles": ["operator"], "scopes": {"operator": ["cameras:platform-a"]}},
    )
    assert made.status_code == 201 and made.json()["scopes"] == {"operator": ["cameras:platform-a"]}


def test_identify_names_only_entries_of_the_callers_lists() -> None:
    face = {
        "box": [0, 0, 1, 1],
        "subject": "Alfa Person",
        "person_id": 1,
        "watchlist": WANTED,
        "watchlists": [WANTED, MISSING],
        "category": "wanted",
        "score": 0.9,
        "entries": [
            {"entry_id": 1, "name": "Alfa Person", "watchlist": WANTED, "category": "wanted", "reference": "R-1"},
            {"entry_id": 7, "name": "Alfa P.", "watchlist": MISSING, "category": "missing", "reference": "R-2"},
        ],
        "ambiguous": False,
        "candidates": [{"person_id": 3, "subject": "Bravo Person", "watchlist": WANTED, "score": 0.8}],
    }
    from metrosight.policy.rules import Actor
    from metrosight.policy.scope import RoleGrant

    def view(items: list[str]):  # type: ignore[no-untyped-def]
        a = Actor("x", frozenset({"operator"}), scoped=(RoleGrant("operator", Scope.parse(items)),))
        return a.view(("operator",), CameraGroups.of({}))

    seen = scoped_face(face, view([f"watchlist:{MISSING}"]))
    assert seen["watchlist"] == MISSING and seen["watchlists"] == [MISSING] and seen["candidates"] == []
    assert [e["watchlist"] for e in seen["entries"]] == [MISSING] and WANTED not in str(seen)
    only_wanted = dict(face, entries=face["entries"][:1], watchlists=[WANTED])
    none = scoped_face(only_wanted, view([f"watchlist:{MISSING}"]))
    assert none["subject"] is None and none["entries"] == [] and "Alfa" not in str(none)
    assert scoped_face(face, view(["cameras:x"])) == face  # a camera scope does not limit the lists
