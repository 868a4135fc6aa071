"""The second factor in the API: required for admins and approvers (enrol-only until then), the code step of the
sign-in, wrong and replayed codes refused and counted, recovery codes once, resets (own with a code, an admin's of
another user), tokens cannot enrol."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from metrosight.api.app import ApiConfig, create_app
from metrosight.config.model import Settings
from metrosight.policy.totp import code_at, current_step
from tests.unit.api.conftest import CAMERAS, PASSWORD, Api, make_runtime

REQUIRED = {"required_roles": ["admin", "approver"]}


@pytest.fixture()
def api2(tmp_path: Path, template_home: tuple[Path, dict[str, str]]) -> Api:
    """The test service with the default requirement: admins and approvers need a second factor."""
    shutil.copytree(template_home[0], tmp_path / "home")
    rt = make_runtime(tmp_path / "home", cameras=CAMERAS, totp=REQUIRED)
    app = create_app(rt, config=ApiConfig(poll_seconds=0.2))
    return Api(rt, None, app, TestClient(app), template_home[1])  # type: ignore[arg-type]


def session(api: Api) -> TestClient:
    return TestClient(api.app)  # type: ignore[arg-type]


def login(c: TestClient, user: str, code: str | None = None):  # type: ignore[no-untyped-def]
    body = {"username": user, "password": PASSWORD}
    if code is not None:
        body["code"] = code
    return c.post("/api/login", json=body)


def csrf(c: TestClient) -> dict[str, str]:
    return {"X-CSRF-Token": c.get("/api/me").json()["csrf_token"]}


def enrol(api: Api, user: str) -> tuple[TestClient, str, list[str]]:
    """Sign ``user`` in with their password and enrol an app; returns the session, the secret and the recovery
    codes. The confirming code is of the current time step."""
    c = session(api)
    assert login(c, user).status_code == 200
    h = csrf(c)
    e = c.post("/api/me/totp", headers=h)
    assert e.status_code == 200, e.text
    secret = e.json()["secret"]
    assert e.json()["uri"].startswith(f"otpauth://totp/metrosight:{user}?secret={secret}")
    res = c.post("/api/me/totp/confirm", json={"code": code_at(secret, current_step())}, headers=h)
    assert res.status_code == 200, res.text
    return c, secret, res.json()["recovery_codes"]


def test_the_default_configuration_requires_it_of_admins_and_approvers():
    assert Settings().totp.required_roles == ["admin", "approver"]
    with pytest.raises(ValueError, match="unknown role"):
        Settings.model_validate({"totp": {"required_roles": ["root"]}})


def test_an_admin_without_a_factor_may_only_enrol_one(api2: Api):
    c = session(api2)
    assert login(c, "ada").status_code == 200
    h = csrf(c)
    for method, url in (("GET", "/api/alerts"), ("GET", "/api/users"), ("POST", "/api/tokens")):
        res = c.request(method, url, headers=h, json={"name": "sneaky"} if method == "POST" else None)
        assert res.status_code == 403, (url, res.text)
        assert "needs a second factor" in res.json()["detail"]
    page = c.get("/", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/account/totp"
    assert c.get("/api/me/totp").json() == {"enrolled": False, "pending": False, "recovery_left": 0, "required": True}
    secret = c.post("/api/me/totp", headers=h).json()["secret"]
    wrong = c.post("/api/me/totp/confirm", json={"code": "000000"}, headers=h)
    assert wrong.status_code == 409 and "wrong code" in wrong.json()["detail"]
    assert c.get("/api/me/totp").json()["pending"] is True
    res = c.post("/api/me/totp/confirm", json={"code": code_at(secret, current_step())}, headers=h)
    assert res.status_code == 200
    codes = res.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert c.get("/api/alerts").status_code == 200  # this session now has both factors
    assert c.get("/api/me/totp").json()["recovery_left"] == 10
    assert {"totp.enrol_begin", "totp.enrol_failed", "totp.enrol"} <= set(api2.actions())
    # an operator's role needs none: their password session acts at once
    op = session(api2)
    assert login(op, "carol").status_code == 200 and op.get("/api/alerts").status_code == 200


def test_sign_in_asks_for_the_code_and_refuses_wrong_and_replayed_ones(api2: Api):
    _, secret, recovery = enrol(api2, "bob")
    c = session(api2)
    res = login(c, "bob")
    assert res.status_code == 401 and res.headers["x-metrosight-otp"] == "required"
    assert c.get("/api/me").status_code == 401  # no session yet
    wrong = c.post("/api/login/totp", json={"code": "123456" if code_at(secret, current_step()) != "123456" else "1"})
    assert wrong.status_code == 401 and "wrong code" in wrong.json()["detail"]
    # the enrolment spent the current step: a code of the next one is accepted (the clock may be a step apart)…
    code = code_at(secret, current_step() + 1)
    ok = c.post("/api/login/totp", json={"code": code})
    assert ok.status_code == 200 and ok.json()["name"] == "bob"
    assert c.get("/api/watchlists").status_code == 200
    # …once: the same code again, in another sign-in, is refused
    other = session(api2)
    assert login(other, "bob").status_code == 401
    replay = other.post("/api/login/totp", json={"code": code})
    assert replay.status_code == 401 and "already used" in replay.json()["detail"]
    assert login(session(api2), "bob", code=code).status_code == 401  # in one step too
    # a recovery code works once
    assert other.post("/api/login/totp", json={"code": recovery[0].upper()}).status_code == 200
    third = session(api2)
    assert login(third, "bob").status_code == 401
    assert third.post("/api/login/totp", json={"code": recovery[0]}).status_code == 401
    audit = [(e.action, json.loads(e.details)) for e in api2.rt.store.audit.entries()]
    failed = [d for a, d in audit if a == "auth.totp_failed"]
    assert [d["reason"] for d in failed] == ["wrong code", "code already used", "code already used", "wrong code"]
    assert ("totp.recovery_used", {"recovery_left": 9}) in audit
    logins = [d for a, d in audit if a == "auth.login"]
    assert logins[-1]["via"] == "pwd+totp"


def test_wrong_codes_count_towards_the_lock_out(api2: Api):
    _, secret, _ = enrol(api2, "bob")
    c = session(api2)
    assert login(c, "bob").status_code == 401
    bad = "000000" if code_at(secret, current_step()) != "000000" else "111111"
    for _ in range(5):
        assert c.post("/api/login/totp", json={"code": bad}).status_code == 401
    assert c.post("/api/login/totp", json={"code": code_at(secret, current_step() + 1)}).status_code == 429
    assert login(session(api2), "bob").status_code == 429  # the password too: one limit per user and address


def test_resets_own_with_a_code_and_an_admins_of_another(api2: Api):
    bob, bob_secret, _ = enrol(api2, "bob")
    ada, ada_secret, _ = enrol(api2, "ada")
    # an admin resets bob's factor: audited, bob's session signed in with it ends, bob must enrol again
    assert ada.delete("/api/users/bob/totp", headers=csrf(ada)).status_code == 204
    assert bob.get("/api/me").status_code == 401
    entry = next(e for e in reversed(api2.rt.store.audit.entries()) if e.action == "totp.reset")
    assert (entry.actor, entry.target, json.loads(entry.details)["own"]) == ("ada", "bob", False)
    again = session(api2)
    assert login(again, "bob").status_code == 200  # no factor now: a password session, enrol-only
    assert again.get("/api/watchlists").status_code == 403
    # nobody but an admin resets another's; an admin resets their own with a code, not this way
    carol = session(api2)
    assert login(carol, "carol").status_code == 200
    assert carol.delete("/api/users/ada/totp", headers=csrf(carol)).status_code == 403
    assert ada.delete("/api/users/ada/totp", headers=csrf(ada)).status_code == 403
    h = csrf(ada)
    assert ada.post("/api/me/totp/reset", json={"code": "000001"}, headers=h).status_code == 401
    ok = ada.post("/api/me/totp/reset", json={"code": code_at(ada_secret, current_step() + 1)}, headers=h)
    assert ok.status_code == 204
    assert ada.get("/api/me/totp").json()["enrolled"] is False
    assert ada.get("/api/users").status_code == 403  # back to enrol-only


def test_a_token_cannot_enrol_nor_does_it_ask_for_a_code(api2: Api):
    assert api2.as_("ada", "POST", "/api/me/totp").status_code == 403
    assert api2.as_("ada", "GET", "/api/users").status_code == 200  # tokens were made by a signed-in user


def test_the_ui_asks_for_the_code_after_the_password(api2: Api):
    _, secret, _ = enrol(api2, "bob")
    c = session(api2)
    res = c.post(
        "/login", data={"username": "bob", "password": PASSWORD, "next": "/watchlists"}, follow_redirects=False
    )
    assert res.status_code == 303 and res.headers["location"] == "/login/totp?next=/watchlists"
    page = c.get("/login/totp?next=/watchlists")
    assert page.status_code == 200 and 'name="code"' in page.text
    bad = c.post("/login/totp", data={"code": "12", "next": "/watchlists"}, follow_redirects=False)
    assert bad.status_code == 401 and "wrong code" in bad.text
    ok = c.post(
        "/login/totp", data={"code": code_at(secret, current_step() + 1), "next": "/watchlists"}, follow_redirects=False
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/watchlists"
    assert c.get("/watchlists").status_code == 200
