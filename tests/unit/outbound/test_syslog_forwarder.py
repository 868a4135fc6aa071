"""The audit-log forwarder: what one audit entry becomes as a syslog record, and the durable cursor (nothing lost,
nothing sent twice across failures and restarts). A fake stream here; real TCP/TLS collectors in
tests/integration/test_syslog_channel.py."""

from __future__ import annotations

import json

from metrosight.config.channels import SyslogConfig
from metrosight.outbound.rfc5424 import format_record
from metrosight.outbound.syslog import CHANNEL, SyslogForwarder, audit_record, severity_of
from metrosight.store.repo import Store
from tests.integration.receivers import parse_rfc5424, read_frames

CFG = SyslogConfig(host="127.0.0.1", port=6514, facility="authpriv", app_name="metrosight", enterprise_id=32473)


class FakeStream:
    """Collects what was sent; ``fail`` makes connect/send raise (a collector that is down)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.fail = False
        self.connected = False

    def connect(self) -> None:
        if self.fail:
            raise ConnectionRefusedError("refused")
        self.connected = True

    def send(self, data: bytes) -> None:
        if self.fail:
            self.connected = False
            raise BrokenPipeError("broken")
        self.buf.extend(data)

    def check(self) -> None:
        if self.fail:
            raise ConnectionError("closed")

    def close(self) -> None:
        self.connected = False

    def seqs(self) -> list[int]:
        return [int(parse_rfc5424(f).sd["audit@32473"]["seq"]) for f in read_frames(bytearray(self.buf))]


def test_an_audit_entry_becomes_one_record_with_its_sequence_and_hash(tmp_path):
    store = Store.for_home(tmp_path)
    store.audit.record("anonymous", "auth.login_failed", "bob", {"ip": "10.0.0.9", "count": 3})
    entry = store.audit.entries()[-1]
    rec = parse_rfc5424(format_record(audit_record(entry, CFG, "node-1", "77")))
    assert (rec.facility, rec.severity, rec.msgid, rec.app_name, rec.hostname, rec.procid) == (
        10,
        4,
        "auth.login_failed",
        "metrosight",
        "node-1",
        "77",
    )
    sd = rec.sd["audit@32473"]
    assert sd == {
        "seq": str(entry.seq),
        "hash": entry.hash,
        "prev": entry.prev_hash,
        "actor": "anonymous",
        "action": "auth.login_failed",
        "target": "bob",
        "class": "security",
    }
    body = json.loads(rec.msg or "")
    assert body == {
        "seq": entry.seq,
        "at": entry.at,
        "actor": "anonymous",
        "action": "auth.login_failed",
        "target": "bob",
        "details": {"count": 3, "ip": "10.0.0.9"},
    }


def test_severities():
    assert severity_of("cli.auth_failed") == 4 and severity_of("auth.login_refused") == 4
    assert severity_of("alert.read") == 6 and severity_of("alert.list") == 6
    assert severity_of("entry.approve") == 5 and severity_of("alert.create") == 5


def test_the_cursor_moves_only_past_what_was_sent_and_survives_a_restart(tmp_path):
    store = Store.for_home(tmp_path)
    for i in range(5):
        store.audit.record("ada", "test.act", f"t{i}", {"i": i})
    stream = FakeStream()
    fwd = SyslogForwarder(CFG.model_copy(update={"batch": 2}), store.audit, stream)
    assert fwd.pump() == 2 and fwd.pump() == 2
    first = store.audit.forwarded(CHANNEL)
    stream.fail = True  # the collector goes down
    store.audit.record("ada", "test.act", "t5", {})
    try:
        fwd.pump()
        raise AssertionError("a send to a collector that is down must raise")
    except OSError:
        pass
    assert store.audit.forwarded(CHANNEL) == first  # nothing counted as forwarded
    # a restart (a new forwarder on a new store object) resumes after the cursor
    stream.fail = False
    again = SyslogForwarder(CFG, Store.for_home(tmp_path).audit, stream)
    while again.pump():
        pass
    seqs = stream.seqs()
    assert seqs == list(range(1, len(seqs) + 1))  # in order, none missing, none twice
    assert seqs[-1] == store.audit.entries()[-1].seq


def test_a_forwarder_that_lost_the_race_for_the_cursor_sends_nothing_more(tmp_path):
    store = Store.for_home(tmp_path)
    store.audit.record("ada", "test.act", None, {})
    assert store.audit.mark_forwarded(CHANNEL, None, 1)
    assert not store.audit.mark_forwarded(CHANNEL, None, 1)  # compare-and-set: the stored cursor is 1
    assert store.audit.forwarded(CHANNEL) == 1


class FlakyAudit:
    """The store's audit log, failing its first ``fail`` reads (a database restart)."""

    def __init__(self, audit, fail: int) -> None:
        self.audit, self.fail = audit, fail

    def after(self, seq, limit):
        if self.fail:
            self.fail -= 1
            raise RuntimeError("server closed the connection unexpectedly")
        return self.audit.after(seq, limit)

    def __getattr__(self, name):
        return getattr(self.audit, name)


def test_a_store_that_fails_for_a_while_delays_forwarding_and_loses_nothing(tmp_path, caplog, monkeypatch):
    import time

    import metrosight.outbound.syslog as syslog

    monkeypatch.setattr(syslog, "STORE_RETRY_SECONDS", 0.05)
    store = Store.for_home(tmp_path)
    for i in range(3):
        store.audit.record("ada", "test.act", f"t{i}", {})
    stream = FakeStream()
    fwd = SyslogForwarder(CFG.model_copy(update={"poll_seconds": 0.05}), FlakyAudit(store.audit, 3), stream)
    fwd.start()
    try:
        deadline = time.monotonic() + 10
        while len(stream.seqs()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        fwd.stop(1.0)
    assert stream.seqs() == [1, 2, 3]
    assert "cannot read or mark the audit log: server closed the connection" in caplog.text
