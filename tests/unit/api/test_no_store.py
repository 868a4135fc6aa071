"""No response with personal data may be kept by a browser or a proxy: ``Cache-Control: no-store`` on every API
response (JSON, crops, the live feed, errors) and every page; only static assets may be cached."""

from __future__ import annotations

import pytest

from tests.unit.api.conftest import PASSWORD, Api
from tests.unit.api.test_api import enrol, make_watchlist, raise_alert


def _url(path: str, alert_id: int) -> str:
    return (
        path.replace("{alert_id}", str(alert_id))
        .replace("{token_id}", "1")
        .replace("{event_id}", "1")
        .replace("{watchlist}", "wl")
        .replace("{entry}", "Eve")
        .replace("{name}", "ada")
        .replace("{camera_id}", "cam-1")
    )


def test_every_api_get_answers_no_store(api: Api):
    make_watchlist(api)
    assert enrol(api, "ada").status_code == 201
    assert api.as_("bob", "POST", "/api/watchlists/wl/entries/Eve/approve").status_code == 200
    raise_alert(api)
    alert_id = api.as_("ada", "GET", "/api/alerts").json()[0]["id"]
    spec = api.app.openapi()["paths"]
    gets = [p for p, ops in spec.items() if "get" in ops and not p.endswith("/stream")]
    assert len(gets) >= 12
    seen_json = 0
    for path in gets:
        res = api.as_("ada", "GET", _url(path, alert_id))
        assert res.headers.get("cache-control", "").startswith("no-store"), (path, res.status_code, res.headers)
        seen_json += res.headers.get("content-type", "").startswith("application/json")
    assert seen_json >= 10
    for res in (
        api.client.get("/api/alerts"),  # 401
        api.as_("vic", "GET", "/api/alerts"),  # 403
        api.as_("ada", "GET", "/api/alerts/999999"),  # 404
        api.as_("ada", "POST", "/api/watchlists", content=b"{", headers={"Content-Type": "application/json"}),  # 422
        api.as_(
            "ada", "POST", "/api/watchlists", content=b"x" * (2 << 20), headers={"Content-Type": "application/json"}
        ),  # 413
        api.client.post("/api/login", json={"username": "carol", "password": PASSWORD}),
    ):
        assert res.headers.get("cache-control") == "no-store", (res.request.url, res.status_code)


@pytest.mark.parametrize("page", ["/", "/cameras", "/watchlists", "/events", "/audit", "/users", "/login"])
def test_pages_answer_no_store_static_assets_may_be_cached(api: Api, page: str):
    c = api.client
    assert c.post("/login", data={"username": "ada", "password": PASSWORD}, follow_redirects=False).status_code == 303
    res = c.get(page)
    assert res.status_code == 200 and res.headers["cache-control"] == "no-store"
    assert "no-store" not in c.get("/static/app.js").headers.get("cache-control", "")
