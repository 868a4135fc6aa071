"""No camera credential is ever shown, logged, stored or served, whatever it contains, on every host.

Random user names, passwords (reserved characters, spaces, Unicode) and credential query parameters, in every
source scheme, are run through each host the way a user runs them:

- the single process (``metrosight run``, in-process: every log record at DEBUG is captured);
- a node (the supervisor and its worker processes, started by the operator service as ``serve`` does, so that
  ``/api/cameras`` is asked too, as a viewer and as an admin);
- a cluster worker (``metrosight -v worker`` as a process) on a real Redis, with the operator service consuming
  that Redis (``serve --bus``).

The cameras cannot be reached (nothing listens on their ports), so each goes down with its address in the
reason: what is shown and stored then is the redacted address. Checked: CLI output (stdout, stderr of every
process, worker processes included), log records, every row of every table of the database, every payload on the
bus (in-process, or every key and stream entry in Redis), and the API's responses. The field case
``camera-credentials/node.yaml`` runs through the same hosts.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from metrosight.config.home import Home
from metrosight.config.load import load_settings
from metrosight.services.suite import Services
from tests.conftest import require_case
from tests.integration.helpers import cli
from tests.integration.procs import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

METROSIGHT = str(Path(sys.executable).with_name("metrosight"))
SCHEMES = ("rtsp", "rtsps", "http", "https", "rtmp", "rtmps", "udp", "rtp")
PARAMS = (
    "token",
    "password",
    "passwd",
    "pwd",
    "key",
    "secret",
    "auth",
    "signature",
    "apikey",
    "access_token",
    "Access_Token",
    "X-Api-Key",
    "X-Amz-Signature",
    "passphrase",
)
INGEST = {
    "open_timeout_seconds": 1.0,
    "stall_timeout_seconds": 1.0,
    "reconnect_initial_seconds": 0.05,
    "reconnect_max_seconds": 0.2,
    "down_after_attempts": 2,
}
PASSWORD = "correct horse battery"

secret_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=6, max_size=14
).filter(lambda s: s.strip() == s and len(set(s)) >= 3 and not s.isdigit() and "***" not in s)


@dataclass(frozen=True)
class Cam:
    id: str
    source: str
    secrets: tuple[str, ...]


@st.composite
def camera_sets(draw: st.DrawFn) -> list[Cam]:
    """One camera per scheme, each with its own random credentials, pointing at a port where nothing listens."""
    cams = []
    for scheme in SCHEMES:
        user = draw(st.one_of(st.none(), st.just(""), secret_text))
        password = draw(st.one_of(st.none(), secret_text))
        param = draw(st.sampled_from(PARAMS))
        value = draw(st.one_of(st.none(), secret_text))
        encode = draw(st.booleans())  # percent-encoded, or '@' and spaces left as typed (FFmpeg reads the last '@')
        q = (lambda s: quote(s, safe="")) if encode else (lambda s: quote(s, safe="@ "))
        userinfo = ""
        if user is not None or password is not None:
            userinfo = q(user or "") + (":" + q(password) if password is not None else "") + "@"
        query = f"?{param}={quote(value, safe='')}&fps=5" if value is not None else ""
        source = f"{scheme}://{userinfo}127.0.0.1:{free_port()}/live/ch1{query}"
        cams.append(Cam(f"cam-{scheme}", source, tuple(s for s in (user, password, value) if s)))
    return cams


def case_cameras(root: Path) -> tuple[list[Cam], Path]:
    """The cameras of ``camera-credentials/node.yaml``, as the case gives them but on a port where nothing
    listens here (the case's 8554 may be in use on a shared machine), and the case's config file so rewritten."""
    case = yaml.safe_load(require_case("camera-credentials", "node.yaml").read_text())
    port = str(free_port())
    cams = []
    for c in case["cameras"]:
        c["source"] = c["source"].replace(":8554/", f":{port}/")
        userinfo = c["source"].split("://", 1)[1].rsplit("@", 1)[0]
        user, _, password = userinfo.partition(":")
        cams.append(Cam(c["id"], c["source"], (password,)))  # "admin" is also a role name: the passwords
    root.mkdir(parents=True, exist_ok=True)
    path = root / "node.yaml"
    path.write_text(yaml.safe_dump(case))
    return cams, path


def forms(secret: str) -> set[str]:
    """Every way a secret could be written down: as is, percent-encoded, form-encoded, JSON- and repr-escaped."""
    return {
        secret,
        quote(secret, safe=""),
        quote(secret, safe="@ "),
        quote(secret, safe="/"),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
    }


def assert_nowhere(cams: list[Cam], where: dict[str, str]) -> None:
    for cam in cams:
        for secret in cam.secrets:
            for form in forms(secret):
                for name, text in where.items():
                    assert form not in text, f"{cam.id}: credential {secret!r} (as {form!r}) in {name}"


def write_config(path: Path, cams: list[Cam]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.safe_dump(
            {
                "ingest": INGEST,
                "node": {"workers": 1, "pin_cores": False, "shutdown_timeout_seconds": 10},
                "cameras": [{"id": c.id, "source": c.source} for c in cams],
            },
            allow_unicode=True,
        )
    )
    return path


def database_text(rt: Services) -> str:
    """Every row of every table, as text."""
    from sqlalchemy import MetaData, select

    md = MetaData()
    md.reflect(rt.store.engine)
    rows = []
    with rt.store.engine.connect() as c:
        for table in md.sorted_tables:
            rows += [f"{table.name}: {tuple(r)!r}" for r in c.execute(select(table))]
    return "\n".join(rows)


def with_users(home: Path, settings_path: Path) -> tuple[Services, dict[str, str]]:
    """The installation of ``home`` with an admin and a viewer, and an API token each."""
    from metrosight.policy.passwords import hash_password

    rt = Services.open(Home(home), load_settings(settings_path, environ={}))
    store = rt.store
    store.users.add("ada", ["admin"], None, hash_password(PASSWORD))
    acc = store.accounts
    ada = store.users.actor("ada")
    acc.add_user("vic", ["viewer"], PASSWORD, ada)
    return rt, {n: acc.create_token(n, "tests", store.users.actor(n))[1] for n in ("ada", "vic")}  # each their own


def api_cameras(client, tokens: dict[str, str]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    out = {}
    for user, token in tokens.items():
        r = client.get("/api/cameras", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        out[f"/api/cameras as {user}"] = r.text
        page = client.get("/cameras", headers={"Authorization": f"Bearer {token}"})  # the UI's camera page
        out[f"/cameras page as {user}"] = page.text
    return out


def wait_down(client, token: str, cams: list[Cam], timeout: float) -> list[dict]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    rows: list[dict] = []
    while time.monotonic() < deadline:
        rows = client.get("/api/cameras", headers={"Authorization": f"Bearer {token}"}).json()
        if {r["id"] for r in rows if r["state"] == "down"} >= {c.id for c in cams}:
            return rows
        time.sleep(0.2)
    raise AssertionError(f"cameras not all down: {[(r['id'], r['state'], r['reason']) for r in rows]}")


# -- the hosts ------------------------------------------------------------------------------------------------
def single_process(cams: list[Cam], root: Path, caplog, capfd) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    capfd.readouterr()
    home = root / "home"
    cfg = write_config(root / "cfg.yaml", cams)
    where: dict[str, str] = {}
    code, out, err = cli(home, "config", "check", cfg)
    assert code == 0, err
    where["config check"] = out + err
    for cam in cams:
        code, out, err = cli(home, "-v", "run", "--source", cam.source, "--camera", cam.id, "--config", cfg, "--json")
        assert code != 0 and f"camera {cam.id} is down" in err, (cam.source, err)
        assert "***" in err or not cam.secrets  # the address is shown, redacted
        where[f"run {cam.id}"] = out + err
    fd = capfd.readouterr()
    where["process stdout/stderr"] = fd.out + fd.err
    where["log records"] = "\n".join(f"{r.name}: {r.getMessage()}" for r in caplog.records)
    where["database"] = database_text(Services.open(Home(home), load_settings(cfg, environ={})))
    assert_nowhere(cams, where)


def node_host(cams: list[Cam], root: Path, caplog, capfd, cfg: Path | None = None) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from metrosight.api.app import create_app
    from metrosight.bus.base import TOPIC_CAMERA_STATE
    from metrosight.bus.inproc import InProcessBus
    from metrosight.cli.serve import supervisor_hook

    caplog.set_level(logging.DEBUG)
    caplog.clear()
    capfd.readouterr()
    cfg = cfg or write_config(root / "cfg.yaml", cams)
    root.mkdir(parents=True, exist_ok=True)
    rt, tokens = with_users(root / "home", cfg)
    bus = InProcessBus()
    payloads: list[str] = []
    bus.subscribe(TOPIC_CAMERA_STATE, lambda p: payloads.append(p.model_dump_json()))
    app = create_app(rt, bus=bus, startup=[supervisor_hook(logging.DEBUG)])
    with TestClient(app) as client:
        rows = wait_down(client, tokens["ada"], cams, 120)
        where = api_cameras(client, tokens)
    for r in rows:
        assert r["source"] and (("***" in r["source"]) or not any(c.secrets for c in cams if c.id == r["id"]))
    fd = capfd.readouterr()
    where["bus payloads"] = "\n".join(payloads)
    where["worker and service output"] = fd.out + fd.err
    where["log records"] = "\n".join(f"{r.name}: {r.getMessage()}" for r in caplog.records)
    where["database"] = database_text(rt)
    assert payloads and "camera_state" in where["database"]
    assert_nowhere(cams, where)
    # the `node` command prints the same states, one JSON object a line
    code, out, err = cli(root / "home", "node", "--config", cfg, "--duration", "4", "--json")
    fd = capfd.readouterr()
    assert_nowhere(cams, {"node output": out + err + fd.out + fd.err})


def cluster_host(cams: list[Cam], root: Path, redis_url: str, capfd, cfg: Path | None = None) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from metrosight.api.app import create_app
    from metrosight.bus.inproc import InProcessBus
    from metrosight.bus.redis_streams import connect
    from metrosight.pipeline.consumer import startup_hook

    cfg = cfg or write_config(root / "cfg.yaml", cams)
    root.mkdir(parents=True, exist_ok=True)
    home = root / "home"
    rt, tokens = with_users(home, cfg)
    prefix = f"t{uuid.uuid4().hex[:6]}"
    worker = subprocess.Popen(
        [
            METROSIGHT,
            "--home",
            str(home),
            "--config",
            str(cfg),
            "-v",
            "worker",
            "--bus",
            redis_url,
            "--lease-seconds",
            "2",
            "--prefix",
            prefix,
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        app = create_app(rt, bus=InProcessBus(), startup=[startup_hook(redis_url, prefix)])
        with TestClient(app) as client:
            wait_down(client, tokens["ada"], cams, 180)
            where = api_cameras(client, tokens)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            out, err = worker.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            out, err = worker.communicate()
    assert "runs camera" in err  # the worker logged its cameras: with their redacted addresses
    where["worker stdout/stderr"] = out + err
    client_r = connect(redis_url)
    dump = []
    for key in client_r.scan_iter(f"{prefix}*"):
        kind = client_r.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "stream":
            dump += [repr(e) for e in client_r.xrange(key)]
        elif kind == "hash":
            dump.append(repr(client_r.hgetall(key)))
        elif kind == "string":
            dump.append(repr(client_r.get(key)))
        else:
            dump.append(f"{key!r}: {kind}")
    where["redis"] = "\n".join(dump)
    where["database"] = database_text(rt)
    assert "CameraStateV1" in where["redis"]  # the states went over Redis
    assert "runs" in where["database"]
    fd = capfd.readouterr()
    where["service output"] = fd.out + fd.err
    assert_nowhere(cams, where)


# -- the property, on each host ---------------------------------------------------------------------------------
HOST_SETTINGS = settings(
    max_examples=int(os.environ.get("METROSIGHT_CREDENTIAL_EXAMPLES", "3")),
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each example runs real processes
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@HOST_SETTINGS
@given(cams=camera_sets())
def test_single_process_never_shows_a_credential(cams, tmp_path, caplog, capfd):
    single_process(cams, tmp_path / uuid.uuid4().hex[:8], caplog, capfd)


@HOST_SETTINGS
@given(cams=camera_sets())
def test_node_workers_and_api_never_show_a_credential(cams, tmp_path, caplog, capfd):
    node_host(cams, tmp_path / uuid.uuid4().hex[:8], caplog, capfd)


@HOST_SETTINGS
@given(cams=camera_sets())
def test_cluster_worker_on_redis_never_shows_a_credential(cams, tmp_path, redis_server, capfd):
    cluster_host(cams, tmp_path / uuid.uuid4().hex[:8], redis_server.url, capfd)


# -- the field case on every host ---------------------------------------------------------------------------------
def test_camera_credentials_case_on_every_host(tmp_path, caplog, capfd, redis_server):
    cams, path = case_cameras(tmp_path)
    assert any("@" in s for c in cams for s in c.secrets)  # a password with '@' (and one with no user name)
    single_process(cams, tmp_path / "single", caplog, capfd)
    node_host(cams, tmp_path / "node", caplog, capfd, cfg=path)
    cluster_host(cams, tmp_path / "cluster", redis_server.url, capfd, cfg=path)
