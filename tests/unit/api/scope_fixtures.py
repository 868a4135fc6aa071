"""The installation of ``tests/scope_world.py`` served by the operator app, with each user's token and a session
login, for the scoped-role API tests (``test_scope_matrix.py``, ``test_scope_live.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from metrosight.api.app import ApiConfig, create_app
from metrosight.bus.inproc import InProcessBus
from metrosight.policy.passwords import hash_password
from metrosight.services.suite import Services
from tests.scope_world import CAMERA_GROUPS, CAMERAS, SCOPED_USERS, World, populate
from tests.unit.api.conftest import make_runtime

PASSWORD = "correct horse battery"


@dataclass
class Scoped:
    rt: Services
    app: FastAPI
    world: World
    tokens: dict[str, str]
    token_ids: dict[str, int]

    def client(self, user: str) -> TestClient:
        """A client signed in as ``user`` twice over: a session cookie (pages) and a bearer token (API)."""
        c = TestClient(self.app)
        res = c.post("/api/login", json={"username": user, "password": PASSWORD})
        assert res.status_code == 200, res.text
        c.headers["Authorization"] = f"Bearer {self.tokens[user]}"
        return c


@pytest.fixture(scope="module")
def hashed() -> str:
    return hash_password(PASSWORD)  # Argon2 is slow on purpose: once for every user of the module


@pytest.fixture()
def scoped(tmp_path: Path, hashed: str) -> Scoped:
    # no second factor required: the sessions of the approvers and the admin reach every page, as the others do
    rt = make_runtime(tmp_path / "home", cameras=CAMERAS, camera_groups=CAMERA_GROUPS, totp={"required_roles": []})
    users = ["ada", "bob", *SCOPED_USERS]
    world = populate(rt.store, rt.home.media, dict.fromkeys(users, hashed))
    tokens, ids = {}, {}
    for u in users:
        info, tokens[u] = rt.store.accounts.create_token(u, "tests", rt.store.users.actor(u))
        ids[u] = info.id
    app = create_app(rt, bus=InProcessBus(), config=ApiConfig(poll_seconds=0.2))
    for cam in ("cam-a1", "cam-b1"):  # the board's live snapshots (kept in memory), one per camera
        app.state.services.cameras.on_snapshot(cam, f"\xff\xd8board snapshot of {cam}".encode())
    return Scoped(rt, app, world, tokens, ids)
