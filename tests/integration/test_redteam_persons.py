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
    for name, photo in (
        ("Barack_H_Obama", require_case("same-person-two-lists", "enrol_obama.jpg")),
        ("Joe_Biden", require_data("face_recognition_examples", "examples", "biden.jpg")),
    ):
        (people / name).mkdir(parents=True)
        (people / name / "p.jpg").write_bytes(photo.read_bytes())
    before = persons(home)
    code, out, err = cli(home, "--as", "ada", "enroll", "-w", "missing", "--from-dir", people, "--person", "1", *AUTH)
    assert code != 0 and "--person" in err and "2 person folders" in err, out + err
    assert persons(home) == before  # nothing stored: Joe Biden was not made person 1


def test_person_with_a_face_that_does_not_match_is_linked_with_a_warning(obama_home, tmp_path):
    """A face under the match threshold but not clearly another person (LFW's Carlos Paternina: cosine 0.888 with
    the portrait) is linked with a warning; one that is clearly another person (Joe Biden: 0.81, under
    ``OTHER_PERSON_BELOW``) is refused and nothing is stored (see tests/integration/test_enrol_consistency.py)."""
    home = fresh(obama_home, tmp_path)
    near = require_data("lfw", "lfw-deepfunneled", "Carlos_Paternina", "Carlos_Paternina_0001.jpg")
    code, out, err = cli(
        home, "--as", "ada", "enroll", "-w", "missing", "-s", "Carlos Paternina", near, "--person", "1", *AUTH
    )
    assert code == 0, out + err
    assert "does not match person 1" in err and "person unlink missing" in err, out + err
    biden = require_data("face_recognition_examples", "examples", "biden.jpg")
    before = persons(home)
    code, out, err = cli(
        home, "--as", "ada", "enroll", "-w", "missing", "-s", "Joe Biden", biden, "--person", "1", *AUTH
    )
    assert code != 0 and "person 1's templates" in out and "not all of one person" in out, out + err
    assert persons(home) == before
    # a matching face gets no such warning
    home2 = fresh(obama_home, tmp_path / "b")
    code, out, err = cli(
        home2,
        "--as",
        "ada",
        "enroll",
        "-w",
        "missing",
        "-s",
        "B. Obama",
        require_case("same-person-two-lists", "enrol_obama.jpg"),
        "--person",
        "1",
        *AUTH,
    )
    assert code == 0 and "does not match" not in err, out + err


def test_a_photo_of_the_subject_cut_by_the_edge_never_enrols_a_bystander(tmp_path):
    """Barack Obama's portrait cropped through the eyes by the top edge, with a small photo of Joe Biden in a
    corner: the largest *whole* face was Biden's, it "dominated" (cut faces did not compete), and Joe Biden was
    enrolled as Barack Obama — then identified as him. The photo is refused with its faces numbered; Biden's face
    can still be chosen with --face if he really is the subject."""
    import numpy as np
    from PIL import Image

    from metrosight.config.model import Settings
    from metrosight.ingest.images import read_photo
    from metrosight.services.models import make_face_detector

    det = make_face_detector(Settings())
    ex = require_data("face_recognition_examples", "examples")
    ob, bi = read_photo(ex / "obama.jpg").image, read_photo(ex / "biden.jpg").image
    bo, bb = det.detect(ob)[0].box, det.detect(bi)[0].box
    y0, x0 = int(bo.y1 + 0.35 * bo.height), max(0, int(bo.x1 - bo.width))
    canvas = ob[y0 : y0 + 900, x0 : x0 + int(bo.width * 3)].copy()
    crop = Image.fromarray(
        bi[
            int(bb.y1 - 0.3 * bb.height) : int(bb.y2 + 0.3 * bb.height),
            int(bb.x1 - 0.3 * bb.width) : int(bb.x2 + 0.3 * bb.width),
        ]
    )
    scale = 0.35 * bo.height / bb.height
    small = np.asarray(crop.resize((int(crop.width * scale), int(crop.height * scale))))
    h, w = canvas.shape[:2]
    canvas[h - small.shape[0] - 40 : h - 40, w - small.shape[1] - 40 : w - 40] = small
    photo = tmp_path / "cut_subject.jpg"
    Image.fromarray(canvas).save(photo, quality=95)

    home = tmp_path / "h"
    bootstrap(home)
    assert cli(home, "--as", "ada", "watchlist", "create", "wl", "--category", "wanted")[0] == 0
    code, out, err = cli(home, "--as", "ada", "enroll", "-w", "wl", "-s", "Barack Obama", photo, *AUTH)
    assert code != 0 and "refused" in out and "--face N" in out, out + err
    assert "cut by the top edge" in out, out
    assert persons(home) == []
