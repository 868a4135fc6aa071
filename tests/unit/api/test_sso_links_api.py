"""``/api/users/{name}/sso``: admins link provider identities to users (audited); users see their own links."""

from __future__ import annotations

from tests.unit.api.conftest import Api

ISS = "https://sso.example.org/realms/metro"


def test_admins_link_and_unlink_and_users_see_their_own(api: Api) -> None:
    assert api.as_("bob", "POST", "/api/users/bob/sso", json={"subject": "s-1", "issuer": ISS}).status_code == 403
    res = api.as_("ada", "POST", "/api/users/bob/sso", json={"subject": "s-1", "issuer": ISS})
    assert res.status_code == 201 and res.json()["user"] == "bob" and not res.json()["provisioned"]
    assert api.as_("ada", "POST", "/api/users/bob/sso", json={"subject": "s-1", "issuer": ISS}).status_code == 409
    assert api.as_("ada", "POST", "/api/users/nobody/sso", json={"subject": "s", "issuer": ISS}).status_code == 404
    both = {"subject": "s-2", "email": "b@metro.example", "issuer": ISS}
    assert api.as_("ada", "POST", "/api/users/bob/sso", json=both).status_code == 409
    assert api.as_("ada", "POST", "/api/users/bob/sso", json={"subject": "s-2"}).status_code == 409  # no auth.oidc
    assert [x["subject"] for x in api.as_("bob", "GET", "/api/users/bob/sso").json()] == ["s-1"]
    assert api.as_("carol", "GET", "/api/users/bob/sso").status_code == 403
    url = f"/api/users/bob/sso?subject=s-1&issuer={ISS}"
    assert api.as_("bob", "DELETE", url).status_code == 403
    assert api.as_("ada", "DELETE", url).status_code == 204
    assert api.as_("ada", "DELETE", url).status_code == 404
    assert api.as_("bob", "GET", "/api/users/bob/sso").json() == []
    assert api.actions().count("oidc.link") == 1 and api.actions().count("oidc.unlink") == 1
