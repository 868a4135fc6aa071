"""Credentials belong to people (issue 15, findings 3 and 8), on a real server on loopback, SQLite and PostgreSQL.

An admin cannot mint tokens that act as other people; a password an admin reset gives no role until its user sets
their own; a reset or a change revokes tokens, ends sessions and open live feeds; changing one's own password needs
the current one; the password policy refuses common and guessable passwords everywhere; tokens live as long as the
user's roles allow; X-Forwarded-For is believed only from configured proxies; failed sign-ins are audited as bursts.
And the insider: one person (an operator, or an admin) cannot satisfy a two-person rule alone through minted
tokens, sessions and password resets.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import text, update
from typer.testing import CliRunner

from metrosight.api.app import ApiConfig, create_app, write_signin_audit
from metrosight.api.serve import server_config
from metrosight.bus.inproc import InProcessBus
from metrosight.bus.payloads import AlertV1
from metrosight.cli import app as cli_app
from metrosight.policy.passwords import hash_password
from metrosight.services.sinks import AlertSink
from metrosight.store.models import ApiToken
from tests.unit.api.conftest import CAMERAS, make_runtime, photo

pytestmark = pytest.mark.integration

PW = {
    "ada": "plinth orchard saffron",  # admin only: may record entries, may not approve or review
    "bob": "quartz lagoon bramble",  # approver, operator
    "carol": "velvet compass harbour",  # operator
    "dan": "juniper anvil meteor",  # operator
    "vic": "cobalt tundra whistle",  # viewer
}
AUTH_FORM = {"legal_basis": "Code art. 1", "authority": "District court", "reference": "R-7", "expires": "30d"}
ROLES = {
    "ada": ["admin"],
    "bob": ["approver", "operator"],
    "carol": ["operator"],
    "dan": ["operator"],
    "vic": ["viewer"],
}


@dataclass
class Server:
    rt: object
    app: object
    base: str
    svc: object
    db_url: str | None

    def cli(self, *args: str, input: str | None = None) -> tuple[int, str, str]:
        """The real CLI on this installation (same home and database); returns (exit code, stdout, stderr)."""
        env: dict[str, str | None] = {"METROSIGHT_PASSWORD": None, "METROSIGHT_TOKEN": None}
        if self.db_url:
            env["METROSIGHT__STORAGE__DATABASE_URL"] = self.db_url
        if "--as" in args:  # the CLI authenticates its user: the password through the environment
            env["METROSIGHT_PASSWORD"] = PW[args[args.index("--as") + 1]]
        home = self.rt.home.root  # type: ignore[attr-defined]
        r = CliRunner().invoke(cli_app, ["--home", str(home), *args], input=input, env=env)
        if r.exception and not isinstance(r.exception, SystemExit):
            raise r.exception
        return r.exit_code, r.stdout, r.stderr

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=30.0)

    def token(self, user: str, **body: object) -> str:
        """``user`` signs in and creates their own token."""
        with self.client() as c:
            login(c, user)
            res = c.post("/api/tokens", json={"name": "t", **body}, headers=csrf(c))
            assert res.status_code == 201, res.text
            return str(res.json()["token"])

    def audit(self, prefix: str = "") -> list[tuple[str, str, str | None, dict]]:
        return [
            (e.actor, e.action, e.target, json.loads(e.details))
            for e in self.rt.store.audit.entries()  # type: ignore[attr-defined]
            if e.action.startswith(prefix)
        ]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(c: httpx.Client, user: str, password: str | None = None, **headers: str) -> httpx.Response:
    res = c.post("/api/login", json={"username": user, "password": password or PW[user]}, headers=headers)
    if res.status_code == 200:
        c.headers["X-CSRF-Token"] = res.json()["csrf_token"]
    return res


def csrf(c: httpx.Client) -> dict[str, str]:
    return {"X-CSRF-Token": c.headers.get("X-CSRF-Token", "")}


def serve(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Run ``app`` the way ``metrosight serve`` does (its uvicorn settings) on a free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(server_config(app, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("pg_url"))


def make_server(tmp_path: Path, db_url: str | None, **settings: object) -> Iterator[Server]:
    storage = {"database_url": db_url} if db_url else {}
    settings.setdefault("api", {})
    settings["api"].setdefault("failed_signin_audit_seconds", 3600)  # type: ignore[union-attr]  # the tests flush
    rt = make_runtime(tmp_path / "home", cameras=CAMERAS, storage=storage, **settings)
    store = rt.store
    store.users.add("ada", ROLES["ada"], None, hash_password(PW["ada"]))
    ada = store.users.actor("ada")
    for name in ("bob", "carol", "dan", "vic"):
        store.users.add(name, ROLES[name], ada, hash_password(PW[name]))
    app = create_app(rt, bus=InProcessBus(), config=ApiConfig(poll_seconds=0.2))
    for base in serve(app):
        yield Server(rt, app, base, app.state.services, db_url)


@pytest.fixture()
def server(tmp_path: Path, db_url: str | None) -> Iterator[Server]:
    yield from make_server(tmp_path, db_url)


def entry_and_alert(srv: Server, recorder_token: str) -> int:
    """Watchlist ``wl``, an entry recorded by the token's user, approved by bob, and one alert; the alert's id."""
    with srv.client() as c:
        assert (
            c.post(
                "/api/watchlists", json={"name": "wl", "category": "wanted"}, headers=bearer(recorder_token)
            ).status_code
            == 201
        )
        res = c.post(
            "/api/watchlists/wl/entries",
            data={"subject": "Eve", **AUTH_FORM},
            headers=bearer(recorder_token),
            files=[("photos", ("p1.png", photo(1), "image/png"))],
        )
        assert res.status_code == 201, res.text
        assert c.post("/api/watchlists/wl/entries/Eve/approve", headers=bearer(srv.token("bob"))).status_code == 200
    store = srv.rt.store  # type: ignore[attr-defined]
    AlertSink(store, srv.rt.home.media, None).on_alert(
        AlertV1(  # type: ignore[attr-defined]
            event_id="cam-1:run:1:0",
            camera_id="cam-1",
            track_id=1,
            subject_id=store.entries.all("wl")[0].id,
            subject="Eve",
            watchlist="wl",
            category="wanted",
            score=0.97,
            distance=0.24,
            first_seen=1.0,
            last_seen=2.0,
            samples=3,
            crop_jpeg=None,
        )
    )
    return int(store.reviews.all(store.users.actor("carol"))[0].id)


def alert_status(srv: Server, alert_id: int) -> str:
    with srv.rt.store.uow.read() as s:
        return str(s.execute(text("SELECT status FROM alerts WHERE id = :i"), {"i": alert_id}).scalar())


# -- finding 3: impersonation through minted tokens ---------------------------------------------------------------
def test_an_admin_cannot_mint_tokens_acting_as_other_people(server: Server):
    srv = server
    ada = srv.token("ada")
    with srv.client() as c:
        for user in ("carol", "dan", "bob"):
            res = c.post("/api/tokens", json={"name": "impersonate", "user": user}, headers=bearer(ada))
            assert res.status_code == 403 and "own user's credential" in res.json()["detail"]
    assert [a for a in srv.audit("token.create") if a[2] != a[0]] == []  # no token of anyone minted by another
    code, _, errtext = srv.cli("--as", "ada", "token", "create", "x", "--user", "carol")
    assert code != 0 and "own user's credential" in errtext and "Traceback" not in errtext  # nor through the CLI


def test_tokens_minted_for_others_before_the_upgrade_are_refused(server: Server):
    srv = server
    import secrets

    from metrosight.store.accounts import TOKEN_PREFIX, token_digest

    legacy = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with srv.rt.store.uow.write() as s:
        s.add(
            ApiToken(name="old", user="carol", token_sha256=token_digest(legacy), prefix=legacy[:10], created_by="ada")
        )
    with srv.client() as c:
        assert c.get("/api/me", headers=bearer(legacy)).status_code == 401
        assert c.get("/api/me", headers=bearer(srv.token("carol"))).json()["name"] == "carol"


def test_the_upgrade_revokes_tokens_minted_for_others(tmp_path: Path, db_url: str | None):
    from alembic import command

    from metrosight.store.db import alembic_config, open_engine

    url = db_url or f"sqlite:///{tmp_path / 'old.db'}"
    engine = open_engine(url, upgrade=False)
    with engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
        for tid, user, by in ((1, "carol", "ada"), (2, "ada", "ada")):
            conn.execute(
                text(
                    'INSERT INTO api_tokens (id, name, "user", token_sha256, prefix, created_at, created_by) '
                    "VALUES (:id, 'x', :u, :h, 'mst_x', CURRENT_TIMESTAMP, :b)"
                ),
                {"id": tid, "u": user, "h": f"{tid:064d}", "b": by},
            )
    engine.dispose()
    engine = open_engine(url)
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT id, revoked_by FROM api_tokens")).all())
    assert rows == {1: "upgrade: minted for another user", 2: None}


# -- finding 8: credential hygiene ----------------------------------------------------------------------------------
def test_a_reset_revokes_tokens_ends_sessions_and_live_feeds_and_gives_no_role(server: Server):
    srv = server
    carol_token = srv.token("carol")
    ended = threading.Event()

    def feed() -> None:
        with (
            httpx.Client(base_url=srv.base, timeout=httpx.Timeout(10.0, read=20.0)) as c,
            c.stream("GET", "/api/alerts/stream", headers=bearer(carol_token)) as r,
        ):
            assert r.status_code == 200
            for _ in r.iter_lines():
                pass
        ended.set()

    listener = threading.Thread(target=feed, daemon=True)
    listener.start()
    with srv.client() as carol, srv.client() as ada:
        assert login(carol, "carol").status_code == 200
        time.sleep(0.5)
        assert login(ada, "ada").status_code == 200
        res = ada.put("/api/users/carol/password", json={"password": "granite pelican drum"}, headers=csrf(ada))
        assert res.status_code == 204
        assert carol.get("/api/me").status_code == 401  # her session ended
        assert carol.get("/api/me", headers=bearer(carol_token)).status_code == 401  # her token was revoked
        assert ended.wait(10)  # and the live feed opened with it closed
        # whoever signs in with the password ada chose may be ada: no role until carol sets her own
        assert login(carol, "carol", "granite pelican drum").status_code == 200
        me = carol.get("/api/me").json()
        assert "set by ada" in me["must_set_password"]
        for method, url in (("GET", "/api/alerts"), ("POST", "/api/tokens")):
            res = carol.request(method, url, json={"name": "x"} if method == "POST" else None, headers=csrf(carol))
            assert res.status_code == 403 and "must set their own password" in res.json()["detail"], url
        assert carol.get("/", follow_redirects=False).headers["location"] == "/account"
        users = {u["name"]: u for u in ada.get("/api/users").json()}
        assert users["carol"]["password_reset_by"] == "ada" and users["dan"]["password_reset_by"] is None
        assert 'reset by <span translate="no">ada</span>, not yet changed' in ada.get("/users").text
        res = carol.put(
            "/api/users/carol/password",
            headers=csrf(carol),
            json={"password": "lichen beacon tapestry", "current_password": "granite pelican drum"},
        )
        assert res.status_code == 204
        assert login(carol, "carol", "lichen beacon tapestry").status_code == 200
        assert carol.get("/api/alerts").status_code == 200 and carol.get("/api/me").json()["must_set_password"] is None
        assert ada.get("/api/users").json()[1]["password_reset_by"] is None
    reset, own = [d for actor, action, target, d in srv.audit("user.password")]
    assert reset == {"tokens_revoked": 1, "reset": True}
    assert own == {"tokens_revoked": 0, "reset": False, "after_reset_by": "ada"}


def test_changing_ones_own_password_needs_the_current_one(server: Server):
    srv = server
    with srv.client() as c:
        assert login(c, "dan").status_code == 200
        new = {"password": "granite pelican drum"}
        res = c.put("/api/users/dan/password", json=new, headers=csrf(c))
        assert res.status_code == 403 and "current password" in res.json()["detail"]
        for _ in range(4):  # guessing the current password is rate-limited like signing in (5 failures)
            res = c.put(
                "/api/users/dan/password", json={**new, "current_password": "wrong guess here"}, headers=csrf(c)
            )
            assert res.status_code == 403 and "wrong" in res.json()["detail"]
        res = c.put("/api/users/dan/password", json={**new, "current_password": PW["dan"]}, headers=csrf(c))
        assert res.status_code == 429
    with srv.client() as c:  # the UI form, from a fresh session: wrong, then right
        assert login(c, "bob").status_code == 200
        form = {
            "current": "not my password",
            "password": "granite pelican drum",
            "again": "granite pelican drum",
            "csrf": c.headers["X-CSRF-Token"],
        }
        assert c.post("/account", data=form).status_code == 403
        res = c.post("/account", data={**form, "current": PW["bob"]}, follow_redirects=False)
        assert res.status_code == 303 and res.headers["location"].startswith("/login")
        assert login(c, "bob", "granite pelican drum").status_code == 200
    new = "granite pelican drum"
    code, _, errtext = srv.cli("--as", "vic", "user", "password", "vic", input=f"wrong password here\n{new}\n{new}\n")
    assert code != 0 and "current password is wrong" in errtext
    code, _, errtext = srv.cli("--as", "vic", "user", "password", "vic", input=f"{PW['vic']}\n{new}\n{new}\n")
    assert code == 0, errtext
    with srv.client() as c:
        assert login(c, "vic", new).status_code == 200


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("password", "12 characters"),
        ("password1234", "too easy to guess"),
        ("qwertyuiop123", "too easy to guess"),
        ("1q2w3e4r5t6y7u", "too easy to guess"),
        ("erin-is-my-name-42", "user name"),
        ("MetroSight-2026!", "service's name"),
        ("Metro-Sight2026x", "service's name"),
    ],
)
def test_the_password_policy_refuses_common_and_guessable_passwords_everywhere(
    server: Server, password: str, reason: str
):
    srv = server
    ada = srv.token("ada")
    with srv.client() as c:
        res = c.post(
            "/api/users", json={"name": "erin", "roles": ["viewer"], "password": password}, headers=bearer(ada)
        )
        assert res.status_code == 409 and reason in res.json()["detail"]
        res = c.put("/api/users/vic/password", json={"password": password.replace("erin", "vic")}, headers=bearer(ada))
        assert res.status_code == 409 and reason in res.json()["detail"]
        assert login(c, "vic").status_code == 200  # nothing changed
    code, _, errtext = srv.cli(
        "--as", "ada", "user", "add", "erin", "-r", "viewer", "--password", input=f"{password}\n{password}\n"
    )
    assert code != 0 and reason in errtext and "Traceback" not in errtext
    assert "erin" not in [u for u, *_ in srv.rt.store.users.all()]  # type: ignore[attr-defined]


def test_a_good_passphrase_is_accepted_by_the_cli(server: Server):
    pw = "walnut glacier semaphore"
    code, out, errtext = server.cli(
        "--as", "ada", "user", "add", "erin", "-r", "viewer", "--password", input=f"{pw}\n{pw}\n"
    )
    assert code == 0, errtext
    with server.client() as c:
        assert login(c, "erin", pw).status_code == 200


def test_token_lifetimes_are_capped_by_role(server: Server):
    srv = server
    with srv.client() as c:
        assert login(c, "carol").status_code == 200
        res = c.post("/api/tokens", json={"name": "forever", "never_expires": True}, headers=csrf(c))
        assert res.status_code == 403 and "only admins" in res.json()["detail"]
        res = c.post("/api/tokens", json={"name": "long", "expires_days": 400}, headers=csrf(c))
        assert res.status_code == 409 and "at most 30 days" in res.json()["detail"]
        res = c.post("/api/tokens", json={"name": "default"}, headers=csrf(c))
        assert res.status_code == 201
        days = (datetime.fromisoformat(res.json()["expires_at"]) - datetime.now(UTC)).total_seconds() / 86400
        assert 29.9 < days <= 30.0
    ada_forever = srv.token("ada", never_expires=True)
    assert srv.audit("token.create")[-1][3]["never_expires"] is True
    vic = srv.token("vic", expires_days=300)  # a viewer's scraper may live long
    with srv.rt.store.uow.write() as s:
        s.execute(update(ApiToken).values(created_at=datetime.now(UTC) - timedelta(days=40)))
    with srv.client() as c:
        assert c.get("/metrics", headers=bearer(vic)).status_code == 200
        assert c.get("/api/me", headers=bearer(ada_forever)).status_code == 200
        # vic becomes an operator: the 300-day token outlived what an operator's token may live, and stops
        assert (
            c.patch("/api/users/vic", json={"roles": ["viewer", "operator"]}, headers=bearer(ada_forever)).status_code
            == 200
        )
        assert c.get("/metrics", headers=bearer(vic)).status_code == 401


def test_failed_sign_ins_are_audited_as_bursts_and_still_limited(server: Server):
    srv = server
    with srv.client() as c:
        codes = [
            c.post("/api/login", json={"username": u, "password": "not the password"}).status_code
            for u in ["bob"] * 40 + ["nobody"] * 10
        ]
    assert codes[:5] == [401] * 5 and set(codes[5:40]) == {429}  # 5 failures per user and address
    write_signin_audit(srv.svc, all=True)  # type: ignore[arg-type]
    rows = srv.audit("auth.login_")
    assert len(rows) <= 3, rows  # not one row per attempt
    failed = {t: d["count"] for _, a, t, d in rows if a == "auth.login_failed"}
    refused = sum(d["count"] for _, a, _, d in rows if a == "auth.login_refused")
    assert failed["bob"] == 5 and sum(failed.values()) + refused == 50
    assert all(d["ip"] == "127.0.0.1" for *_, d in rows)


# -- trusted proxies -----------------------------------------------------------------------------------------------
def test_x_forwarded_for_is_not_believed_by_default(server: Server):
    srv = server
    with srv.client() as c:
        codes = [
            c.post(
                "/api/login",
                json={"username": f"u{i}", "password": "not the password"},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            ).status_code
            for i in range(35)
        ]
        assert codes.count(429) == 5  # 30 attempts per address: rotating the header does not reset the limit
        assert login(c, "carol", **{"X-Forwarded-For": "198.51.100.7"}).status_code == 429
    logins = [d for _, a, _, d in srv.audit("auth.") if a == "auth.login"]
    write_signin_audit(srv.svc, all=True)  # type: ignore[arg-type]
    assert {d["ip"] for *_, d in srv.audit("auth.")} == {"127.0.0.1"}  # the audit names the real peer
    assert logins == []


def test_x_forwarded_for_is_believed_from_a_configured_proxy(tmp_path: Path, db_url: str | None):
    for srv in make_server(tmp_path, db_url, api={"trusted_proxies": ["127.0.0.0/8"]}):
        with srv.client() as c:
            # behind one load balancer, two users are told apart by the address it forwards
            for _ in range(5):
                c.post(
                    "/api/login",
                    json={"username": "carol", "password": "nope nope"},
                    headers={"X-Forwarded-For": "198.51.100.1"},
                )
            assert login(c, "carol", **{"X-Forwarded-For": "198.51.100.1"}).status_code == 429
            assert login(c, "carol", **{"X-Forwarded-For": "198.51.100.2"}).status_code == 200
            # a client's own X-Forwarded-For is kept by the proxy on the left: the proxy's entry (rightmost) counts
            assert login(c, "dan", **{"X-Forwarded-For": "10.9.9.9, 198.51.100.3"}).status_code == 200
        ips = [d["ip"] for _, a, _, d in srv.audit("auth.login") if a == "auth.login"]
        assert ips == ["198.51.100.2", "198.51.100.3"]


def test_trusted_proxies_are_checked_by_config_check(tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("api:\n  trusted_proxies: ['*']\n")
    r = CliRunner().invoke(cli_app, ["--home", str(tmp_path / "home"), "config", "check", str(cfg)])
    code, out, errtext = r.exit_code, r.stdout, r.stderr
    assert code != 0 and "trusted_proxies" in out + errtext and "CIDR" in out + errtext


# -- the insider ---------------------------------------------------------------------------------------------------
def test_one_person_cannot_pass_a_two_person_rule_alone(server: Server):
    """carol (operator) and ada (admin) each try to make an alert actionable, or an entry active, alone: through
    a second session, extra tokens, password changes and resets. Every path is refused, and the audit log names
    only the people who acted."""
    srv = server
    ada_token = srv.token("ada")
    alert_id = entry_and_alert(srv, ada_token)
    confirm = f"/api/alerts/{alert_id}/confirm"
    with srv.client() as s1, srv.client() as s2:
        assert login(s1, "carol").status_code == 200 and login(s2, "carol").status_code == 200
        assert s1.post(confirm, headers=csrf(s1)).status_code == 200
        assert s2.post(confirm, headers=csrf(s2)).status_code == 403  # a second session is the same person
        t1 = srv.token("carol")
        assert s1.post(confirm, headers=bearer(t1)).status_code == 403  # so is her token
        assert (
            s1.put(
                "/api/users/carol/password",
                headers=csrf(s1),
                json={"password": "harbour lantern quiver", "current_password": PW["carol"]},
            ).status_code
            == 204
        )
        assert login(s1, "carol", "harbour lantern quiver").status_code == 200
        assert s1.post(confirm, headers=csrf(s1)).status_code == 403  # a new password is still carol
    # ada: no token for dan, and a reset of dan's password gives her no operator
    with srv.client() as c:
        assert c.post("/api/tokens", json={"name": "x", "user": "dan"}, headers=bearer(ada_token)).status_code == 403
        assert (
            c.put(
                "/api/users/dan/password", json={"password": "ember falcon riddle"}, headers=bearer(ada_token)
            ).status_code
            == 204
        )
    with srv.client() as as_dan:
        assert login(as_dan, "dan", "ember falcon riddle").status_code == 200
        res = as_dan.post(confirm, headers=csrf(as_dan))
        assert res.status_code == 403 and "set by ada" in res.json()["detail"]
        assert as_dan.post("/api/tokens", json={"name": "x"}, headers=csrf(as_dan)).status_code == 403
    assert alert_status(srv, alert_id) == "confirmed_once"
    # ada's own entry cannot be approved by a bob she can act as
    with srv.client() as c:
        res = c.post(
            "/api/watchlists/wl/entries",
            data={"subject": "Zed", **AUTH_FORM},
            headers=bearer(ada_token),
            files=[("photos", ("p4.png", photo(4), "image/png"))],
        )
        assert res.status_code == 201
        assert c.post("/api/tokens", json={"name": "x", "user": "bob"}, headers=bearer(ada_token)).status_code == 403
        assert (
            c.put(
                "/api/users/bob/password", json={"password": "nimbus cellar orchid"}, headers=bearer(ada_token)
            ).status_code
            == 204
        )
    with srv.client() as as_bob:
        assert login(as_bob, "bob", "nimbus cellar orchid").status_code == 200
        assert as_bob.post("/api/watchlists/wl/entries/Zed/approve", headers=csrf(as_bob)).status_code == 403
    assert {e.name: e.status for e in srv.rt.store.entries.all("wl")}["Zed"] == "pending"  # type: ignore[attr-defined]
    # the audit log names people, never a credential acting for someone else
    reviews = [
        (actor, action) for actor, action, *_ in srv.audit("alert.") if action in ("alert.confirm", "alert.reject")
    ]
    assert reviews == [("carol", "alert.confirm")]
    resets = [(actor, target) for actor, _, target, d in srv.audit("user.password") if d["reset"]]
    assert resets == [("ada", "dan"), ("ada", "bob")]
    assert srv.rt.store.audit.verify().ok  # type: ignore[attr-defined]
