"""Red team of persons (issue 17): `enroll --person ID` must not merge different human beings.

- `--person ID` with `--from-dir` of several person folders used to put every folder's entry on person ID, so two
  strangers became one person (the ambiguity rule then never compares them, and an alert for one names the
  other's lists). It is refused before anything is stored.
- `--person ID` with a face that does not match person ID at the match threshold (a mistyped id) used to link
  without a word; the entry is still linked (the operator decides) but a warning names the mismatch and the undo.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import require_case, require_data
from tests.integration.helpers import AUTH, bootstrap, cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def obama_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("rtp") / "h"
    bootstrap(home)
    for wl, cat in (("wanted", "wanted"), ("missing", "missing")):
        assert cli(home, "--as", "ada", "watchlist", "create", wl, "--category", cat)[0] == 0
    portrait = require_data("face_recognition_examples", "examples", "obama.jpg")
    assert cli(home, "--as", "ada", "enroll", "-w", "wanted", "-s", "Barack Obama", portrait, *AUTH)[0] == 0
    return home


def fresh(src: Path, tmp_path: Path) -> Path:
    import shutil

    home = tmp_path / "h"
    shutil.copytree(src, home)
    return home


def persons(home: Path) -> list[dict]:
    code, out, _ = cli(home, "person", "list", "--json")
    assert code == 0
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_person_with_a_folder_of_several_people_is_refused_and_stores_nothing(obama_home, tmp_path):
    home = fresh(obama_home, tmp_path)
    people = tmp_path / "people"
    for name, photo in (("Barack_H_Obama", require_case("same-person-two-lists", "enrol_obama.jpg")),
                        ("Joe_Biden", require_data("face_recognition_examples", "examples", "biden.jpg"))):
        (people / name).mkdir(parents=True)
        (people / name / "p.jpg").write_bytes(photo.read_bytes())
    before = persons(home)
    code, out, err = cli(home, "--as", "ada", "enroll", "-w", "missing", "--from-dir", people, "--person", "1", *AUTH)
    assert code != 0 and "--person" in err and "2 person folders" in err, out + err
    assert persons(home) == before  # nothing stored: Joe Biden was not made person 1


def test_person_with_a_face_that_does_not_match_is_linked_with_a_warning(obama_home, tmp_path):
    home = fresh(obama_home, tmp_path)
    biden = require_data("face_recognition_examples", "examples", "biden.jpg")
    code, out, err = cli(home, "--as", "ada", "enroll", "-w", "missing", "-s", "Joe Biden", biden, "--person", "1",
                         *AUTH)
    assert code == 0, out + err
    assert "does not match person 1" in err and "person unlink missing" in err, out + err
    # a matching face gets no such warning
    home2 = fresh(obama_home, tmp_path / "b")
    code, out, err = cli(home2, "--as", "ada", "enroll", "-w", "missing", "-s", "B. Obama",
                         require_case("same-person-two-lists", "enrol_obama.jpg"), "--person", "1", *AUTH)
    assert code == 0 and "does not match" not in err, out + err
