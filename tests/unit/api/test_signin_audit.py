"""Failed sign-ins are counted into one audit row per (user, address) and window; refusals per address; memory
stays bounded under a flood of user names."""

from __future__ import annotations

import json

from metrosight.api.security import SignInAudit


def test_one_row_per_user_address_and_window():
    a = SignInAudit(window=60.0)
    for i in range(100):
        a.failed("bob", "10.0.0.1", now=i * 0.1)
    a.failed("bob", "10.0.0.2", now=1.0)
    for i in range(40):
        a.refused(f"user{i}", "10.0.0.1", now=5.0 + i * 0.01)
    assert a.due(now=59.0) == []  # nothing closed yet
    rows = a.due(now=61.5)
    assert [(act, t, d["ip"], d["count"]) for act, t, d in rows] == [
        ("auth.login_failed", "bob", "10.0.0.1", 100),
        ("auth.login_failed", "bob", "10.0.0.2", 1),
    ]
    rows = a.due(now=65.5)
    assert [(act, t, d["count"], len(d["users"])) for act, t, d in rows] == [("auth.login_refused", "*", 40, 20)]
    assert a.due(now=1000.0) == []
    a.failed("bob", "10.0.0.1", now=2000.0)  # a new window
    assert [d["count"] for *_, d in a.due(all=True)] == [1]


def test_a_flood_of_user_names_is_folded_per_address():
    a = SignInAudit(window=60.0, max_keys=10)
    for i in range(1000):
        a.failed(f"guess{i}", "10.0.0.9", now=0.0)
    rows = a.due(all=True)
    assert len(rows) == 11
    folded = [d for _, t, d in rows if t == "*"]
    assert folded[0]["count"] == 990 and sum(d["count"] for *_, d in rows) == 1000


def test_refused_permissions_are_one_row_per_user_address_and_window():
    a = SignInAudit(window=60.0)
    for i in range(30):
        a.denied("vic", "10.0.0.7", f"GET /api/users/{i % 12}", now=i * 0.1)
    a.denied("carol", "10.0.0.7", "POST /api/watchlists", now=1.0)
    rows = a.due(now=61.5)
    assert [(act, t, d["count"], d["reason"]) for act, t, d in rows] == [
        ("auth.denied", "vic", 30, "permission denied"),
        ("auth.denied", "carol", 1, "permission denied"),
    ]
    assert rows[0][2]["requests"] == [f"GET /api/users/{i}" for i in range(10)]  # the first 10 distinct


def test_a_403_from_the_api_is_audited_as_a_denial(api):
    from metrosight.api.app import write_signin_audit

    assert api.as_("vic", "GET", "/api/users").status_code == 403  # a viewer may not list users
    assert api.as_("carol", "GET", "/api/audit").status_code == 403  # an operator may not read the audit log
    assert api.as_("ada", "GET", "/api/users").status_code == 200  # allowed: not counted
    write_signin_audit(api.app.state.services, all=True)
    denied = [e for e in api.rt.store.audit.entries() if e.action == "auth.denied"]
    got = {(e.target, json.loads(e.details)["count"], tuple(json.loads(e.details)["requests"])) for e in denied}
    assert got == {("vic", 1, ("GET /api/users",)), ("carol", 1, ("GET /api/audit",))}


def test_the_service_forwards_denials_and_failed_sign_ins_to_syslog_as_security_events(tmp_path, template_home):
    import shutil

    from fastapi.testclient import TestClient

    from metrosight.api.app import ApiConfig, create_app
    from metrosight.bus.inproc import InProcessBus
    from metrosight.cli.serve import syslog_hook
    from tests.integration.receivers import SyslogReceiver
    from tests.unit.api.conftest import CAMERAS, make_runtime

    rx = SyslogReceiver().start()
    shutil.copytree(template_home[0], tmp_path / "home")
    cfg = {"syslog": {"host": "127.0.0.1", "port": rx.port, "poll_seconds": 0.1}}
    rt = make_runtime(tmp_path / "home", cameras=CAMERAS, outbound=cfg)
    app = create_app(rt, bus=InProcessBus(), config=ApiConfig(poll_seconds=0.2), startup=[syslog_hook])
    try:
        with TestClient(app) as client:
            vic = {"Authorization": f"Bearer {template_home[1]['vic']}"}
            assert client.get("/api/users", headers=vic).status_code == 403
            assert client.post("/api/login", json={"username": "bob", "password": "nope"}).status_code == 401
        # the service stopped: its open bursts were written and forwarded before the forwarder's last flush
        entries = rt.store.audit.entries()
        assert rx.wait_for(lambda r: len(r) >= len(entries), 10)
    finally:
        rx.stop()
    by_action = {r.msgid: r for r in rx.records}
    for action, target in (("auth.denied", "vic"), ("auth.login_failed", "bob")):
        rec = by_action[action]
        assert (rec.severity, rec.sd["audit@32473"]["class"], rec.sd["audit@32473"]["target"]) == (
            4,
            "security",
            target,
        )
    assert [int(r.sd["audit@32473"]["seq"]) for r in rx.records] == [e.seq for e in entries]
