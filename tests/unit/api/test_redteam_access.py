"""Red team of issue 19 (access): a client holding a password tries to get past the second factor from many
addresses."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from metrosight.api.app import ApiConfig, create_app
from metrosight.policy.totp import code_at, current_step
from tests.unit.api.conftest import CAMERAS, PASSWORD, Api, make_runtime
from tests.unit.api.test_totp import REQUIRED, enrol


@pytest.fixture()
def site(tmp_path: Path, template_home: tuple[Path, dict[str, str]]) -> Api:
    shutil.copytree(template_home[0], tmp_path / "home")
    rt = make_runtime(tmp_path / "home", cameras=CAMERAS, totp=REQUIRED)
    app = create_app(rt, config=ApiConfig(poll_seconds=0.2))
    return Api(rt, None, app, TestClient(app), template_home[1])  # type: ignore[arg-type]


def from_address(api: Api, n: int) -> TestClient:
    """A browser at another client address (10.9.0.n)."""
    return TestClient(api.app, client=(f"10.9.0.{n}", 40000 + n))  # type: ignore[arg-type]


def wrong_code(secret: str) -> str:
    """A six-digit code valid in none of the accepted time steps."""
    step = current_step()
    valid = {code_at(secret, step + d) for d in (-2, -1, 0, 1, 2)}
    return next(c for c in (f"{n:06d}" for n in range(1000)) if c not in valid)


def test_guessing_codes_from_many_addresses_locks_the_code_step_of_the_account(site: Api) -> None:
    """The per-(user, address) limit alone let a password thief try 5 codes per address every 5 minutes from as
    many addresses as they have (a six-digit code falls to ~330k guesses). Wrong codes of one account from any
    address now count together: past the account's limit the code step answers 429 from every address."""
    _, secret, _ = enrol(site, "ada")
    bad = wrong_code(secret)
    refused = None
    for n in range(1, 40):  # one wrong code per address, each far below the per-address limit
        res = from_address(site, n).post("/api/login", json={"username": "ada", "password": PASSWORD, "code": bad})
        if res.status_code == 429:
            refused = n
            break
        assert res.status_code == 401, res.text
    assert refused is not None and refused <= 11, "the code step of one account was never locked"
    # the pending code step (password first, code after) from yet another address is locked too
    c = from_address(site, 200)
    assert c.post("/api/login", json={"username": "ada", "password": PASSWORD}).status_code == 401
    res = c.post("/api/login/totp", json={"code": bad})
    assert res.status_code == 429 and "Retry-After" in res.headers
    assert "auth.totp_failed" in site.actions()


def test_a_session_of_the_old_factor_ends_although_the_user_enrolled_again(site: Api) -> None:
    """A reset (here an admin's, after a lost phone) ends the sessions signed in with the old factor. They were
    only ended while the user had no factor: once the user enrolled a new one, a session of the old factor that
    had not made a request meanwhile (the thief's) was let in again."""
    _, secret, _ = enrol(site, "ada")
    thief = from_address(site, 66)
    code = code_at(secret, current_step() + 1)
    assert thief.post("/api/login", json={"username": "ada", "password": PASSWORD, "code": code}).status_code == 200
    assert thief.get("/api/alerts").status_code == 200
    store = site.rt.store
    store.users.add("root", ["admin"], store.users.actor("ada"))
    store.second_factor.reset("ada", store.users.actor("root"))
    enrol(site, "ada")  # the owner signs in with the password and enrols the new phone at once
    assert thief.get("/api/alerts").status_code == 401


RU = {"Accept-Language": "ru-RU,ru;q=0.9"}


def test_a_russian_code_page_over_the_limit_and_a_refused_local_account_speak_russian(
    tmp_path: Path, template_home: tuple[Path, dict[str, str]]
) -> None:
    """The sign-in pages translate the refusals they show; the code page's 429 and the sign-in page's refusal of
    a local account (``auth.local_accounts: false``) were shown in English on a Russian page."""
    shutil.copytree(template_home[0], tmp_path / "home")
    auth = {"local_accounts": False, "break_glass_users": ["ada"]}
    rt = make_runtime(tmp_path / "home", cameras=CAMERAS, totp=REQUIRED, auth=auth)
    app = create_app(rt, config=ApiConfig(poll_seconds=0.2))
    api = Api(rt, None, app, TestClient(app), template_home[1])  # type: ignore[arg-type]
    browser = TestClient(app, headers=RU)  # type: ignore[arg-type]
    page = browser.post("/login", data={"username": "carol", "password": PASSWORD}, follow_redirects=False)
    assert page.status_code == 403
    assert "password sign-in is disabled" not in page.text and "single sign-on" not in page.text
    assert "auth.local_accounts" in page.text  # the setting, named as data

    _, secret, _ = enrol(api, "ada")
    bad = wrong_code(secret)
    for n in range(1, 12):
        from_address(api, n).post("/api/login", json={"username": "ada", "password": PASSWORD, "code": bad})
    c = TestClient(app, headers=RU, client=("10.9.1.1", 4000))  # type: ignore[arg-type]
    first = c.post("/login", data={"username": "ada", "password": PASSWORD}, follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"].startswith("/login/totp")
    page = c.post("/login/totp", data={"code": bad, "next": "/"}, follow_redirects=False)
    assert page.status_code == 429
    assert "too many" not in page.text and "try again" not in page.text


@pytest.mark.parametrize("spelled", ["ada%20", "%20ada", "ada%09"])
def test_an_admin_cannot_reset_their_own_factor_without_a_code_by_spelling_their_name_otherwise(
    site: Api, spelled: str
) -> None:
    """``DELETE /api/users/{name}/totp`` refuses an admin's own name (their own factor is reset with a code), but
    compared the name as typed, while the store finds the user by the normalised name: ``ada `` reset ada's."""
    c, _, _ = enrol(site, "ada")
    res = c.delete(f"/api/users/{spelled}/totp", headers={"X-CSRF-Token": c.get("/api/me").json()["csrf_token"]})
    assert res.status_code == 403, res.text
    assert site.rt.store.second_factor.enrolled("ada")


@pytest.mark.parametrize("spelled", ["ada%20", "%20ada"])
def test_your_own_password_needs_the_current_one_however_your_name_is_spelled(api: Api, spelled: str) -> None:
    """Changing your own password needs the current one (a taken-over session or token must not set it); the
    check compared the name as typed, so ``ada `` let ada's token set ada's password as an admin's "reset" that
    left the account in use, without the current password."""
    res = api.as_("ada", "PUT", f"/api/users/{spelled}/password", json={"password": "velvet compass harbour"})
    assert res.status_code == 403, res.text
    assert "current password" in res.json()["detail"]
    assert api.as_("ada", "GET", "/api/me").status_code == 200  # nothing changed: the token still works


def test_a_mistyped_enrolment_code_is_told_in_russian_on_a_russian_page(site: Api) -> None:
    """The account page's enrolment showed the refusal of a mistyped code in English on a Russian page."""
    c = TestClient(site.app, headers=RU)  # type: ignore[arg-type]
    assert c.post("/api/login", json={"username": "carol", "password": PASSWORD}).status_code == 200
    csrf = c.get("/api/me").json()["csrf_token"]
    begun = c.post("/account/totp/begin", data={"csrf": csrf})
    assert begun.status_code == 200
    pending = site.rt.store.second_factor.pending(site.rt.store.users.actor("carol"), "metrosight")
    assert pending is not None
    page = c.post("/account/totp/confirm", data={"csrf": csrf, "code": wrong_code(pending.secret)})
    assert page.status_code == 409
    assert "wrong code" not in page.text and "authenticator app shows now" not in page.text


def test_a_wrong_current_password_is_told_in_russian_on_a_russian_account_page(site: Api) -> None:
    """The account page showed the refusal of a wrong current password in English on a Russian page."""
    c = TestClient(site.app, headers=RU)  # type: ignore[arg-type]
    assert c.post("/api/login", json={"username": "carol", "password": PASSWORD}).status_code == 200
    csrf = c.get("/api/me").json()["csrf_token"]
    new = "velvet compass harbour"
    page = c.post("/account", data={"csrf": csrf, "current": "not my password", "password": new, "again": new})
    assert page.status_code == 403
    assert "current password" not in page.text
