"""The match threshold follows recognition.target_fpir for the persons active now, on SQLite and PostgreSQL: it is
recomputed when entries are approved, revoked or expire, counts a person on two lists once, takes a list's own
target, adds the operator's calibration faces to the impostor pairs, and the expected false candidates a day follow
the searches (face tracks) of the runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.core.types import Category
from metrosight.policy.rules import Actor, Authorisation
from metrosight.recognize.operating import per_comparison_fmr
from metrosight.services.calibration import save_nonmated
from metrosight.services.models import MODEL_ID
from metrosight.services.suite import Services

pytestmark = pytest.mark.integration

ADA = Actor("ada", frozenset({"admin", "approver", "operator"}))
BOB = Actor("bob", frozenset({"approver", "operator"}))


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path: Path) -> str | None:
    return None if request.param == "sqlite" else request.getfixturevalue("pg_url")


def runtime(tmp_path: Path, url: str | None, **extra: object) -> Services:
    return Services.open(Home(tmp_path / "home"), Settings.model_validate({"storage": {"database_url": url}, **extra}))


def name(i: int) -> str:
    return f"Person {chr(65 + i // 26)}{chr(97 + i % 26)}"


def vec(i: int) -> np.ndarray:
    v = np.random.default_rng(1000 + i).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


def enrol(rt: Services, wl: str, i: int, days: float = 30, approve: bool = True, person: int | None = None) -> None:
    auth = Authorisation("order", "court", f"R-{i}", datetime.now(UTC) + timedelta(days=days))
    rt.store.entries.enroll(
        wl, name(i), vec(i), MODEL_ID, f"{i}.jpg", f"{i:064d}", 0.9, ADA, auth, datetime.now(UTC), person_id=person
    )
    if approve:
        rt.store.entries.approve(wl, name(i), BOB)


def point(rt: Services):  # type: ignore[no-untyped-def]
    return rt.matching.matcher().operating


def test_threshold_recomputed_as_the_gallery_changes(tmp_path: Path, url: str | None) -> None:
    rt = runtime(tmp_path, url)
    rt.store.watchlists.create("wanted", Category.WANTED, ADA)
    for i in range(30):
        enrol(rt, "wanted", i, days=1 if i >= 20 else 30)
    enrol(rt, "wanted", 99, approve=False)  # pending: not matchable, not counted
    p30 = point(rt)
    assert p30.persons == 30 and p30.impostor_pairs == 30 * 29 // 2
    assert p30.fmr_target == pytest.approx(per_comparison_fmr(0.003, 30))
    for i in range(30, 60):
        enrol(rt, "wanted", i)
    p60 = point(rt)
    assert p60.persons == 60 and p60.threshold > p30.threshold  # more persons: a stricter threshold
    rt.store.entries.approve("wanted", name(99), BOB)
    assert point(rt).persons == 61
    for i in range(40, 50):
        rt.store.entries.revoke("wanted", name(i), ADA, "order lifted")
    p51 = point(rt)
    assert p51.persons == 51 and p30.threshold < p51.threshold < p60.threshold
    assert rt.store.policy.expire_due(datetime.now(UTC) + timedelta(days=2)) == 10  # persons 20..29 lapse
    p41 = point(rt)
    assert p41.persons == 41 and p41.threshold < p51.threshold
    # the matcher in force uses it: a probe just under the threshold is no match, just over it is one
    m = rt.matching.matcher()
    target = vec(0)
    assert m.match(target) is not None and m.threshold == p41.threshold


def test_same_person_on_two_lists_counts_once_and_lists_take_their_own_target(tmp_path: Path, url: str | None) -> None:
    rt = runtime(tmp_path, url, watchlists={"missing": {"target_fpir": 0.03}})
    rt.store.watchlists.create("wanted", Category.WANTED, ADA)
    rt.store.watchlists.create("missing", Category.MISSING, ADA)
    for i in range(10):
        enrol(rt, "wanted", i)
    ann = rt.store.persons.person_of("wanted", name(0))
    auth = Authorisation("order", "court", "M-1", datetime.now(UTC) + timedelta(days=30))
    rt.store.entries.enroll(
        "missing", name(0), vec(0), MODEL_ID, "m.jpg", "f" * 64, 0.9, ADA, auth, datetime.now(UTC), person_id=ann
    )
    rt.store.entries.approve("missing", name(0), BOB)
    enrol(rt, "missing", 50)
    m = rt.matching.matcher()
    assert (
        m.operating.persons == 11 and m.operating.impostor_pairs == 12 * 11 // 2 - 1
    )  # 12 entries; Ann's two: no pair
    by_list = {
        e.watchlist: float(t)
        for e, t in zip(m.gallery.entries, m.thresholds, strict=True)
        if e.subject_name == name(50) or e.subject_name == name(1)
    }
    assert by_list["missing"] < by_list["wanted"] == m.threshold
    # Ann (on both lists) gets the looser list's threshold, and a match names both lists
    hit = m.match(vec(0))
    assert hit is not None and set(hit.watchlists) == {"wanted", "missing"} and not hit.ambiguous
    st = rt.matching.operating_status(searches_per_day=10_000)
    assert st["lists"]["missing"]["target_fpir"] == 0.03 and st["lists"]["wanted"]["target_fpir"] == 0.003
    assert 0.003 < st["fpir_per_search"] < 0.03
    assert st["expected_false_candidates_per_day"] == pytest.approx(st["fpir_per_search"] * 10_000, rel=1e-3)


def test_calibration_faces_join_the_impostor_pairs_and_searches_come_from_runs(tmp_path: Path, url: str | None) -> None:
    rt = runtime(tmp_path, url)
    rt.store.watchlists.create("wanted", Category.WANTED, ADA)
    for i in range(5):
        enrol(rt, "wanted", i)
    assert point(rt).impostor_pairs == 10 and point(rt).method in ("prior", "floor")
    faces = np.random.default_rng(7).normal(size=(5000, 128)).astype(np.float32)
    save_nonmated(rt.home.root, faces)
    p = point(rt)
    assert p.impostor_pairs == 10 + 5000 * 5 and p.method in ("tail", "empirical", "floor")
    assert rt.matching.operating_status()["searches_per_day"] is None
    run = rt.store.runs.start("platform-1", "cam.mp4")
    rt.store.runs.finish(run, "finished", 100, 80, 500, 0)
    st = rt.matching.operating_status()
    assert st["searches_per_day"] == pytest.approx(500 * 24, rel=0.01)  # 500 tracks within the last hour
    assert st["expected_false_candidates_per_day"] == pytest.approx(0.003 * 500 * 24, rel=0.01)


def test_calibrate_shows_the_operating_point_and_config_check_names_bad_keys(tmp_path: Path) -> None:
    from tests.integration.helpers import cli

    home = tmp_path / "home"
    rt = runtime(tmp_path, None, watchlists={"missing": {"target_fpir": 0.01}})
    rt.store.watchlists.create("wanted", Category.WANTED, ADA)
    for i in range(12):
        enrol(rt, "wanted", i)
    cfg = tmp_path / "site.yaml"
    cfg.write_text("watchlists:\n  missing:\n    target_fpir: 0.01\n")
    code, out, err = cli(home, "--config", str(cfg), "calibrate", "--searches-per-day", "20000")
    assert code == 0, err
    assert "active persons" in out and "12" in out and "expected false candidates a day" in out
    assert "60.00" in out  # 0.003 x 20,000 (the missing list has no entries yet)
    assert "list missing" in out and "target 0.01" in out
    code, _, err = cli(home, "calibrate", "--searches-per-day", "-5")
    assert code != 0 and "--searches-per-day" in err and "Traceback" not in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("watchlists:\n  missing:\n    target_fpir: 0.5\n")
    code, _, err = cli(home, "config", "check", str(bad))
    assert code != 0 and "watchlists.missing.target_fpir" in err and "Traceback" not in err
