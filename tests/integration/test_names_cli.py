"""Field case decomposed-unicode-name and the camera id rule, through the real CLI and API with the real models."""

from __future__ import annotations

import shutil
import unicodedata
import warnings
from datetime import datetime
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from metrosight.store.repo import Store
from tests.conftest import require_case
from tests.integration.helpers import AUTH, bootstrap, cli, enrol_active, json_lines

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "metrosight" / "sample"
NFC = "José Núñez"


@pytest.fixture(scope="module")
def nfd_home(tmp_path_factory) -> tuple[Path, Path]:
    case = require_case("decomposed-unicode-name", "from-dir-nfd")
    [folder] = [p for p in case.iterdir() if p.is_dir()]
    assert folder.name != NFC and unicodedata.normalize("NFC", folder.name) == NFC  # the case is NFD on disk
    home = tmp_path_factory.mktemp("nfd") / "home"
    bootstrap(home)
    assert cli(home, "--as", "ada", "watchlist", "create", "wanted", "--category", "wanted")[0] == 0
    code, out, err = cli(home, "--as", "ada", "enroll", "-w", "wanted", "--from-dir", case, *AUTH)
    assert code == 0 and "enrolled 1 photo(s) of 1 person(s)" in out, out + err
    return home, folder


def test_the_nfd_folder_is_approved_by_the_name_as_typed(nfd_home):
    home, _ = nfd_home
    code, out, err = cli(home, "--as", "bob", "watchlist", "approve", "wanted", NFC)
    assert code == 0 and f"approved wanted/{NFC}: active until " in out and "UTC" in out, err
    [e] = Store.for_home(home).entries.all("wanted")
    assert e.name == NFC and e.status == "active" and e.approved_by == "bob"


@pytest.mark.parametrize("typed", ["Jоsé Núñez", "JOSÉ NÚÑEZ", "José Νúñez"])  # Cyrillic о, case, Greek Ν
def test_no_look_alike_entry_can_be_created_from_the_cli(nfd_home, typed):
    home, folder = nfd_home
    code, out, _ = cli(home, "--as", "ada", "enroll", "-w", "wanted", "-s", typed, folder / "1.jpg", *AUTH)
    assert code == 1 and f"looks like the existing entry '{NFC}'" in out
    assert [e.name for e in Store.for_home(home).entries.all("wanted")] == [NFC]


def test_the_same_name_typed_with_stray_spaces_is_the_same_entry(nfd_home):
    home, folder = nfd_home
    code, out, _ = cli(home, "--as", "ada", "enroll", "-w", "wanted", "-s", f" {NFC}  ", folder / "1.jpg")
    assert code == 0 and "1 already enrolled" in out
    assert len(Store.for_home(home).entries.all("wanted")) == 1


def test_no_look_alike_entry_can_be_created_through_the_api(nfd_home, tmp_path):
    warnings.filterwarnings("ignore", message=".*httpx.*")
    from fastapi.testclient import TestClient

    from metrosight.api.app import create_app
    from metrosight.config.home import Home
    from metrosight.config.model import Settings
    from metrosight.services.suite import Services

    home, folder = nfd_home
    rt = Services.open(Home(home), Settings())
    token = rt.store.accounts.create_token("ada", "t", rt.store.users.actor("ada"))[1]
    client = TestClient(create_app(rt))
    h = {"Authorization": f"Bearer {token}"}
    form = {"legal_basis": "x", "authority": "y", "reference": "z", "expires": "30d"}
    for typed in ("Jоsé Núñez", "josé núñez"):
        res = client.post(
            "/api/watchlists/wanted/entries",
            headers=h,
            data={"subject": typed, **form},
            files=[("photos", ("1.jpg", (folder / "1.jpg").read_bytes(), "image/jpeg"))],
        )
        assert res.status_code == 422 and "looks like the existing entry" in res.json()["photos"][0]["reason"]
    res = client.get("/api/watchlists/wanted/entries", headers=h)
    assert [e["name"] for e in res.json()] == [NFC]
    res = client.post(
        f"/api/watchlists/wanted/entries/{quote(unicodedata.normalize('NFD', NFC))}/revoke",
        headers=h,
        json={"reason": "test over"},
    )
    assert res.status_code == 200 and res.json()["status"] == "revoked"


def test_todays_date_in_the_deployment_zone_is_accepted_and_shown_with_the_zone(tmp_path):
    zone = "Pacific/Kiritimati"  # UTC+14: its "today" is often the UTC tomorrow
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"deployment: {{timezone: {zone}}}\n")
    home = tmp_path / "home"
    bootstrap(home)
    assert cli(home, "--as", "ada", "watchlist", "create", "wl", "--category", "missing")[0] == 0
    today = datetime.now(ZoneInfo(zone)).date().isoformat()
    auth = ["--legal-basis", "x", "--authority", "y", "--reference", "z", "--expires", today]
    code, out, err = cli(
        home, "--config", cfg, "--as", "ada", "enroll", "-w", "wl", "-s", "Barack Obama", SAMPLE / "obama.jpg", *auth
    )
    assert code == 0, out + err
    assert f"until end of {today} (" in out and zone in out
    [e] = Store.for_home(home).entries.all("wl")
    assert e.expires_at.astimezone(ZoneInfo(zone)).strftime("%H:%M") == "00:00"
    code, _, err = cli(
        home,
        "--config",
        cfg,
        "--as",
        "ada",
        "enroll",
        "-w",
        "wl",
        "-s",
        "Joe Biden",
        SAMPLE / "biden.jpg",
        *auth[:-1],
        "99999999999d",
    )
    assert code == 2 and "too long" in err and "Traceback" not in err


def test_a_no_identification_window_until_a_date_covers_that_day_and_says_so(tmp_path):
    home = tmp_path / "home"
    bootstrap(home)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("deployment: {timezone: Europe/Moscow}\n")
    code, out, err = cli(
        home,
        "--config",
        cfg,
        "--as",
        "ada",
        "privacy",
        "window-add",
        "march",
        "--cameras",
        "Платформа 1",
        "--from",
        "2030-05-01",
        "--until",
        "2030-05-01",
        "--reason",
        "assembly",
    )
    assert code == 0, err
    assert "from 2030-05-01 00:00 MSK (Europe/Moscow" in out and "until end of 2030-05-01 (" in out
    code, _, err = cli(
        home,
        "--as",
        "ada",
        "privacy",
        "window-add",
        "x",
        "--cameras",
        "a/b",
        "--from",
        "0m",
        "--until",
        "1h",
        "--reason",
        "r",
    )
    assert code == 2 and "'/'" in err


@pytest.fixture(scope="module")
def miranda_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("cams") / "home"
    bootstrap(home)
    assert cli(home, "--as", "ada", "watchlist", "create", "wl", "--category", "missing")[0] == 0
    code, out, _ = enrol_active(home, "wl", "-s", "Lin-Manuel Miranda", SAMPLE / "lin-manuel-miranda-still.png")
    assert code == 0 and "enrolled 1 photo" in out
    return home


@pytest.mark.parametrize("camera", ["../../../x", "../x", "a/b", "/tmp/x", "a\x00b", "x" * 65, ".", "a,b"])
def test_run_refuses_hostile_camera_ids_before_anything_is_written(miranda_home, tmp_path, camera):
    before = sorted(p.name for p in miranda_home.parent.iterdir())
    code, out, err = cli(miranda_home, "run", "--source", SAMPLE / "short_hamilton_clip.mp4", "--camera", camera)
    assert code == 2 and "--camera" in err and "Traceback" not in err and out == ""
    assert sorted(p.name for p in miranda_home.parent.iterdir()) == before  # nothing beside the home
    assert not (miranda_home / "media" / "alerts").exists()


@pytest.mark.slow
def test_a_camera_id_with_a_space_a_colon_and_cyrillic_keeps_its_best_shot_inside_the_home(miranda_home, tmp_path):
    shutil.copy(SAMPLE / "short_hamilton_clip.mp4", tmp_path / "clip.mp4")
    camera = "red:платформа 1"
    code, out, err = cli(miranda_home, "run", "--source", tmp_path / "clip.mp4", "--camera", f" {camera} ", "--json")
    assert code == 0, err
    alerts = [x for x in json_lines(out) if x["type"] == "alert"]
    assert alerts and {a["camera"] for a in alerts} == {camera}
    media = (miranda_home / "media").resolve()
    for a in alerts:
        shot = Path(a["best_shot"])
        assert shot.is_file() and shot.resolve().is_relative_to(media) and camera not in str(shot)
    rows = Store.for_home(miranda_home).alerts.all()
    assert {r.camera_id for r in rows} == {camera} and all(r.crop_path for r in rows)
    assert sorted(p.name for p in miranda_home.parent.iterdir()) == ["home"]


@pytest.mark.parametrize(
    "args",
    [
        ("alert", "show", "99999999999999999999999"),
        ("alert", "confirm", "0"),
        ("audit", "show", "--last", "99999999999999999999999"),
        ("privacy", "window-remove", "99999999999999999999999"),
        ("privacy", "window-add", "w", "--from", "0m", "--until", "99999999999d", "--reason", "r"),
        ("token", "create", "t", "--days", "1e12"),
    ],
)
def test_huge_numbers_are_one_clear_error_not_a_traceback(miranda_home, args):
    code, out, err = cli(miranda_home, "--as", "ada", *args)
    assert code == 2 and "Traceback" not in out + err and ("Invalid value" in err or "too long" in err), out + err
