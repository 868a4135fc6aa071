"""Photos of two people given as one entry are refused together, naming the odd photo; nothing is stored. Photos
added to an enrolled person (``--person``) are checked against that person's templates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.core.types import Box, Category, Detection
from metrosight.ingest.images import Photo
from metrosight.policy.rules import Actor, Authorisation
from metrosight.recognize.consistency import OTHER_PERSON_BELOW, disagreement
from metrosight.recognize.photo import PhotoFace
from metrosight.recognize.quality import Quality
from metrosight.services import enrolment as rt_mod
from metrosight.services.installation import Installation
from metrosight.services.models import Models
from metrosight.services.suite import Services
from tests.unit.fakes import ColourEmbedder, ScriptedDetector

ADA = Actor("ada", frozenset({"approver", "admin"}))
AUTH = Authorisation("order", "court", "R-1", datetime.now(UTC) + timedelta(days=9))
RNG = np.random.default_rng(7)
ANN, BEA = RNG.normal(size=128), RNG.normal(size=128)  # two people: cosine near 0


def _near(v: np.ndarray, seed: int) -> np.ndarray:
    """Another photo of the person ``v``: cosine about 0.95."""
    return v + 0.3 * np.random.default_rng(seed).normal(size=128)


@pytest.fixture
def rt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Services:
    """Services on a real SQLite store; each photo's descriptor is what its first pixel's index names."""
    s = Settings()
    inst = Installation.open(Home(tmp_path / "home"), s)
    svc = Services.of(inst, Models(s, inst.home.cache, ScriptedDetector({}), ColourEmbedder()))
    svc.store.watchlists.create("wanted", Category.WANTED, ADA)

    def face(image, *_a, **_k):  # type: ignore[no-untyped-def]
        d = DESCRIPTORS[int(image[0, 0, 0])]
        q = Quality(0.9, 40.0, 100.0, 0.0, None)
        return PhotoFace(Detection(Box(0, 0, 40, 40), 1.0, None), d.astype(np.float32), q)

    monkeypatch.setattr(rt_mod, "enrolment_face", face)
    return svc


DESCRIPTORS: dict[int, np.ndarray] = {}


def photo(n: int, v: np.ndarray) -> Photo:
    DESCRIPTORS[n] = v
    img = np.full((64, 64, 3), n, np.uint8)
    return Photo(img, f"{n:064x}", f"p{n}.jpg", f"p{n}.jpg", "JPEG", (64, 64))


def test_two_people_in_one_entry_are_refused_naming_the_odd_photo_and_nothing_is_stored(rt: Services) -> None:
    given = [("Ann One", photo(1, ANN)), ("Ann One", photo(2, _near(ANN, 1))), ("Ann One", photo(3, BEA))]
    res = rt.enrolment.enroll("wanted", given, ADA, AUTH)
    assert [r.status for r in res] == ["refused"] * 3
    why = res[0].reason or ""
    assert "not all of one person" in why and "remove p3.jpg" in why and "enrol each person separately" in why
    assert "p3.jpg vs" in why or "vs p3.jpg" in why
    assert "cosine" in why and "nothing of 'Ann One' was stored" in why
    assert rt.store.entries.all("wanted") == []


def test_photos_of_one_person_are_enrolled_as_one_entry(rt: Services) -> None:
    given = [("Ann One", photo(4, ANN)), ("Ann One", photo(5, _near(ANN, 2))), ("Ann One", photo(6, _near(ANN, 3)))]
    res = rt.enrolment.enroll("wanted", given, ADA, AUTH)
    assert [r.status for r in res] == ["enrolled"] * 3
    assert [e.name for e in rt.store.entries.all("wanted")] == ["Ann One"]


def test_a_mixed_entry_is_refused_and_the_next_entry_is_still_enrolled(rt: Services) -> None:
    given = [
        ("Ann One", photo(7, ANN)),
        ("Ann One", photo(8, BEA)),
        ("Bea Two", photo(9, BEA)),
        ("Bea Two", photo(10, _near(BEA, 4))),
    ]
    res = rt.enrolment.enroll("wanted", given, ADA, AUTH)
    assert [r.status for r in res] == ["refused", "refused", "enrolled", "enrolled"]
    assert "p7.jpg and p8.jpg" in (res[0].reason or "")  # two photos: either may be the odd one
    assert [e.name for e in rt.store.entries.all("wanted")] == ["Bea Two"]


def test_a_photo_added_to_a_person_must_not_be_clearly_someone_else(rt: Services) -> None:
    rt.enrolment.enroll("wanted", [("Ann One", photo(11, ANN))], ADA, AUTH)
    rt.store.watchlists.create("missing", Category.MISSING, ADA)
    pid = rt.store.persons.person_of("wanted", "Ann One")
    res = rt.enrolment.enroll("missing", [("Ann One", photo(12, BEA))], ADA, AUTH, person_id=pid)
    assert res[0].status == "refused" and f"person {pid}'s templates" in (res[0].reason or "")
    assert f"check that they are person {pid}" in (res[0].reason or "")
    assert rt.store.entries.all("missing") == []
    ok = rt.enrolment.enroll("missing", [("Ann One", photo(13, _near(ANN, 5)))], ADA, AUTH, person_id=pid)
    assert ok[0].status == "enrolled" and ok[0].person_id == pid
    more = rt.enrolment.enroll("wanted", [("Ann One", photo(14, BEA))], ADA, AUTH)  # more photos of an entry
    assert more[0].status == "refused"


def test_the_check_alone() -> None:
    assert disagreement([ANN, _near(ANN, 6)], ["a", "b"]) is None
    odd = disagreement([ANN, _near(ANN, 6), BEA, _near(BEA, 7)], ["a", "b", "c", "d"])
    assert odd is not None and len(odd.pairs) == 4 and all(c < OTHER_PERSON_BELOW for _, _, c in odd.pairs)
    assert disagreement([ANN], ["a"], existing=np.stack([BEA, _near(ANN, 8)])) is None  # one template agrees
