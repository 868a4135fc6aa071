"""Real receivers for the outbound channels, started by the tests on loopback.

- :class:`SyslogReceiver`: a TCP (or TLS) syslog collector that reads octet-counted frames (RFC 6587 3.4.1) and
  parses each as RFC 5424 (:func:`parse_rfc5424`, strict: a malformed record fails the test). It can be stopped
  and started again on the same port (a collector that goes down).
- :class:`Mosquitto`: Debian's ``mosquitto`` broker with a generated configuration (a loopback listener, optional
  password file, TLS and persistence), never the system service.
- :class:`Subscriber`: a paho-mqtt client that records every message (topic, payload, retain flag).
- :func:`make_test_pki`: a CA and a server certificate for ``localhost``/127.0.0.1 made with ``cryptography``.
- :class:`WebhookReceiver`: an HTTP server that checks each webhook delivery's signature
  (:func:`metrosight.outbound.signing.verify`, the receiver's side of the scheme) and records what it got; it can
  be taken down and brought back on the same port, answer with another status, redirect, stream a huge response,
  or answer slowly.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from metrosight.outbound import pollselect
from metrosight.outbound.signing import IDEMPOTENCY_HEADER, SignatureError, verify
from tests.conftest import missing_system
from tests.integration.procs import free_port, stop_process

# -- RFC 5424 parsing ----------------------------------------------------------------------------------------------

_HEADER = re.compile(
    r"^<(?P<pri>\d{1,3})>(?P<version>[1-9]\d{0,2}) (?P<ts>\S+) (?P<host>[\x21-\x7e]{1,255}) "
    r"(?P<app>[\x21-\x7e]{1,48}) (?P<procid>[\x21-\x7e]{1,128}) (?P<msgid>[\x21-\x7e]{1,32}) "
)
_TS = re.compile(r"^(-|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2}))$")
_SD_NAME = re.compile(r'[^= \]"\x00-\x20\x7f-\uffff]{1,32}')


@dataclass
class Syslog:
    """One parsed RFC 5424 record."""

    facility: int
    severity: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    sd: dict[str, dict[str, str]] = field(default_factory=dict)
    msg: str | None = None


def _parse_sd(text: str) -> tuple[dict[str, dict[str, str]], str]:
    """The structured data at the start of ``text`` and what follows it."""
    if text.startswith("-"):
        return {}, text[1:]
    out: dict[str, dict[str, str]] = {}
    i = 0
    while i < len(text) and text[i] == "[":
        m = re.compile(r'[^= \]"\x00-\x20\x7f-\uffff]{1,32}(@\d+(\.\d+)*)?').match(text, i + 1)
        if m is None:
            raise ValueError(f"bad SD-ID at {i}: {text[i : i + 40]!r}")
        sd_id, params = m.group(0), {}
        i = m.end()
        while text[i] == " ":
            n = _SD_NAME.match(text, i + 1)
            if n is None or text[n.end() : n.end() + 2] != '="':
                raise ValueError(f"bad SD-PARAM at {i}: {text[i : i + 40]!r}")
            j, value = n.end() + 2, []
            while text[j] != '"':
                if text[j] == "\\" and text[j + 1] in '"\\]':
                    value.append(text[j + 1])
                    j += 2
                elif text[j] in '"]':
                    raise ValueError(f"unescaped {text[j]!r} in a PARAM-VALUE")
                else:
                    value.append(text[j])
                    j += 1
            params[n.group(0)] = "".join(value)
            i = j + 1
        if text[i] != "]":
            raise ValueError(f"SD-ELEMENT not closed at {i}")
        if sd_id in out:
            raise ValueError(f"SD-ID {sd_id} appears twice")
        out[sd_id] = params
        i += 1
    if i == 0:
        raise ValueError("no STRUCTURED-DATA")
    return out, text[i:]


def parse_rfc5424(raw: bytes) -> Syslog:
    """Parse one record strictly (RFC 5424 section 6). Raises ValueError naming what is malformed."""
    text = raw.decode("utf-8")
    m = _HEADER.match(text)
    if m is None:
        raise ValueError(f"not an RFC 5424 header: {text[:80]!r}")
    pri = int(m["pri"])
    if pri > 191 or m["version"] != "1" or not _TS.match(m["ts"]):
        raise ValueError(f"bad PRI, VERSION or TIMESTAMP: {text[:60]!r}")
    sd, rest = _parse_sd(text[m.end() :])
    msg: str | None = None
    if rest:
        if not rest.startswith(" "):
            raise ValueError(f"no space before MSG: {rest[:20]!r}")
        msg = rest[1:]
        if msg.startswith("\ufeff"):
            msg = msg[1:]
    return Syslog(pri // 8, pri % 8, m["ts"], m["host"], m["app"], m["procid"], m["msgid"], sd, msg)


def read_frames(buf: bytearray) -> list[bytes]:
    """Take every complete octet-counted frame (``LEN SP MSG``) off the front of ``buf``."""
    out = []
    while True:
        sp = buf.find(b" ")
        if sp < 0:
            return out
        head = bytes(buf[:sp])
        if not head.isdigit() or head.startswith(b"0"):
            raise ValueError(f"bad MSG-LEN {head[:20]!r}")
        n = int(head)
        if len(buf) < sp + 1 + n:
            return out
        out.append(bytes(buf[sp + 1 : sp + 1 + n]))
        del buf[: sp + 1 + n]


class SyslogReceiver:
    """A syslog collector on 127.0.0.1 (see the module docstring): ``records`` holds what it parsed, in order
    of arrival; ``errors`` anything malformed; ``connections`` how many connections it accepted.

    Args:
        tls: server context (None: plain TCP).
        port: the port (default: a free one); kept across :meth:`stop` and :meth:`start`.
    """

    def __init__(self, tls: ssl.SSLContext | None = None, port: int | None = None) -> None:
        self.tls = tls
        self.port = port or free_port()
        self.records: list[Syslog] = []
        self.errors: list[str] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._server: socket.socket | None = None
        self._clients: list[socket.socket] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> SyslogReceiver:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(8)
        srv.settimeout(0.2)
        self._server, self._stop = srv, threading.Event()
        t = threading.Thread(target=self._accept, args=(srv, self._stop), daemon=True)
        t.start()
        self._threads = [t]
        return self

    def _accept(self, srv: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except (TimeoutError, OSError):
                continue
            try:
                if self.tls is not None:
                    conn.settimeout(5)
                    conn = self.tls.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                self.errors.append(f"TLS handshake: {exc}")
                conn.close()
                continue
            with self._lock:
                self.connections += 1
                self._clients.append(conn)
            t = threading.Thread(target=self._read, args=(conn, stop), daemon=True)
            t.start()
            self._threads.append(t)

    def _read(self, conn: socket.socket, stop: threading.Event) -> None:
        buf = bytearray()
        conn.settimeout(0.2)
        while not stop.is_set():
            try:
                data = conn.recv(65536)
            except (TimeoutError, ssl.SSLWantReadError):
                continue
            except OSError:
                break
            if not data:
                break
            buf.extend(data)
            try:
                frames = read_frames(buf)
            except ValueError as exc:
                self.errors.append(str(exc))
                break
            for f in frames:
                try:
                    rec = parse_rfc5424(f)
                except (ValueError, UnicodeDecodeError) as exc:
                    self.errors.append(f"{exc}: {f[:120]!r}")
                    continue
                with self._lock:
                    self.records.append(rec)
        conn.close()

    def stop(self) -> None:
        """Go down: stop accepting, close every connection (what was already read stays in ``records``)."""
        self._stop.set()
        for t in self._threads:
            t.join(5)
        if self._server is not None:
            self._server.close()
            self._server = None
        with self._lock:
            for c in self._clients:
                with contextlib.suppress(OSError):
                    c.close()
            self._clients = []

    def wait_for(self, pred: object, timeout: float = 30.0) -> bool:
        """Wait until ``pred(records)`` is true (polled)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                seen = list(self.records)
            if pred(seen):  # type: ignore[operator]
                return True
            time.sleep(0.05)
        return False


# -- test certificates ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestPki:
    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx


def make_test_pki(folder: Path) -> TestPki:
    """A self-signed CA and a server certificate it signed for ``localhost`` and 127.0.0.1 (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "metrosight test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    pki = TestPki(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pki


# -- MQTT ----------------------------------------------------------------------------------------------------------


class Mosquitto:
    """Debian's ``mosquitto`` on 127.0.0.1 with a generated configuration (never the system service).

    Args:
        workdir: where the configuration, password file and log go.
        users: user → password; when given, anonymous clients are refused.
        pki: serve TLS with this certificate (clients verify against ``pki.ca``).
        port: the port (default: a free one); kept across :meth:`stop` and :meth:`start`.
    """

    def __init__(
        self,
        workdir: Path,
        users: dict[str, str] | None = None,
        pki: TestPki | None = None,
        port: int | None = None,
        persist: bool = False,
    ) -> None:
        self.binary = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if self.binary is None:
            missing_system("mosquitto is not installed (.ci/run installs it with apt-get)")
        self.workdir, self.users, self.pki, self.persist = workdir, users or {}, pki, persist
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    def _config(self) -> Path:
        lines = [f"listener {self.port} 127.0.0.1", f"log_dest file {self.workdir / 'mosquitto.log'}"]
        if self.persist:  # sessions and queued messages survive a restart (written at a clean stop)
            lines += ["persistence true", f"persistence_location {self.workdir}/"]
        else:
            lines.append("persistence false")
        lines.append("log_type all")
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to the mosquitto user, who cannot read the test's files
        if self.users:
            pw = self.workdir / "passwords"
            pw.write_text("".join(f"{u}:{p}\n" for u, p in self.users.items()))
            pw.chmod(0o600)
            subprocess.run(["mosquitto_passwd", "-U", str(pw)], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        if self.pki is not None:
            lines += [f"cafile {self.pki.ca}", f"certfile {self.pki.cert}", f"keyfile {self.pki.key}"]
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self, timeout: float = 10.0) -> Mosquitto:
        conf = self._config()
        self.proc = subprocess.Popen(
            [str(self.binary), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s")

    def stop(self) -> None:
        stop_process(self.proc, 5.0)
        self.proc = None

    def log(self) -> str:
        p = self.workdir / "mosquitto.log"
        return p.read_text(errors="replace") if p.exists() else ""


@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int


class Subscriber:
    """A paho-mqtt client subscribed to ``topic`` (``#`` wildcards allowed) on ``broker``; ``messages`` in order."""

    def __init__(
        self,
        broker: Mosquitto,
        topic: str,
        username: str | None = None,
        password: str | None = None,
        session: str | None = None,
    ) -> None:
        """``session``: a client id with a persistent session (QoS 1 messages published while this subscriber is
        away are kept for it by the broker); default a fresh id and a clean session."""
        import paho.mqtt.client as mqtt

        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=session or f"test-sub-{free_port()}",
            clean_session=session is None,
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        if username is not None:
            self.client.username_pw_set(username, password)
        if broker.pki is not None:
            self.client.tls_set(ca_certs=str(broker.pki.ca))

        def on_connect(client: mqtt.Client, _u: object, _f: object, rc: object, _p: object = None) -> None:
            client.subscribe(topic, qos=1)

        def on_subscribe(*_a: object) -> None:
            self._subscribed.set()

        def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
            with self._lock:
                self.messages.append(Message(msg.topic, bytes(msg.payload), bool(msg.retain), int(msg.qos)))

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.connect("127.0.0.1" if broker.pki is None else "localhost", broker.port)
        pollselect.install()  # paho's select() fails above descriptor 1023, which a long test session reaches
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("the test subscriber did not get its subscription acknowledged")

    def on(self, topic: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, pred: object, timeout: float = 30.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                seen = list(self.messages)
            if pred(seen):  # type: ignore[operator]
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- webhooks -----------------------------------------------------------------------------------------------------
@dataclass
class Received:
    """One request: its headers, raw body, parsed JSON, and whether the signature checked out (else why not)."""

    path: str
    headers: dict[str, str]
    body: bytes
    doc: Any
    verified: bool
    why: str | None
    status: int = 200
    at: float = field(default_factory=time.time)

    @property
    def key(self) -> str:
        return self.headers.get(IDEMPOTENCY_HEADER.lower(), "")


class WebhookReceiver:
    """A webhook receiver on ``http://127.0.0.1:<port>/hook``.

    Attributes:
        secret: the subscription's secret (set after the subscription is made); None: nothing verifies.
        status: the status answered (2xx: accepted).
        delay: seconds to wait before answering.
        redirect_to: answer 302 to this location instead.
        huge: stream this many bytes of response body.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.secret: str | None = None
        self.status = 200
        self.delay = 0.0
        self.redirect_to: str | None = None
        self.huge = 0
        self.got: list[Received] = []
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight_per_key = 0
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver._handle(self, body)

        deadline = time.monotonic() + 10
        while True:
            try:
                self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
                break
            except OSError:  # the port is still held by the previous socket: try again
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Down: the listening socket is closed (new connections are refused)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _handle(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        headers = {k.lower(): v for k, v in h.headers.items()}
        key = headers.get(IDEMPOTENCY_HEADER.lower(), "")
        with self.lock:
            self.in_flight[key] += 1
            self.max_in_flight_per_key = max(self.max_in_flight_per_key, self.in_flight[key])
        try:
            verified, why = False, "no secret"
            if self.secret is not None:
                try:
                    verify(self.secret, headers, body, now=time.time())
                    verified, why = True, None
                except SignatureError as exc:
                    why = str(exc)
            try:
                doc = json.loads(body)
            except ValueError:
                doc = None
            if self.delay:
                time.sleep(self.delay)
            status = 302 if self.redirect_to else self.status if verified or self.secret is None else 401
            with self.lock:
                self.got.append(Received(h.path, headers, body, doc, verified, why, status))
            if self.redirect_to:
                h.send_response(302)
                h.send_header("Location", self.redirect_to)
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            h.send_response(status)
            if self.huge:
                h.send_header("Content-Length", str(self.huge))
                h.end_headers()
                chunk = b"x" * 65536
                sent = 0
                try:
                    while sent < self.huge:
                        h.wfile.write(chunk)
                        sent += len(chunk)
                except OSError:
                    pass  # the client stopped reading, as it should
                return
            h.send_header("Content-Length", "2")
            h.end_headers()
            h.wfile.write(b"ok")
        except OSError:
            pass  # the client gave up (its timeout): nothing more to say
        finally:
            with self.lock:
                self.in_flight[key] -= 1

    def accepted(self) -> list[Received]:
        """The deliveries whose signature checked out and that were answered with a 2xx."""
        with self.lock:
            return [r for r in self.got if r.verified and 200 <= r.status < 300]

    def wait_for(self, n: int, timeout: float) -> list[Received]:
        """Wait until ``n`` accepted deliveries with distinct idempotency keys arrived (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.accepted()
            if len({r.key for r in got}) >= n:
                return got
            time.sleep(0.05)
        return self.accepted()
