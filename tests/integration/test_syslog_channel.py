"""The audit log forwarded to a real syslog collector on loopback (RFC 5424, octet-counted, over TLS with a test
certificate and over plain TCP), on SQLite and PostgreSQL: every entry arrives with its sequence number and hash,
in order, none missing and none twice — across a collector outage, a restart of the forwarder, and two processes
that both want to forward."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from metrosight.config.channels import SyslogConfig, TlsConfig
from metrosight.outbound.syslog import CHANNEL, SyslogForwarder
from metrosight.policy.crypto import KeyRing
from metrosight.store.db import open_engine
from metrosight.store.repo import Store
from tests.integration.receivers import Syslog, SyslogReceiver, make_test_pki

pytestmark = pytest.mark.integration
SD = "audit@32473"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path: Path) -> Store:
    url = f"sqlite:///{tmp_path / 'x.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    return Store(open_engine(url), KeyRing(Fernet.generate_key()), tmp_path / "audit.checkpoints")


def seqs(records: list[Syslog]) -> list[int]:
    return [int(r.sd[SD]["seq"]) for r in records]


def fast(cfg: SyslogConfig) -> SyslogConfig:
    return cfg.model_copy(update={"poll_seconds": 0.05, "retry_max_seconds": 0.5, "connect_timeout_seconds": 2.0})


def test_every_entry_reaches_a_tls_collector_in_order_across_an_outage_and_a_restart(store: Store, tmp_path: Path):
    pki = make_test_pki(tmp_path / "pki")
    rx = SyslogReceiver(tls=pki.server_context()).start()
    cfg = fast(SyslogConfig(host="localhost", port=rx.port, tls=TlsConfig(ca_file=pki.ca), app_name="ms-test"))
    fwd = SyslogForwarder(cfg, store.audit)
    fwd.start()
    try:
        for i in range(3):
            store.audit.record("ada", "test.act", f"t{i}", {"i": i})
        assert rx.wait_for(lambda r: len(r) >= 3, 20), rx.errors
        rx.stop()  # the collector goes down
        store.audit.record("anonymous", "cli.auth_failed", "mallory", {"user": "mallory"})  # a security event
        for i in range(3, 6):
            store.audit.record("ada", "test.act", f"t{i}", {"i": i})
        rx.start()  # … and comes back on the same port
        assert rx.wait_for(lambda r: len(r) >= 7, 30), (seqs(rx.records), rx.errors)
    finally:
        fwd.stop(5.0)
    # a restart: entries written while no forwarder ran are sent by the next one, after the cursor
    store.audit.record("ada", "test.act", "t6", {"i": 6})
    again = SyslogForwarder(cfg, store.audit)
    again.start()
    try:
        assert rx.wait_for(lambda r: len(r) >= 8, 20), seqs(rx.records)
    finally:
        again.stop(5.0)
        rx.stop()
    entries = store.audit.entries()
    assert not rx.errors
    assert seqs(rx.records) == [e.seq for e in entries] == list(range(1, 9))  # in order, none missing, none twice
    for rec, e in zip(rx.records, entries, strict=True):
        assert (rec.sd[SD]["hash"], rec.sd[SD]["prev"], rec.msgid, rec.app_name) == (
            e.hash,
            e.prev_hash,
            e.action,
            "ms-test",
        )
        assert json.loads(rec.msg or "")["details"] == json.loads(e.details)
    failed = next(r for r in rx.records if r.msgid == "cli.auth_failed")
    assert (failed.severity, failed.sd[SD]["class"], failed.facility) == (4, "security", 10)
    assert rx.connections >= 3  # reconnected after the outage, and again after the restart
    assert store.audit.forwarded(CHANNEL) == 8


def test_two_forwarders_on_one_database_send_each_entry_once(store: Store):
    rx = SyslogReceiver().start()
    cfg = fast(SyslogConfig(host="127.0.0.1", port=rx.port))
    a, b = SyslogForwarder(cfg, store.audit), SyslogForwarder(cfg, store.audit)
    a.start()
    b.start()
    try:
        for i in range(20):
            store.audit.record("ada", "test.act", f"t{i}", {"i": i})
        assert rx.wait_for(lambda r: len(r) >= 20, 20)
        a.stop(2.0)  # the forwarding process ends: the other one takes over
        for i in range(20, 25):
            store.audit.record("ada", "test.act", f"t{i}", {"i": i})
        assert rx.wait_for(lambda r: len(r) >= 25, 20), seqs(rx.records)
    finally:
        a.stop(0.0)
        b.stop(2.0)
        rx.stop()
    assert seqs(rx.records) == list(range(1, 26))


def test_a_collector_whose_certificate_is_not_trusted_gets_nothing_and_the_cursor_stays(store: Store, tmp_path: Path):
    pki = make_test_pki(tmp_path / "pki")
    other = make_test_pki(tmp_path / "other")  # the forwarder trusts another CA
    rx = SyslogReceiver(tls=pki.server_context()).start()
    store.audit.record("ada", "test.act", None, {})
    fwd = SyslogForwarder(
        fast(SyslogConfig(host="localhost", port=rx.port, tls=TlsConfig(ca_file=other.ca))), store.audit
    )
    fwd.start()
    try:
        assert not rx.wait_for(lambda r: len(r) >= 1, 2.0)
    finally:
        fwd.stop(0.5)
        rx.stop()
    assert store.audit.forwarded(CHANNEL) is None


def test_a_permission_refused_on_the_command_line_is_audited_as_a_security_event(tmp_path: Path):
    from tests.integration.helpers import bootstrap, cli

    home = tmp_path / "home"
    bootstrap(home)
    code, _, err = cli(home, "--as", "bob", "audit", "show")  # bob approves and reviews; he may not read the log
    assert code != 0 and "may not" in err, err
    [denied] = [e for e in Store.for_home(home).audit.entries() if e.action == "cli.denied"]
    assert (denied.actor, denied.target) == ("bob", "metrosight audit show")
    assert "may not read the audit log" in json.loads(denied.details)["reason"]
    rx = SyslogReceiver().start()
    fwd = SyslogForwarder(fast(SyslogConfig(host="127.0.0.1", port=rx.port)), Store.for_home(home).audit)
    fwd.start()
    try:
        assert rx.wait_for(lambda r: any(x.msgid == "cli.denied" for x in r), 10)
    finally:
        fwd.stop(1.0)
        rx.stop()
    rec = next(x for x in rx.records if x.msgid == "cli.denied")
    assert (rec.severity, rec.sd[SD]["class"], rec.sd[SD]["actor"]) == (4, "security", "bob")
