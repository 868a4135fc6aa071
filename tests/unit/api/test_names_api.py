"""The API applies the CLI's rules for names, camera ids and dates: 422 with the reason, 409 for a look-alike,
never a 500; confirmations carry the resolved instant with the deployment's zone."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from metrosight.core.when import Clock
from tests.unit.api.conftest import Api, photo

AUTH = {"legal_basis": "Code art. 1", "authority": "District court", "reference": "R-7", "expires": "30d"}
NFC = "José Núñez"
NFD = unicodedata.normalize("NFD", NFC)
MSK = ZoneInfo("Europe/Moscow")


def enrol(api: Api, subject: str, index: int = 1, **form: str):  # type: ignore[no-untyped-def]
    return api.as_(
        "ada",
        "POST",
        "/api/watchlists/wl/entries",
        data={"subject": subject, **{**AUTH, **form}},
        files=[("photos", (f"p{index}.png", photo(index), "image/png"))],
    )


@pytest.fixture()
def wl(api: Api) -> Api:
    assert api.as_("ada", "POST", "/api/watchlists", json={"name": "wl", "category": "wanted"}).status_code == 201
    return api


def test_an_nfd_subject_is_approved_by_its_typed_name_and_no_look_alike_can_be_added(wl: Api):
    res = enrol(wl, NFD + " ")
    assert res.status_code == 201 and res.json()["subject"] == NFC
    assert wl.as_("bob", "POST", f"/api/watchlists/wl/entries/{quote(NFC)}/approve").json()["status"] == "active"
    res = enrol(wl, "Jоsé Núñez", index=4)  # Cyrillic о
    assert res.status_code == 422 and f"looks like the existing entry '{NFC}'" in res.json()["photos"][0]["reason"]
    assert [e["name"] for e in wl.as_("ada", "GET", "/api/entries").json()] == [NFC]


@pytest.mark.parametrize("expires", ["99999999999d", "9999999999999999999999999d", "3651d"])
def test_huge_durations_are_a_422_not_a_500(wl: Api, expires: str):
    res = enrol(wl, "Eve", expires=expires)
    assert res.status_code == 422 and "too long: at most 3650 days" in res.json()["detail"]
    assert wl.as_("ada", "GET", "/api/entries").json() == []


@pytest.mark.parametrize(
    "cameras, why",
    [
        ("../x", "starts with '.'"),
        ("a/b", "'/'"),
        ("/abs", "'/'"),
        ("cam-1,a\x00b", "NUL"),
        ("x" * 65, "longer than 64"),
    ],
)
def test_hostile_camera_ids_in_a_scope_are_refused(wl: Api, cameras: str, why: str):
    res = enrol(wl, "Eve", cameras=cameras)
    assert res.status_code == 422 and why in res.json()["detail"]


def test_a_camera_scope_with_a_space_and_cyrillic_is_kept_normalised(wl: Api):
    res = enrol(wl, "Eve", cameras=" Платформа 1 , cam-1", lines="red line")
    assert res.status_code == 201
    [e] = wl.as_("ada", "GET", "/api/entries").json()
    assert e["scope"] == {"cameras": ["Платформа 1", "cam-1"], "lines": ["red line"]}


def test_todays_date_is_the_end_of_today_in_the_deployment_zone_and_the_response_says_so(wl: Api):
    wl.rt.installation.clock = Clock(MSK, datetime(2026, 11, 29, 19, 30, tzinfo=UTC))  # 22:30 in Moscow
    wl.rt.store.entries.tz = MSK
    res = enrol(wl, "Eve", expires="2026-11-29")
    body = res.json()
    assert res.status_code == 201, body
    assert body["expires_at"] == "2026-11-30T00:00:00+03:00" and body["timezone"] == "Europe/Moscow"
    res = enrol(wl, "Zed", expires="2026-11-28")
    assert res.status_code == 422 and "end of 2026-11-28" in res.json()["photos"][0]["reason"]


@pytest.mark.parametrize(
    "name, status, why",
    [
        ("bоb", 409, "looks like the existing user 'bob'"),  # Cyrillic о
        ("CAROL", 409, "looks like the existing user 'carol'"),
        (" carol ", 409, "already exists"),
    ],
)
def test_look_alike_user_names_are_refused(api: Api, name: str, status: int, why: str):
    res = api.as_("ada", "POST", "/api/users", json={"name": name, "roles": ["operator"]})
    assert res.status_code == status and why in res.json()["detail"]


def test_a_user_name_typed_in_nfd_is_stored_in_nfc(api: Api):
    res = api.as_("ada", "POST", "/api/users", json={"name": unicodedata.normalize("NFD", "Zoë "), "roles": ["viewer"]})
    assert res.status_code == 201 and res.json()["name"] == "Zoë"


def test_look_alike_watchlists_are_refused(wl: Api):
    res = wl.as_("ada", "POST", "/api/watchlists", json={"name": "WL", "category": "missing"})
    assert res.status_code == 409 and "looks like the existing watchlist 'wl'" in res.json()["detail"]


def test_a_camera_id_with_a_space_and_cyrillic_serves_its_snapshot_and_hostile_ids_are_refused(tmp_path, template_home):
    import shutil

    from fastapi.testclient import TestClient

    from metrosight.api.app import ApiConfig, create_app
    from metrosight.bus.inproc import TOPIC_CAMERA_SNAPSHOT, InProcessBus
    from metrosight.bus.payloads import CameraSnapshotV1
    from tests.unit.api.conftest import make_runtime

    shutil.copytree(template_home[0], tmp_path / "home")
    camera = "Платформа 1"
    rt = make_runtime(tmp_path / "home", cameras=[{"id": f" {camera} ", "source": "rtsp://10.0.0.9/s"}])
    bus = InProcessBus()
    client = TestClient(create_app(rt, bus=bus, config=ApiConfig(poll_seconds=0.2)))
    h = {"Authorization": f"Bearer {template_home[1]['vic']}"}
    assert [c["id"] for c in client.get("/api/cameras", headers=h).json()] == [camera]
    bus.publish(TOPIC_CAMERA_SNAPSHOT, CameraSnapshotV1(camera_id=camera, jpeg=b"\xff\xd8snap", wall_time=1.0))
    res = client.get(f"/api/cameras/{quote(camera)}/snapshot", headers=h)
    assert res.status_code == 200 and res.content == b"\xff\xd8snap"
    for hostile in ("..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd"):  # a '/' never reaches the route
        assert client.get(f"/api/cameras/{hostile}/snapshot", headers=h).status_code == 404
    for hostile, why in (("a%00b", "NUL"), ("x" * 300, "longer than 64"), ("..x", "starts with '.'")):
        res = client.get(f"/api/cameras/{hostile}/snapshot", headers=h)
        assert res.status_code == 422 and why in res.json()["detail"]
        res = client.get(f"/api/events?camera={hostile}", headers=h)
        assert res.status_code == 422 and (why in str(res.json()["detail"]) or "at most 64" in str(res.json()))
    assert client.get(f"/api/events?camera={quote(camera)}", headers=h).json() == []
