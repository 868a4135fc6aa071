"""TLS on `metrosight serve` and the reverse-proxy mode.

`serve` runs (a real process) with a certificate made here with `cryptography`: sign-in, the API and the live
feed (SSE) work over https, the session cookie is Secure, responses carry HSTS. `config check` and `serve` refuse
a missing key, a key of another certificate, a file that is no certificate. Behind a trusted proxy, the proxy's
X-Forwarded-Proto: https makes the cookie Secure and adds HSTS; the same headers from anyone else change nothing
(nor does their X-Forwarded-For: the limit and the audit see the real peer).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from metrosight.api.app import ApiConfig, create_app
from metrosight.api.serve import server_config
from metrosight.cli import app as cli_app
from metrosight.services.sinks import AlertSink
from tests.conftest import REPO_ROOT
from tests.integration.procs import free_port, stop_process
from tests.unit.api import conftest as api_tests
from tests.unit.api.conftest import CAMERAS, PASSWORD, Api, make_runtime
from tests.unit.api.test_api import enrol, make_watchlist
from tests.unit.api.test_live_feed import payload

pytestmark = pytest.mark.integration

METROSIGHT = [sys.executable, "-m", "metrosight.cli"]
template_home = api_tests.template_home  # the API tests' home (users, tokens) and service
api = api_tests.api


def trust(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def make_cert(folder: Path, name: str = "server", days: float = 1) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost valid from 5 minutes ago for ``days`` (negative:
    expired), and its unencrypted key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "metrosight test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=max(0, -days) + 1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def tls_config(path: Path, cert: Path, key: Path) -> Path:
    path.write_text(f"api:\n  tls:\n    certificate: {cert}\n    key: {key}\n")
    return path


@pytest.fixture()
def served(api: Api, tmp_path: Path) -> Iterator[tuple[Api, str, Path]]:
    """`metrosight serve` over TLS on the api fixture's home, with an approved entry to alert on."""
    make_watchlist(api)
    enrol(api, "ada")
    api.as_("bob", "POST", "/api/watchlists/wl/entries/Eve/approve")
    cert, key = make_cert(tmp_path)
    cfg = tls_config(tmp_path / "tls.yaml", cert, key)
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [*METROSIGHT, "--home", str(api.rt.home.root), "serve", "--config", str(cfg), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO_ROOT,
    )
    base = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", verify=trust(cert), timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        yield api, base, cert
    finally:
        stop_process(proc, 20)
        log.close()
    assert f"metrosight serve: https://127.0.0.1:{port}/" in (tmp_path / "serve.log").read_text()


def test_serve_over_tls_api_live_feed_secure_cookie_and_hsts(served: tuple[Api, str, Path]):
    api, base, cert = served
    with pytest.raises((httpx.ConnectError, httpx.RemoteProtocolError)):  # plain HTTP on the TLS port: nothing
        httpx.get(base.replace("https", "http") + "/healthz", timeout=2).raise_for_status()
    with httpx.Client(base_url=base, verify=trust(cert), timeout=10) as c:
        res = c.post("/api/login", json={"username": "carol", "password": PASSWORD})
        assert res.status_code == 200
        cookie = res.headers["set-cookie"].lower()
        assert "metrosight_session=" in cookie and "; secure" in cookie and "httponly" in cookie
        assert res.headers["strict-transport-security"] == "max-age=31536000"
        assert c.get("/healthz").headers["strict-transport-security"] == "max-age=31536000"
        assert c.get("/api/alerts").status_code == 200
        # the live feed over https: an alert stored by another process arrives on the stream
        got: list[tuple[str, dict]] = []
        opened = threading.Event()

        def read() -> None:
            with c.stream("GET", "/api/alerts/stream", timeout=30) as r:
                assert r.status_code == 200
                event = None
                for line in r.iter_lines():
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:") and event:
                        got.append((event, json.loads(line.split(":", 1)[1])))
                        opened.set()
                        if event == "alert":
                            return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert opened.wait(20), "no hello on the feed"
        AlertSink(api.rt.store, api.rt.home.media, None).on_alert(payload(api, 1))
        reader.join(20)
        assert [e for e, _ in got] == ["hello", "alert"]
        assert got[1][1]["subject_name"] == "Eve" and got[1][1]["camera_id"] == "cam-1"


def test_config_check_and_serve_refuse_bad_tls_files(tmp_path: Path):
    cert, key = make_cert(tmp_path)
    other_cert, other_key = make_cert(tmp_path, "other")
    old_cert, old_key = make_cert(tmp_path, "old", days=-1)
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    cases = {
        "missing key": (cert, tmp_path / "nope.key", "cannot read"),
        "another certificate's key": (cert, other_key, "is not the private key of the certificate"),
        "no certificate": (tmp_path / "junk.pem", key, "is not a PEM certificate"),
        "no key": (cert, tmp_path / "junk.pem", "is not a PEM private key"),
        "an expired certificate": (old_cert, old_key, "expired on"),
        "a folder": (tmp_path, key, "cannot read"),
    }
    runner = CliRunner()
    home = str(tmp_path / "home")
    for what, (c, k, message) in cases.items():
        cfg = tls_config(tmp_path / "bad.yaml", c, k)
        for args in (["config", "check", str(cfg)], ["serve", "--config", str(cfg), "--no-cameras"]):
            r = runner.invoke(cli_app, ["--home", home, *args])
            assert r.exit_code != 0, (what, args)
            assert message in r.stderr and "Traceback" not in r.stderr, (what, r.stderr)
    good = tls_config(tmp_path / "good.yaml", other_cert, other_key)
    assert runner.invoke(cli_app, ["--home", home, "config", "check", str(good)]).exit_code == 0
    half = tmp_path / "half.yaml"
    half.write_text(f"api:\n  tls:\n    certificate: {cert}\n")
    r = runner.invoke(cli_app, ["--home", home, "config", "check", str(half)])
    assert r.exit_code != 0 and "both certificate and key" in r.stderr


def run_app(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    port = free_port()
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


@pytest.mark.parametrize("trusted", [True, False])
def test_the_proxy_says_https_only_when_trusted(tmp_path: Path, template_home, trusted: bool):  # type: ignore[no-untyped-def]
    import shutil

    shutil.copytree(template_home[0], tmp_path / "home")
    proxies = ["127.0.0.0/8"] if trusted else ["10.0.0.5"]
    rt = make_runtime(tmp_path / "home", cameras=CAMERAS, api={"trusted_proxies": proxies})
    app = create_app(rt, config=ApiConfig())
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.9"}
    for base in run_app(app):
        with httpx.Client(base_url=base, timeout=10) as c:
            res = c.post("/api/login", json={"username": "carol", "password": PASSWORD}, headers=forwarded)
            assert res.status_code == 200
            cookie = res.headers["set-cookie"].lower()
            assert ("; secure" in cookie) is trusted
            assert ("strict-transport-security" in res.headers) is trusted
            # without the proxy's word the same service answers plain http as such
            plain = c.post("/api/login", json={"username": "carol", "password": PASSWORD})
            assert "; secure" not in plain.headers["set-cookie"].lower()
    ips = [json.loads(e.details)["ip"] for e in rt.store.audit.entries() if e.action == "auth.login"]
    assert ips == (["198.51.100.9", "127.0.0.1"] if trusted else ["127.0.0.1", "127.0.0.1"])


def test_doctor_reports_the_certificate(tmp_path: Path):
    from metrosight.config.model import Settings
    from metrosight.ops.checks import Status
    from metrosight.ops.doctor import check_tls

    def tls(cert: Path, key: Path) -> Settings:
        return Settings.model_validate({"api": {"tls": {"certificate": str(cert), "key": str(key)}}})

    assert check_tls(Settings()).status is Status.SKIP
    cert, key = make_cert(tmp_path, "long", days=90)
    ok = check_tls(tls(cert, key))
    assert ok.status is Status.OK and ok.data["days_left"] > 89
    soon = check_tls(tls(*make_cert(tmp_path, "soon", days=3)))
    assert soon.status is Status.WARN and "renew" in soon.fix
    bad = check_tls(tls(cert, make_cert(tmp_path, "other")[1]))
    assert bad.status is Status.FAIL and "not the private key" in bad.detail
