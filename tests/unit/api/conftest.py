"""An operator service on a fresh home with fake face models (no model is loaded), users with tokens."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from metrosight.api.app import ApiConfig, create_app
from metrosight.bus.inproc import InProcessBus
from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.core.types import Box
from metrosight.policy.passwords import hash_password
from metrosight.services.installation import Installation
from metrosight.services.models import Models
from metrosight.services.suite import Services
from tests.unit.fakes import ColourEmbedder, ScriptedDetector, paint_frame

FACE = Box(200, 100, 360, 300)
SCRIPT = {1: [FACE], 2: [], 3: [FACE, Box(400, 120, 560, 320)], 4: [FACE]}
USERS = {
    "ada": ["admin", "approver", "operator", "auditor"],
    "bob": ["approver", "operator"],
    "carol": ["operator"],
    "aud": ["auditor"],
    "vic": ["viewer"],
}
PASSWORD = "correct horse battery"


def photo(index: int) -> bytes:
    """A PNG whose scripted detector result is ``SCRIPT[index]`` (the index is painted into pixel (0, 0))."""
    boxes = SCRIPT[index]
    frame = paint_frame(index, [("red" if i == 0 else "blue", b) for i, b in enumerate(boxes)])
    ok, buf = cv2.imencode(".png", cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
    assert ok
    return bytes(buf)


@dataclass
class Api:
    rt: Services
    bus: InProcessBus
    app: object
    client: TestClient
    tokens: dict[str, str]

    def h(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def as_(self, user: str, method: str, url: str, **kw):  # type: ignore[no-untyped-def]
        return self.client.request(method, url, headers={**self.h(user), **kw.pop("headers", {})}, **kw)

    def actions(self) -> list[str]:
        return [e.action for e in self.rt.store.audit.entries()]


def make_runtime(home: Path, **settings: object) -> Services:
    """The services of a home with the scripted detector and the colour embedder. The second factor is required of
    nobody unless ``totp`` says so (its tests: test_totp.py)."""
    settings = {"totp": {"required_roles": []}, **settings}
    inst = Installation.open(Home(home), Settings.model_validate(settings))
    return Services.of(inst, Models(inst.settings, inst.home.cache, ScriptedDetector(SCRIPT), ColourEmbedder()))


CAMERAS = [{"id": "cam-1", "source": "rtsp://user:pw@10.0.0.9/s", "line": "red"}]


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A migrated home with the users and their tokens, made once (Argon2 hashing is slow on purpose)."""
    home = tmp_path_factory.mktemp("template") / "home"
    rt = make_runtime(home, cameras=CAMERAS)
    store = rt.store
    store.users.add("ada", USERS["ada"], None, hash_password(PASSWORD))
    acc = store.accounts
    ada = store.users.actor("ada")
    for name, roles in USERS.items():
        if name != "ada":
            acc.add_user(name, roles, PASSWORD, ada)
    tokens = {name: acc.create_token(name, "tests", store.users.actor(name))[1] for name in USERS}  # each their own
    store.engine.dispose()
    return home, tokens


@pytest.fixture()
def api(tmp_path: Path, template_home: tuple[Path, dict[str, str]]) -> Api:
    shutil.copytree(template_home[0], tmp_path / "home")
    rt = make_runtime(tmp_path / "home", cameras=CAMERAS)
    tokens = template_home[1]
    bus = InProcessBus()
    app = create_app(rt, bus=bus, config=ApiConfig(poll_seconds=0.2))
    client = TestClient(app)
    return Api(rt, bus, app, client, tokens)


def gray_png(size: int = 64) -> bytes:
    ok, buf = cv2.imencode(".png", np.full((size, size, 3), 127, np.uint8))
    assert ok
    return bytes(buf)
