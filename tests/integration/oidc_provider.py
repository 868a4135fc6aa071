"""A real OpenID provider on loopback for the single sign-on tests: the npm package ``oidc-provider`` (certified by
the OpenID Foundation; version pinned in ``tests/oidc/package-lock.json``) run with node by ``tests/oidc/provider.mjs``.

``.ci/run`` installs the package into ``.ci/tools/oidc`` (``npm ci`` from the committed lockfile). Without node or
the package a test skips with the reason, and fails where ``.ci/run`` installed the system packages
(:func:`tests.conftest.missing_system`). To run them here: ``mkdir -p .ci/tools/oidc && cp tests/oidc/package*.json
.ci/tools/oidc/ && npm ci --prefix .ci/tools/oidc``.

:func:`provider_sign_in` plays the browser at the provider (its sign-in form, then the redirects) with httpx and
returns the callback URL the provider sends back, so the tests can hand it to the service — or not, or twice.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO_ROOT, missing_system
from tests.integration.procs import free_port, stop_process

MODULES = REPO_ROOT / ".ci" / "tools" / "oidc" / "node_modules"
SCRIPT = REPO_ROOT / "tests" / "oidc" / "provider.mjs"
SECRET = "test-client-secret-5d1f"  # the test client's secret (a test provider on loopback)


class OidcProvider:
    """``tests/oidc/provider.mjs`` on a free loopback port, with clients and users (rewritable: :meth:`set_users`).

    Args:
        workdir: where its setup, users file and log go.
        redirect_uris: the metrosight client's redirect URIs (its post-logout URI is each one's ``/login``).
        users: ``{login: {"password": …, "claims": {…}}}``.
    """

    def __init__(self, workdir: Path, redirect_uris: list[str], users: dict[str, Any]) -> None:
        node = shutil.which("node")
        if node is None:
            missing_system("node is not installed (apt-get install nodejs npm; .ci/run installs it)")
        if not (MODULES / "oidc-provider" / "package.json").exists():
            missing_system(f"the npm package oidc-provider is not installed in {MODULES.parent} (.ci/run installs it)")
        self.node = str(node)
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.users_file = workdir / "users.json"
        self.set_users(users)
        logout = [u.replace("/auth/oidc/callback", "/login") for u in redirect_uris]
        client = {"response_types": ["code"], "grant_types": ["authorization_code"], "client_secret": SECRET}
        setup = {
            "port": self.port,
            "modules": str(MODULES),
            "users_file": str(self.users_file),
            "clients": [
                {
                    **client,
                    "client_id": "metrosight",
                    "redirect_uris": redirect_uris,
                    "post_logout_redirect_uris": logout,
                },
                {**client, "client_id": "other-app", "redirect_uris": ["http://127.0.0.1:9/cb"]},
            ],
        }
        (workdir / "setup.json").write_text(json.dumps(setup))
        self.proc: subprocess.Popen[bytes] | None = None

    def set_users(self, users: dict[str, Any]) -> None:
        self.users_file.write_text(json.dumps(users))

    def start(self, timeout: float = 30.0) -> None:
        log = (self.workdir / "provider.log").open("wb")
        self.proc = subprocess.Popen([self.node, str(SCRIPT), str(self.workdir / "setup.json")], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"the test provider did not start: {(self.workdir / 'provider.log').read_text()[-2000:]}")

    def stop(self) -> None:
        stop_process(self.proc, 5.0)

    def config(self, redirect_url: str, mappings: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        """The ``auth.oidc`` section for this provider and the ``metrosight`` client."""
        return {
            "issuer": self.issuer,
            "client_id": "metrosight",
            "client_secret": SECRET,
            "redirect_url": redirect_url,
            "scopes": ["openid", "profile", "email", "groups"],
            "mappings": mappings,
            **extra,
        }


def provider_sign_in(auth_url: str, login: str, password: str, stop_at: str) -> str:
    """Play the browser at the provider from ``auth_url``: fill its sign-in form as ``login``, follow its redirects
    until one leads to ``stop_at`` (the relying party's callback) and return that URL (with ``code`` and ``state``).
    """
    url = auth_url
    with httpx.Client(timeout=10) as browser:
        for _ in range(20):
            resp = browser.get(url, follow_redirects=False)
            if resp.status_code == 200 and "<form" in resp.text:
                action = re.search(r'action="([^"]+)"', resp.text)
                assert action, resp.text[:500]
                resp = browser.post(
                    str(httpx.URL(url).join(action.group(1))),
                    data={"login": login, "password": password},
                    follow_redirects=False,
                )
            assert resp.status_code in (302, 303), f"{resp.status_code}: {resp.text[:800]}"
            url = str(httpx.URL(url).join(resp.headers["location"]))
            if url.startswith(stop_at):
                return url
    raise AssertionError(f"the provider never sent the browser back to {stop_at}")


@pytest.fixture()
def oidc_provider_factory(tmp_path: Path) -> Iterator[Any]:
    """Starts providers (``factory(redirect_uris, users)``) and stops them after the test."""
    started: list[OidcProvider] = []

    def factory(redirect_uris: list[str], users: dict[str, Any]) -> OidcProvider:
        p = OidcProvider(tmp_path / f"provider-{len(started)}", redirect_uris, users)
        p.start()
        started.append(p)
        return p

    yield factory
    for p in started:
        p.stop()
