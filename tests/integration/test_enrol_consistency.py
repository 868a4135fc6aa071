"""Photos of two people given as one entry (real LFW photos, real models): refused together, naming the odd photo,
nothing stored; photos of one person are enrolled as one entry. CLI (photos with --subject, --from-dir with one
mixed folder among good ones, --person), and the API upload. The bound: bench/enrol_consistency.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import require_data
from tests.integration.helpers import AUTH, bootstrap, cli, json_lines

pytestmark = pytest.mark.integration


def lfw(name: str) -> Path:
    return require_data("lfw", "lfw-deepfunneled", name.rsplit("_", 1)[0], name + ".jpg")


ANN = [lfw("Ann_Veneman_0003"), lfw("Ann_Veneman_0005")]  # one person: cosine 0.98
ANGELA = lfw("Angela_Bassett_0002")  # another woman: cosine 0.83 with Ann Veneman 0003


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    bootstrap(h)
    for wl, cat in (("wl", "wanted"), ("missing", "missing")):
        assert cli(h, "--as", "ada", "watchlist", "create", wl, "--category", cat)[0] == 0
    return h


def entries(home: Path, wl: str = "wl") -> list[str]:
    from metrosight.store.repo import Store

    store = Store.for_home(home)
    try:
        return sorted(e.name for e in store.entries.all(wl))
    finally:
        store.engine.dispose()


def _who(home: Path, photo: Path) -> set[str]:
    code, out, err = cli(home, "--as", "ada", "identify", "--json", photo)
    assert code == 0, err
    return {f["subject"] for r in json_lines(out) for f in r["faces"] if f.get("subject")}


def test_two_people_in_one_enroll_are_refused_naming_the_odd_photo(home: Path) -> None:
    code, out, err = cli(home, "--as", "ada", "enroll", "-w", "wl", "-s", "Ann Veneman", *ANN, ANGELA, *AUTH)
    assert code != 0, out + err
    assert "not all of one person" in out and f"remove {ANGELA}" in out and "enrol each person separately" in out
    assert "cosine 0.8" in out and "nothing of 'Ann Veneman' was stored" in out
    assert entries(home) == []
    code, out, err = cli(home, "--as", "ada", "enroll", "-w", "wl", "-s", "Ann Veneman", *ANN, *AUTH)
    assert code == 0 and "enrolled 2 photo(s) of 1 person(s)" in out, out + err
    assert entries(home) == ["Ann Veneman"]


def test_from_dir_refuses_the_mixed_folder_and_enrols_the_others(home: Path, tmp_path: Path) -> None:
    folders = {
        "Ann_Veneman": ANN,
        "Bob_Graham": [lfw("Bob_Graham_0002"), lfw("Bob_Graham_0003")],
        "Mixed_Up": [lfw("Edmund_Stoiber_0004"), lfw("Bill_Frist_0002")],  # cosine 0.84
    }
    for name, photos in folders.items():
        (tmp_path / "in" / name).mkdir(parents=True)
        for p in photos:
            shutil.copy(p, tmp_path / "in" / name / p.name)
    code, out, err = cli(home, "--as", "ada", "enroll", "-w", "wl", "--from-dir", tmp_path / "in", *AUTH)
    assert code == 0, out + err
    assert "Bill_Frist_0002.jpg and " in out and "not all of one person" in out
    assert "refused person 'Mixed Up'" in out and "not all of one person (above)" in out
    assert "enrolled 4 photo(s) of 2 person(s)" in out
    assert entries(home) == ["Ann Veneman", "Bob Graham"]


def test_a_photo_of_someone_else_is_not_added_to_a_person(home: Path) -> None:
    assert cli(home, "--as", "ada", "enroll", "-w", "wl", "-s", "Ann Veneman", ANN[0], *AUTH)[0] == 0
    code, out, err = cli(home, "--as", "ada", "enroll", "-w", "wl", "-s", "Ann Veneman", ANGELA, *AUTH)
    assert code != 0 and "person 1's templates" in out, out + err  # more photos of an entry
    base = ["--as", "ada", "enroll", "-w", "missing", "-s", "A. Veneman", "--person", "1", *AUTH]
    code, out, err = cli(home, *base[: -len(AUTH)], ANGELA, *AUTH)
    assert code != 0 and "person 1's templates" in out, out + err
    assert entries(home, "missing") == []
    code, out, err = cli(home, *base[: -len(AUTH)], ANN[1], *AUTH)
    assert code == 0, out + err
    assert entries(home, "missing") == ["A. Veneman"]


def test_api_upload_of_two_people_is_refused_and_stores_nothing(home: Path) -> None:
    from fastapi.testclient import TestClient

    from metrosight.api.app import create_app
    from metrosight.config.home import Home
    from metrosight.config.model import Settings
    from metrosight.services.suite import Services

    rt = Services.open(Home(home), Settings())
    token = rt.store.accounts.create_token("ada", "tests", rt.store.users.actor("ada"))[1]
    form = {
        "subject": "Ann Veneman",
        "legal_basis": "order",
        "authority": "court",
        "reference": "R-1",
        "expires": "30d",
    }
    mixed = [("photos", (p.name, p.read_bytes(), "image/jpeg")) for p in (*ANN, ANGELA)]
    with TestClient(create_app(rt)) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        r = c.post("/api/watchlists/wl/entries", data=form, files=mixed)
        assert r.status_code == 422, r.text
        photos = r.json()["photos"]
        assert [p["status"] for p in photos] == ["refused"] * 3
        assert "remove Angela_Bassett_0002.jpg" in photos[0]["reason"]
        assert entries(home) == []
        r = c.post("/api/watchlists/wl/entries", data=form, files=mixed[:2])
        assert r.status_code == 201, r.text
        assert [p["status"] for p in r.json()["photos"]] == ["enrolled"] * 2
    rt.store.engine.dispose()
    assert cli(home, "--as", "bob", "watchlist", "approve", "wl", "--all-pending")[0] == 0
    assert _who(home, lfw("Ann_Veneman_0006")) == {"Ann Veneman"}
    assert _who(home, ANGELA) == set()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    return None if request.param == "sqlite" else request.getfixturevalue("pg_url")


def test_nothing_of_a_mixed_entry_reaches_either_store(tmp_path: Path, url: str | None) -> None:
    from datetime import UTC, datetime, timedelta

    from metrosight.config.home import Home
    from metrosight.config.model import Settings
    from metrosight.core.types import Category
    from metrosight.ingest.images import photo_or_error
    from metrosight.policy.rules import Actor, Authorisation
    from metrosight.services.suite import Services

    ada = Actor("ada", frozenset({"admin", "approver"}))
    auth = Authorisation("order", "court", "R-1", datetime.now(UTC) + timedelta(days=9))
    rt = Services.open(Home(tmp_path / "h"), Settings.model_validate({"storage": {"database_url": url}}))
    try:
        rt.store.watchlists.create("wl", Category.WANTED, ada)
        limits = rt.installation.photo_limits
        mixed = [("Ann Veneman", photo_or_error(p, limits)) for p in (*ANN, ANGELA)]
        res = rt.enrolment.enroll("wl", mixed, ada, auth)
        assert [r.status for r in res] == ["refused"] * 3 and res[0].disagrees == (str(ANGELA),)
        assert rt.store.entries.all("wl") == [] and rt.store.persons.all() == []
        res = rt.enrolment.enroll("wl", [("Ann Veneman", photo_or_error(p, limits)) for p in ANN], ada, auth)
        assert [r.status for r in res] == ["enrolled"] * 2
        assert [e.name for e in rt.store.entries.all("wl")] == ["Ann Veneman"] and len(rt.store.persons.all()) == 1
    finally:
        rt.store.engine.dispose()
