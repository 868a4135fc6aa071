"""The REST API: authentication (401), roles (403), the same rules and audit as the CLI, bad input."""

from __future__ import annotations

import json
import time

import pytest

from metrosight.bus.inproc import TOPIC_CAMERA_STATE, TOPIC_CAMERA_STATS
from metrosight.bus.payloads import AlertV1, CameraStateV1, CameraStatsV1
from metrosight.services.sinks import AlertSink
from tests.unit.api.conftest import PASSWORD, Api, gray_png, photo

AUTH = {"legal_basis": "Code art. 1", "authority": "District court", "reference": "R-7", "expires": "30d"}


def enrol(api: Api, user: str, index: int = 1, subject: str = "Eve", wl: str = "wl", **form: str):  # type: ignore[no-untyped-def]
    return api.as_(
        user,
        "POST",
        f"/api/watchlists/{wl}/entries",
        data={"subject": subject, **AUTH, **form},
        files=[("photos", (f"p{index}.png", photo(index), "image/png"))],
    )


def make_watchlist(api: Api, name: str = "wl") -> None:
    assert api.as_("ada", "POST", "/api/watchlists", json={"name": name, "category": "wanted"}).status_code == 201


def raise_alert(api: Api, n: int = 1, crop: bytes | None = b"\xff\xd8fake-jpeg") -> None:
    """Store alerts the way a camera does (AlertSink: encrypted crop file, then the row); each an hour apart, so
    each is an alert of its own (not a sighting of the previous one's episode)."""
    sink = AlertSink(api.rt.store, api.rt.home.media, None)
    subject_id = api.rt.store.entries.all("wl")[0].id
    for i in range(n):
        sink.on_alert(
            AlertV1(
                event_id=f"cam-1:run:{time.monotonic_ns()}:{i}",
                camera_id="cam-1",
                track_id=i,
                subject_id=subject_id,
                subject="Eve",
                watchlist="wl",
                category="wanted",
                score=0.97,
                distance=0.24,
                first_seen=1.0,
                last_seen=2.5,
                samples=3,
                crop_jpeg=crop,
                media_origin=time.time() + 3600 * i,
            )
        )


@pytest.fixture()
def active(api: Api) -> Api:
    make_watchlist(api)
    assert enrol(api, "ada").status_code == 201
    assert api.as_("bob", "POST", "/api/watchlists/wl/entries/Eve/approve").status_code == 200
    return api


# -- authentication ---------------------------------------------------------------------------------------------
PUBLIC = {"/api/login", "/api/login/totp", "/healthz", "/docs", "/openapi.json", "/login", "/logout"}


def test_every_api_route_needs_a_signed_in_user(api: Api):
    spec = api.app.openapi()["paths"]
    routes = [(path, m.upper()) for path, ops in spec.items() if path not in PUBLIC for m in ops]
    assert len(routes) >= 25
    for path, method in routes:
        url = path.replace("{alert_id}", "1").replace("{token_id}", "1").replace("{event_id}", "1")
        url = (
            url.replace("{watchlist}", "wl")
            .replace("{entry}", "Eve")
            .replace("{name}", "ada")
            .replace("{camera_id}", "cam-1")
        )
        res = api.client.request(method, url)
        assert res.status_code == 401, (method, url, res.status_code, res.text)
        res = api.client.request(method, url, headers={"Authorization": "Bearer mst_not-a-token"})
        assert res.status_code == 401, (method, url)


def test_pages_redirect_to_sign_in(api: Api):
    for page in ("/", "/cameras", "/watchlists", "/events", "/audit", "/users"):
        res = api.client.get(page, follow_redirects=False)
        assert res.status_code == 303 and res.headers["location"].startswith("/login?next=")


def test_session_sign_in_cookie_csrf_and_sign_out(api: Api):
    c = api.client
    res = c.post("/api/login", json={"username": "carol", "password": PASSWORD})
    assert res.status_code == 200
    cookie = res.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    csrf = res.json()["csrf_token"]
    assert c.get("/api/me").json()["name"] == "carol"
    make_watchlist(api)
    enrol(api, "ada")
    raw_cookie = c.cookies.get("metrosight_session")
    # a change without the CSRF header is refused even with a valid cookie
    assert c.post("/api/watchlists/wl/entries/Eve/approve").status_code == 403
    assert c.post("/api/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert c.get("/api/me").status_code == 401
    c.cookies.set("metrosight_session", raw_cookie)  # replaying the old cookie after sign-out
    assert c.get("/api/me").status_code == 401
    acts = api.actions()
    assert "auth.login" in acts and "auth.logout" in acts


def test_wrong_password_is_audited_and_rate_limited(api: Api):
    for _ in range(5):
        assert api.client.post("/api/login", json={"username": "bob", "password": "nope"}).status_code == 401
    res = api.client.post("/api/login", json={"username": "bob", "password": PASSWORD})
    assert res.status_code == 429 and int(res.headers["retry-after"]) > 0
    from metrosight.api.app import write_signin_audit

    write_signin_audit(api.app.state.services, all=True)  # failures are audited as bursts: one row with a count
    rows = [e for e in api.rt.store.audit.entries() if e.action.startswith("auth.login_")]
    assert [(e.action, e.target) for e in rows] == [("auth.login_failed", "bob"), ("auth.login_refused", "bob")]
    assert [json.loads(e.details)["count"] for e in rows] == [5, 1]
    # another user from the same address is not locked out by bob's failures
    assert api.client.post("/api/login", json={"username": "carol", "password": PASSWORD}).status_code == 200


def test_password_change_ends_sessions(api: Api):
    c = api.client
    assert c.post("/api/login", json={"username": "vic", "password": PASSWORD}).status_code == 200
    assert (
        api.as_("ada", "PUT", "/api/users/vic/password", json={"password": "copper meadow thistle"}).status_code == 204
    )
    assert c.get("/api/me").status_code == 401


def test_login_form_and_pages(api: Api):
    c = api.client
    res = c.post("/login", data={"username": "ada", "password": "wrong", "next": "/users"})
    assert res.status_code == 401 and "wrong user name or password" in res.text
    res = c.post("/login", data={"username": "ada", "password": PASSWORD, "next": "/users"}, follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"] == "/users"
    for page in ("/", "/cameras", "/watchlists", "/events", "/audit", "/users"):
        res = c.get(page)
        assert res.status_code == 200, page
        assert "default-src 'self'" in res.headers["content-security-policy"]
    assert c.post("/login", data={"username": "vic", "password": PASSWORD}, follow_redirects=False).status_code == 303
    assert c.get("/audit").status_code == 403
    assert c.get("/", follow_redirects=False).headers["location"] == "/cameras"


# -- roles ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("user", "method", "url", "body"),
    [
        ("vic", "GET", "/api/alerts", None),
        ("vic", "GET", "/api/watchlists", None),
        ("vic", "GET", "/api/audit", None),
        ("carol", "GET", "/api/audit", None),
        ("carol", "GET", "/api/users", None),
        ("aud", "POST", "/api/alerts/1/confirm", None),
        ("carol", "POST", "/api/watchlists", {"name": "x", "category": "wanted"}),
        ("carol", "POST", "/api/watchlists/wl/entries/Eve/approve", None),
        ("aud", "GET", "/api/alerts/1/crop", None),
        ("vic", "POST", "/api/users", {"name": "mal", "roles": ["admin"]}),
        ("bob", "POST", "/api/tokens", {"name": "x", "user": "ada"}),
        ("vic", "POST", "/api/audit/verify", None),
    ],
)
def test_wrong_role_is_403(api: Api, user, method, url, body):  # type: ignore[no-untyped-def]
    assert api.as_(user, method, url, json=body).status_code == 403


def test_viewer_sees_cameras_events_and_metrics(api: Api):
    for url in ("/api/cameras", "/api/events", "/metrics", "/api/me", "/api/tokens"):
        assert api.as_("vic", "GET", url).status_code == 200, url


# -- watchlists and enrolment -----------------------------------------------------------------------------------
def test_enrol_approve_revoke_with_the_cli_rules(api: Api):
    make_watchlist(api)
    assert api.as_("ada", "POST", "/api/watchlists", json={"name": "wl", "category": "wanted"}).status_code == 409
    res = enrol(api, "ada")
    assert res.status_code == 201, res.text
    body = res.json()
    assert body["entry_status"] == "pending" and body["photos"][0]["status"] == "enrolled"
    assert enrol(api, "ada").json()["photos"][0]["status"] == "duplicate"
    res = api.as_("ada", "POST", "/api/watchlists/wl/entries/Eve/approve")
    assert res.status_code == 403 and "may not approve" in res.json()["detail"]  # self-approval
    res = api.as_("bob", "POST", "/api/watchlists/wl/entries/Eve/approve")
    assert res.status_code == 200 and res.json()["status"] == "active" and res.json()["approved_by"] == "bob"
    assert res.json()["expires_at"] is not None
    assert [g.subject_name for g in api.rt.store.gallery.active("dlib_resnet_v1")] == ["Eve"]
    assert api.as_("bob", "POST", "/api/watchlists/wl/entries/Eve/approve").status_code == 409
    assert api.as_("bob", "POST", "/api/watchlists/wl/entries/Eve/revoke", json={"reason": ""}).status_code == 422
    res = api.as_("bob", "POST", "/api/watchlists/wl/entries/Eve/revoke", json={"reason": "order withdrawn"})
    assert res.status_code == 200 and res.json()["status"] == "revoked" and res.json()["templates"] == 0
    assert api.rt.store.gallery.active("dlib_resnet_v1") == []
    entries = api.as_("aud", "GET", "/api/watchlists/wl/entries").json()
    assert [(e["name"], e["status"]) for e in entries] == [("Eve", "revoked")]
    assert {"entry.create", "entry.enrol", "entry.approve", "entry.revoke"} <= set(api.actions())
    assert api.as_("ada", "GET", "/api/watchlists/nope/entries").status_code == 404


def test_new_entry_needs_its_authorisation(api: Api):
    make_watchlist(api)
    res = api.as_(
        "ada",
        "POST",
        "/api/watchlists/wl/entries",
        data={"subject": "Eve"},
        files=[("photos", ("a.png", photo(1), "image/png"))],
    )
    assert res.status_code == 422 and "legal basis" in res.json()["photos"][0]["reason"]
    res = enrol(api, "ada", expires="yesterday")
    assert res.status_code == 422 and "cannot read expires" in res.json()["detail"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"%PDF-1.4 this is not an image", "not an image"),
        (None, "no face found"),  # index 2: a photo with no face
        ("two", "2 faces found"),  # index 3: two people
    ],
)
def test_bad_photos_are_refused_with_the_reason(api: Api, content, reason):  # type: ignore[no-untyped-def]
    make_watchlist(api)
    data = {None: photo(2), "two": photo(3)}.get(content, content)  # type: ignore[arg-type]
    res = api.as_(
        "ada",
        "POST",
        "/api/watchlists/wl/entries",
        data={"subject": "Eve", **AUTH},
        files=[("photos", ("x.png", data, "image/png"))],
    )
    assert res.status_code == 422
    assert res.json()["photos"][0]["status"] == "refused" and reason in res.json()["photos"][0]["reason"]
    assert api.rt.store.entries.all("wl") == []  # nothing recorded


def test_one_bad_photo_does_not_lose_the_good_one(api: Api):
    make_watchlist(api)
    res = api.as_(
        "ada",
        "POST",
        "/api/watchlists/wl/entries",
        data={"subject": "Eve", **AUTH},
        files=[("photos", ("bad.png", gray_png(), "image/png")), ("photos", ("good.png", photo(1), "image/png"))],
    )
    assert res.status_code == 201
    assert [p["status"] for p in res.json()["photos"]] == ["refused", "enrolled"]


def test_a_50_mb_upload_is_413(api: Api):
    make_watchlist(api)
    big = b"\x89PNG" + b"\0" * (50 * 1024 * 1024)
    res = api.as_(
        "ada",
        "POST",
        "/api/watchlists/wl/entries",
        data={"subject": "Eve", **AUTH},
        files=[("photos", ("big.png", big, "image/png"))],
    )
    assert res.status_code == 413 and "40 MB limit" in res.json()["detail"]
    assert api.rt.store.entries.all("wl") == []


def test_oversized_json_body_is_413(api: Api):
    res = api.as_(
        "ada",
        "POST",
        "/api/watchlists",
        content=b"{" + b" " * (2 << 20) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert res.status_code == 413


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"name": "x"}',
        b'{"name": "x", "category": "jaywalking"}',
        b"[]",
        b'{"name": "x", "category": "wanted", "extra": 1}',
    ],
)
def test_malformed_json_is_422(api: Api, body):  # type: ignore[no-untyped-def]
    res = api.as_("ada", "POST", "/api/watchlists", content=body, headers={"Content-Type": "application/json"})
    assert res.status_code == 422 and isinstance(res.json()["detail"], list)


# -- alerts -----------------------------------------------------------------------------------------------------
def test_two_person_review(active: Api):
    api = active
    raise_alert(api, 2)
    alerts = api.as_("carol", "GET", "/api/alerts").json()
    assert len(alerts) == 2 and alerts[0]["reference"] == "R-7" and alerts[0]["has_crop"]
    a1, a2 = alerts[1]["id"], alerts[0]["id"]
    res = api.as_("carol", "POST", f"/api/alerts/{a1}/confirm")
    assert res.json() == {"id": a1, "status": "confirmed_once"}
    res = api.as_("carol", "POST", f"/api/alerts/{a1}/confirm")
    assert res.status_code == 403 and "second, different operator" in res.json()["detail"]
    assert api.as_("bob", "POST", f"/api/alerts/{a1}/confirm").json()["status"] == "actionable"
    assert api.as_("bob", "POST", f"/api/alerts/{a1}/reject", json={"reason": "late"}).status_code == 409
    assert api.as_("bob", "POST", f"/api/alerts/{a2}/reject", json={}).status_code == 422
    assert (
        api.as_("bob", "POST", f"/api/alerts/{a2}/reject", json={"reason": "a lookalike"}).json()["status"]
        == "rejected"
    )
    detail = api.as_("aud", "GET", f"/api/alerts/{a1}").json()
    assert [(r["user"], r["action"]) for r in detail["reviews"]] == [("carol", "confirm"), ("bob", "confirm")]
    assert [r["reason"] for r in detail["earlier_rejections"]] == ["a lookalike"]
    assert api.as_("carol", "GET", "/api/alerts/999").status_code == 404
    assert api.as_("carol", "GET", "/api/alerts?status=rejected").json()[0]["id"] == a2


def test_crop_is_decrypted_and_every_read_is_audited(active: Api):
    api = active
    raise_alert(api)
    aid = api.as_("carol", "GET", "/api/alerts").json()[0]["id"]
    res = api.as_("carol", "GET", f"/api/alerts/{aid}/crop")
    assert res.status_code == 200 and res.content == b"\xff\xd8fake-jpeg"
    assert res.headers["content-type"] == "image/jpeg" and "no-store" in res.headers["cache-control"]
    on_disk = next((api.rt.home.media / "alerts").rglob("*.enc")).read_bytes()
    assert b"fake-jpeg" not in on_disk  # encrypted at rest
    assert api.actions().count("alert.export_crop") == 1
    assert api.as_("ada", "POST", "/api/watchlists/wl/shred", json={"confirm": "wl"}).status_code == 204
    assert api.as_("carol", "GET", f"/api/alerts/{aid}/crop").status_code == 410  # crypto-shredded


# -- cameras, metrics, events, audit, users ---------------------------------------------------------------------
def stats(frames: int, wall: float, worker: int = 0) -> CameraStatsV1:
    return CameraStatsV1(
        camera_id="cam-1",
        worker=worker,
        state="live",
        frames_decoded=frames,
        frames_skipped=0,
        frames_dropped=0,
        frames_analysed=frames,
        faces=frames // 2,
        embedded=3,
        tracks=2,
        alerts=1,
        reconnects=0,
        stalls=0,
        failed_attempts=0,
        last_frame_wall=wall,
        worker_cpu_seconds=1.0,
        wall_time=wall,
        stage_seconds={"detect": 0.02 * frames},
        stage_buckets={"detect": [0, 0, 0, 0, frames, 0, 0, 0, 0, 0, 0, 0]},
    )


def test_cameras_and_metrics_follow_the_bus(api: Api):
    cams = api.as_("vic", "GET", "/api/cameras").json()
    assert cams[0]["id"] == "cam-1" and cams[0]["state"] == "configured" and "pw" not in cams[0]["source"]
    now = time.time()
    api.bus.publish(TOPIC_CAMERA_STATE, CameraStateV1(camera_id="cam-1", state="live", wall_time=now))
    api.bus.publish(TOPIC_CAMERA_STATS, stats(100, now))
    api.bus.publish(TOPIC_CAMERA_STATS, stats(150, now + 2.0))
    cam = api.as_("vic", "GET", "/api/cameras").json()[0]
    assert cam["state"] == "live" and cam["fps"] == pytest.approx(25.0) and cam["faces_per_s"] == pytest.approx(12.5)
    assert cam["frames"] == 150 and cam["last_frame"] == pytest.approx(now + 2.0)
    api.bus.publish(TOPIC_CAMERA_STATS, stats(10, now + 4.0, worker=1))  # a restarted worker counts from zero
    text = api.as_("vic", "GET", "/metrics").text
    assert 'metrosight_frames_total{camera="cam-1"} 160.0' in text
    assert 'metrosight_camera_state{camera="cam-1",state="live"} 1.0' in text
    assert 'metrosight_stage_seconds_bucket{camera="cam-1",le="0.025",stage="detect"} 160.0' in text
    assert 'metrosight_stage_seconds_bucket{camera="cam-1",le="0.01",stage="detect"} 0.0' in text
    assert 'metrosight_stage_seconds_count{camera="cam-1",stage="detect"} 160.0' in text
    assert api.as_("vic", "GET", "/api/cameras/cam-1/snapshot").status_code == 404


def test_events_list_without_identity(api: Api):
    api.rt.store.events.save("e1", "cam-1", "loitering", 3.0, 70.0, 5, {"zone": "platform", "duration_s": 67.0})
    ev = api.as_("vic", "GET", "/api/events?kind=loitering").json()
    assert [(e["kind"], e["data"]["zone"]) for e in ev] == [("loitering", "platform")]
    assert api.as_("vic", "GET", "/api/events?camera=other").json() == []
    assert api.as_("vic", "GET", f"/api/events/{ev[0]['id']}/snapshot").status_code == 404


def test_audit_view_and_verify(active: Api):
    api = active
    res = api.as_("aud", "GET", "/api/audit?limit=5")
    assert res.status_code == 200 and len(res.json()) == 5
    assert api.as_("aud", "POST", "/api/audit/verify").json()["ok"] is True
    from sqlalchemy import text

    with api.rt.store.engine.begin() as conn:  # tamper: drop the trigger's protection by rewriting a row
        conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_update"))
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"))
    res = api.as_("aud", "POST", "/api/audit/verify").json()
    assert res["ok"] is False and res["broken_seq"] == 2


def test_audit_verify_lists_a_forged_approval(active: Api):
    """A database writer sets the approved entry's approver to someone else: the chain is intact, the row is not."""
    api = active
    from sqlalchemy import text

    with api.rt.store.engine.begin() as conn:
        conn.execute(text("UPDATE subjects SET approved_by = 'mallory'"))
    res = api.as_("aud", "POST", "/api/audit/verify").json()
    assert res["ok"] is False and res["broken_seq"] is None
    assert any("approved by 'mallory'" in m for m in res["mismatches"]), res


def test_users_and_tokens(api: Api):
    res = api.as_("ada", "POST", "/api/users", json={"name": "dan", "roles": ["operator"], "password": "dan-password"})
    assert res.status_code == 409 and "user name" in res.json()["detail"]  # the password policy
    res = api.as_(
        "ada", "POST", "/api/users", json={"name": "dan", "roles": ["operator"], "password": "granite pelican drum"}
    )
    assert res.status_code == 201 and res.json()["has_password"] is True
    assert api.as_("ada", "POST", "/api/users", json={"name": "dan", "roles": ["operator"]}).status_code == 409
    assert api.as_("ada", "POST", "/api/users", json={"name": "eve", "roles": ["god"]}).status_code == 422
    assert api.as_("ada", "PATCH", "/api/users/dan", json={"roles": ["operator", "auditor"]}).json()["roles"] == [
        "auditor",
        "operator",
    ]
    assert api.as_("ada", "PATCH", "/api/users/ada", json={"disabled": True}).status_code == 403
    assert api.as_("ada", "PATCH", "/api/users/nobody", json={"disabled": True}).status_code == 404
    assert api.as_("ada", "POST", "/api/tokens", json={"name": "scraper", "user": "vic"}).status_code == 403
    created = api.as_("vic", "POST", "/api/tokens", json={"name": "scraper"}).json()
    assert created["user"] == "vic" and created["token"].startswith("mst_")
    scraper = {"Authorization": f"Bearer {created['token']}"}
    assert api.client.get("/metrics", headers=scraper).status_code == 200
    assert all("token" not in t for t in api.as_("vic", "GET", "/api/tokens").json())
    assert api.as_("vic", "DELETE", f"/api/tokens/{created['id']}").status_code == 200
    assert api.client.get("/metrics", headers=scraper).status_code == 401
    assert api.as_("ada", "PATCH", "/api/users/vic", json={"disabled": True}).json()["disabled"] is True
    assert api.as_("vic", "GET", "/api/me").status_code == 401
