"""``metrosight doctor``'s checks of the outbound channels configured in the file: can this host reach the syslog
collector (TCP, and the TLS handshake with the configured CA) and sign in to the MQTT broker? Nothing is sent: the
syslog check opens and closes a connection, the MQTT check connects with a client id of its own and no last will,
publishes nothing and disconnects."""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Iterator
from typing import Any

from metrosight.config.channels import MqttConfig, SyslogConfig
from metrosight.config.model import Settings
from metrosight.ops.checks import Check, Status, guard

TIMEOUT_SECONDS = 5.0


def check_syslog(cfg: SyslogConfig | None, timeout: float = TIMEOUT_SECONDS) -> Check:
    """The collector accepts a connection (and completes the TLS handshake, verifying its certificate)."""
    if cfg is None:
        return Check("syslog", Status.SKIP, "outbound.syslog is not configured")
    from metrosight.outbound.syslog import StreamTransport

    where = f"{cfg.host}:{cfg.effective_port}" + (" over TLS" if cfg.tls is not None else " over TCP")
    t = StreamTransport(cfg.host, cfg.effective_port, cfg.tls, min(timeout, cfg.connect_timeout_seconds))
    try:
        t.connect()
    except OSError as exc:
        return Check(
            "syslog",
            Status.FAIL,
            f"{where}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            "check that the collector listens there (and, with TLS, that tls.ca_file signs its certificate and it "
            "names the host); audit entries wait in the database until it is reachable",
        )
    finally:
        t.close()
    if cfg.tls is None and not _loopback(cfg.host):
        return Check(
            "syslog",
            Status.WARN,
            f"{where}: reachable, but the audit log (names, reasons, addresses) crosses the network in clear",
            "configure outbound.syslog.tls (RFC 5425)",
        )
    return Check("syslog", Status.OK, f"{where}: reachable")


def check_mqtt(cfg: MqttConfig | None, timeout: float = TIMEOUT_SECONDS) -> Check:
    """The broker accepts a connection with the configured credentials and TLS."""
    if cfg is None:
        return Check("mqtt", Status.SKIP, "outbound.mqtt is not configured")
    import paho.mqtt.client as mqtt

    from metrosight.outbound import pollselect

    pollselect.install()  # paho's select() refuses descriptors above 1023 (see metrosight.outbound.pollselect)
    where = f"{cfg.host}:{cfg.effective_port}" + (" over TLS" if cfg.tls is not None else "")
    try:
        password = cfg.password()
    except ValueError as exc:
        return Check("mqtt", Status.FAIL, str(exc), "set the variable or fix the file for the service's user")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"metrosight-doctor-{os.getpid()}")
    if cfg.username is not None:
        client.username_pw_set(cfg.username, password)
    if cfg.tls is not None:
        client.tls_set_context(cfg.tls.context())
    answered = threading.Event()
    outcome: list[Any] = []

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        outcome.append(reason)
        answered.set()

    client.on_connect = on_connect
    try:
        client.connect(cfg.host, cfg.effective_port, keepalive=max(5, round(timeout) * 2))
        client.loop_start()
        answered.wait(timeout)
    except (OSError, ValueError) as exc:
        return Check(
            "mqtt",
            Status.FAIL,
            f"{where}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            "check that the broker listens there (and, with TLS, that tls.ca_file signs its certificate)",
        )
    finally:
        client.disconnect()
        client.loop_stop()
    if not outcome:
        return Check("mqtt", Status.FAIL, f"{where}: no answer within {timeout:.0f} s", "check the broker and port")
    reason = outcome[0]
    if getattr(reason, "is_failure", False):
        return Check(
            "mqtt",
            Status.FAIL,
            f"{where}: the broker refused the connection ({reason})",
            "check username and the password (password_env / password_file) and the broker's ACL",
        )
    done = f"{where}: connected" + (f" as {cfg.username}" if cfg.username else "")
    if cfg.tls is None and password is not None and not _loopback(cfg.host):
        return Check("mqtt", Status.WARN, f"{done}, but the password is sent in clear", "configure outbound.mqtt.tls")
    if cfg.password_file is not None and cfg.password_file.stat().st_mode & 0o077:
        return Check(
            "mqtt", Status.WARN, f"{done}; {cfg.password_file} is readable by others", f"chmod 0600 {cfg.password_file}"
        )
    return Check("mqtt", Status.OK, done)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_outbound(settings: Settings) -> Iterator[Check]:
    """The configured outbound channels, one check each (skipped when not configured)."""
    out = settings.outbound
    yield guard("syslog", lambda: check_syslog(out.syslog))
    yield guard("mqtt", lambda: check_mqtt(out.mqtt))
