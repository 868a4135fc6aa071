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
from metrosight.recognize.consistency import OTHER_PERSON_BELOW, closer_face, disagreement
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
        n = int(image[0, 0, 0])
        d = DESCRIPTORS[n]
        q = Quality(0.9, 40.0, 100.0, 0.0, None)
        others = OTHERS.get(n, ())  # the photo's other usable faces: the face taken is face 2 of them all
        number, found = (2, len(others) + 1) if others else (1, 1)
        return PhotoFace(Detection(Box(0, 0, 40, 40), 1.0, None), d.astype(np.float32), q, number, found, others)

    monkeypatch.setattr(rt_mod, "enrolment_face", face)
    return svc


DESCRIPTORS: dict[int, np.ndarray] = {}
OTHERS: dict[int, tuple[tuple[int, np.ndarray], ...]] = {}


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


def _look_alike(v: np.ndarray, seed: int) -> np.ndarray:
    """Another person who looks like ``v``: cosine about 0.88, above the consistency bound, under a match."""
    return v + 0.48 * np.random.default_rng(seed).normal(size=128)


def test_a_bystander_taken_from_a_photo_is_refused_when_its_other_face_is_the_subject(rt: Services) -> None:
    """Red team: the dominance rule took a bystander who looks like the subject (cosine 0.88, above the consistency
    bound) while the subject is the photo's other face: the entry is refused, nothing stored, the photo and both
    faces named; the same photo with a stranger beside the bystander is enrolled."""
    bystander = _look_alike(ANN, 9)
    cos = float(bystander @ ANN / np.linalg.norm(bystander) / np.linalg.norm(ANN))
    assert OTHER_PERSON_BELOW < cos < 0.92  # the consistency check alone lets it through
    OTHERS[21] = ((1, _near(ANN, 10)),)
    res = rt.enrolment.enroll("wanted", [("Ann One", photo(20, ANN)), ("Ann One", photo(21, bystander))], ADA, AUTH)
    assert [r.status for r in res] == ["refused"] * 2 and res[0].disagrees == ("p21.jpg",)
    why = res[0].reason or ""
    assert "face 2 of p21.jpg was taken as Ann One's, but its face 1 is more like the entry's other photos" in why
    assert "nothing of 'Ann One' was stored" in why and "--face N" in why
    assert rt.store.entries.all("wanted") == []
    OTHERS[23] = ((1, BEA),)
    res = rt.enrolment.enroll(
        "wanted", [("Ann One", photo(22, ANN)), ("Ann One", photo(23, _near(ANN, 11)))], ADA, AUTH
    )
    assert [r.status for r in res] == ["enrolled"] * 2
    OTHERS[24] = ((3, _near(ANN, 12)),)  # added later to the enrolled entry: checked against its templates
    res = rt.enrolment.enroll("wanted", [("Ann One", photo(24, bystander))], ADA, AUTH)
    assert res[0].status == "refused" and "its face 3 is more like" in (res[0].reason or "")


def test_closer_face_alone() -> None:
    refs = np.stack([ANN, _near(ANN, 13)])
    assert closer_face((1, ANN), [(2, BEA)], refs) is None
    assert closer_face((1, BEA), [(2, ANN)], None) is None  # nothing to compare with: a single photo
    assert closer_face((1, BEA), [], refs) is None
    got = closer_face((2, BEA), [(1, _near(ANN, 14)), (3, BEA)], refs)
    assert got is not None and (got.taken, got.other) == (2, 1) and got.other_cosine > got.taken_cosine
