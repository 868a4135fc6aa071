"""The ``outbound`` section (MQTT and syslog): each mistake named in one line by ``config check``."""

from __future__ import annotations

import pytest

from metrosight.config import ConfigError, load_settings
from tests.integration.receivers import make_test_pki


def load(tmp_path, text: str, environ: dict[str, str] | None = None):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return load_settings(p, environ=environ or {})


def test_off_unless_configured(tmp_path):
    s = load_settings(None, environ={})
    assert s.outbound.mqtt is None and s.outbound.syslog is None


def test_defaults_ports_by_tls(tmp_path):
    pki = make_test_pki(tmp_path / "pki")
    s = load(tmp_path, f"outbound:\n  syslog: {{host: siem}}\n  mqtt: {{host: broker, tls: {{ca_file: {pki.ca}}}}}\n")
    assert s.outbound.syslog is not None and s.outbound.mqtt is not None
    assert s.outbound.syslog.effective_port == 601 and s.outbound.syslog.facility_code() == 10
    assert s.outbound.mqtt.effective_port == 8883 and s.outbound.mqtt.qos == 1


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("outbound:\n  syslog: {host: siem, port: 0}\n", "outbound.syslog.port"),
        ("outbound:\n  syslog: {host: siem, port: 70000}\n", "less than or equal to 65535"),
        ("outbound:\n  syslog: {host: siem, tls: {ca_file: /nope/ca.pem}}\n", "/nope/ca.pem does not exist"),
        ("outbound:\n  syslog: {host: siem, facility: local9}\n", "facility 'local9' is unknown"),
        ("outbound:\n  syslog: {host: siem, facility: 24}\n", "out of range"),
        ("outbound:\n  syslog: {host: siem, app_name: 'my app'}\n", "printable ASCII without spaces"),
        ("outbound:\n  syslog: {host: 'a b'}\n", "not a host name"),
        ("outbound:\n  mqtt: {host: broker, password_env: PW}\n", "without username"),
        ("outbound:\n  mqtt: {host: broker, username: u, password_env: 'bad name'}\n", "not an environment variable"),
        ("outbound:\n  mqtt: {host: broker, topic_prefix: 'a/#'}\n", "not a topic prefix"),
        ("outbound:\n  mqtt: {host: broker, topic_prefix: '/a'}\n", "not a topic prefix"),
        ("outbound:\n  mqtt: {host: broker, topic_prefix: '$SYS'}\n", "the broker's own"),
        ("outbound:\n  mqtt: {host: broker, qos: 3}\n", "outbound.mqtt.qos"),
        ("outbound:\n  mqtt: {host: broker, colour: red}\n", "outbound.mqtt.colour"),
        ("outbound:\n  mqtt: {host: broker, events: [alerts]}\n", "outbound.mqtt.events.0"),
        ("outbound:\n  mqtt: {host: broker, camera_groups: ['a/b']}\n", "camera group"),
    ],
)
def test_mistakes_are_named(tmp_path, text, says):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text)
    assert says in str(err.value)


def test_a_file_that_is_not_a_ca_bundle_is_named(tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="not a PEM bundle of CA certificates"):
        load(tmp_path, f"outbound:\n  syslog: {{host: siem, tls: {{ca_file: {bad}}}}}\n")


def test_the_password_is_read_from_the_environment_or_a_file_and_never_shown(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("s3cret-from-file\n")
    s = load(tmp_path, f"outbound:\n  mqtt: {{host: b, username: u, password_file: {pw}}}\n")
    assert s.outbound.mqtt is not None and s.outbound.mqtt.password() == "s3cret-from-file"
    assert "s3cret" not in repr(s) and "s3cret" not in s.model_dump_json()
    s = load(tmp_path, "outbound:\n  mqtt: {host: b, username: u, password_env: MQ_PW}\n")
    assert s.outbound.mqtt is not None
    with pytest.raises(ValueError, match="MQ_PW is not set"):
        s.outbound.mqtt.password()
