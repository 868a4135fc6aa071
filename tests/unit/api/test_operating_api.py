"""The operating point through the API and /metrics: the threshold in force for the active persons, each list's
target, and the expected false candidates a day from the searches (face tracks) counted."""

from __future__ import annotations

from metrosight.recognize.operating import FLOOR_COSINE
from tests.unit.api.conftest import Api
from tests.unit.api.test_api import enrol, make_watchlist


def test_operating_point_endpoint_and_gauges(api: Api) -> None:
    res = api.as_("vic", "GET", "/api/recognition")
    assert res.status_code == 200, res.text
    op = res.json()
    assert op["persons"] == 0 and op["target_fpir"] == 0.003 and op["expected_false_candidates_per_day"] is None
    make_watchlist(api)
    assert enrol(api, "ada").status_code == 201
    assert api.as_("vic", "GET", "/api/recognition").json()["persons"] == 0  # pending: not matchable
    assert api.as_("bob", "POST", "/api/watchlists/wl/entries/Eve/approve").status_code == 200
    op = api.as_("vic", "GET", "/api/recognition").json()
    assert op["persons"] == 1 and op["threshold"] >= FLOOR_COSINE and op["method"] in ("prior", "floor")
    assert op["lists"]["wl"] == {"target_fpir": 0.003, "threshold": op["threshold"]}
    run = api.rt.store.runs.start("cam-1", "cam.mp4")
    api.rt.store.runs.finish(run, "finished", 10, 10, 2000, 0)
    op = api.as_("vic", "GET", "/api/recognition").json()
    assert op["searches_per_day"] == 48000.0 and op["expected_false_candidates_per_day"] == 144.0
    text = api.as_("vic", "GET", "/metrics").text
    assert "metrosight_expected_false_candidates_per_day 144.0" in text
    assert f"metrosight_match_threshold {op['threshold']}" in text and "metrosight_active_persons 1.0" in text
