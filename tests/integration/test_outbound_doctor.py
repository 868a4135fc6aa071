"""``metrosight doctor`` reaches the configured syslog collector and MQTT broker (real ones on loopback) and says
what is wrong when it cannot; a host whose MQTT password cannot be read stops with one line before it starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from metrosight.config.channels import MqttConfig, SyslogConfig, TlsConfig
from metrosight.ops.channel_check import check_mqtt, check_syslog
from metrosight.ops.checks import Status
from tests.integration.helpers import cli
from tests.integration.procs import free_port
from tests.integration.receivers import Mosquitto, SyslogReceiver, make_test_pki

pytestmark = pytest.mark.integration


def test_doctor_reaches_a_tls_collector_and_names_an_untrusted_or_absent_one(tmp_path: Path):
    pki, other = make_test_pki(tmp_path / "a"), make_test_pki(tmp_path / "b")
    rx = SyslogReceiver(tls=pki.server_context()).start()
    try:
        ok = check_syslog(SyslogConfig(host="localhost", port=rx.port, tls=TlsConfig(ca_file=pki.ca)))
        untrusted = check_syslog(SyslogConfig(host="localhost", port=rx.port, tls=TlsConfig(ca_file=other.ca)))
    finally:
        rx.stop()
    down = check_syslog(SyslogConfig(host="127.0.0.1", port=free_port()))
    assert ok.status is Status.OK and "reachable" in ok.detail
    assert untrusted.status is Status.FAIL and "CERTIFICATE_VERIFY_FAILED" in untrusted.detail
    assert down.status is Status.FAIL and "refused" in down.detail.lower()
    assert check_syslog(None).status is Status.SKIP
    assert rx.records == []  # the doctor sends nothing


def test_doctor_signs_in_to_the_broker_and_names_a_refused_password(tmp_path: Path, monkeypatch):
    broker = Mosquitto(tmp_path / "mq", users={"metrosight": "right-pass"}).start()
    try:
        monkeypatch.setenv("MQ_PW", "right-pass")
        ok = check_mqtt(MqttConfig(host="127.0.0.1", port=broker.port, username="metrosight", password_env="MQ_PW"))
        monkeypatch.setenv("MQ_PW", "wrong-pass")
        refused = check_mqtt(
            MqttConfig(host="127.0.0.1", port=broker.port, username="metrosight", password_env="MQ_PW")
        )
    finally:
        broker.stop()
    down = check_mqtt(MqttConfig(host="127.0.0.1", port=free_port()))
    assert ok.status is Status.OK, ok.detail
    assert refused.status is Status.FAIL and "refused" in refused.detail and "wrong-pass" not in refused.line()
    assert down.status is Status.FAIL


def test_a_host_stops_with_one_line_when_the_mqtt_password_cannot_be_read(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("NOPE_PW", raising=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("outbound:\n  mqtt: {host: 127.0.0.1, username: u, password_env: NOPE_PW}\n")
    video = Path(__file__).parents[2] / "src/metrosight/sample/short_hamilton_clip.mp4"
    code, out, err = cli(tmp_path / "home", "run", "--source", str(video), "--config", str(cfg))
    assert code != 0
    assert "outbound.mqtt.password_env: the environment variable NOPE_PW is not set" in err
    assert "Traceback" not in err and "frames" not in out  # nothing was analysed


def test_doctor_warns_about_a_password_file_others_can_read(tmp_path: Path):
    broker = Mosquitto(tmp_path / "mq", users={"metrosight": "right-pass"}).start()
    pw = tmp_path / "pw"
    pw.write_text("right-pass\n")
    try:
        pw.chmod(0o644)
        cfg = MqttConfig(host="127.0.0.1", port=broker.port, username="metrosight", password_file=pw)
        loose = check_mqtt(cfg)
        pw.chmod(0o600)
        tight = check_mqtt(cfg)
    finally:
        broker.stop()
    assert loose.status is Status.WARN and loose.fix == f"chmod 0600 {pw}"
    assert tight.status is Status.OK
