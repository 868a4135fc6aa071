"""Field cases of persons and episodes, through the product's own commands with the real models:

- ``same-person-two-lists``: one photo enrolled as entries on two watchlists; a second photo of the person is
  identified once, with both lists (``identify`` and ``identify --json``); a video of the person gives one alert
  naming both lists.
- ``brief-occlusion``: a face walks past; hidden behind a pillar for about a second in one file. One alert for
  each walk (the second track of the pillar walk is a sighting of the first alert, extending it).
- the same walk on five cameras of one line in a node: one alert, five cameras' sightings, one two-person review.

Who to enrol for the walks: the walking figure is the 2009 joint-session photo of Barack Obama (``obama2.jpg``);
the 2012 official portrait (``obama.jpg``, public domain, a different photo and day) is enrolled, as a watchlist
photo would be, never a frame of the clip.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metrosight.config.model import Settings
from metrosight.store.repo import Store
from tests.conftest import require_case, require_data
from tests.integration.helpers import AUTH, bootstrap, cli, json_lines

pytestmark = pytest.mark.integration

AUTH_MISSING = [
    "--legal-basis",
    "missing person report",
    "--authority",
    "police",
    "--reference",
    "M-7",
    "--expires",
    "30d",
]


def two_lists_home(home: Path, photo: Path, name: str = "Barack Obama") -> None:
    bootstrap(home)
    assert cli(home, "--as", "ada", "watchlist", "create", "wanted", "--category", "wanted")[0] == 0
    assert cli(home, "--as", "ada", "watchlist", "create", "missing", "--category", "missing")[0] == 0
    code, out, err = cli(home, "--as", "ada", "enroll", "-w", "wanted", "-s", name, photo, *AUTH)
    assert code == 0, out + err
    code, out, err = cli(home, "--as", "ada", "enroll", "-w", "missing", "-s", name, photo, *AUTH_MISSING)
    assert code == 0 and "one person" in out, out + err  # the second entry joined the first one's person
    for wl in ("wanted", "missing"):
        assert cli(home, "--as", "bob", "watchlist", "approve", wl, name)[0] == 0


def test_same_person_on_two_lists_is_identified_once_with_both(tmp_path):
    case = require_case("same-person-two-lists")
    home = tmp_path / "h"
    two_lists_home(home, case / "enrol_obama.jpg")
    code, out, err = cli(home, "--as", "bob", "identify", case / "probe_obama2.jpg", "--json")
    assert code == 0, err
    [result] = json_lines(out)
    found = [f for f in result["faces"] if f["subject"]]
    assert len(found) == 1, result  # identified once
    [face] = found
    assert face["subject"] == "Barack Obama" and sorted(face["watchlists"]) == ["missing", "wanted"]
    assert {e["reference"] for e in face["entries"]} == {"T-1", "M-7"}
    code, out, _ = cli(home, "--as", "bob", "identify", case / "probe_obama2.jpg")
    assert code == 0 and out.count("Barack Obama") == 1 and "wanted" in out and "missing" in out
    code, out, _ = cli(home, "person", "list", "--json")
    [person] = json_lines(out)
    assert sorted(e["watchlist"] for e in person["entries"]) == ["missing", "wanted"]


def test_same_person_under_two_names_is_linked_by_the_operator(tmp_path):
    """Two spellings: not linked silently (warned), shown as an ambiguous match naming both until the operator links
    them; then found once, not ambiguous."""
    case = require_case("same-person-two-lists")
    home = tmp_path / "h"
    bootstrap(home)
    for wl, cat in (("wanted", "wanted"), ("missing", "missing")):
        cli(home, "--as", "ada", "watchlist", "create", wl, "--category", cat)
    cli(home, "--as", "ada", "enroll", "-w", "wanted", "-s", "Barack Obama", case / "enrol_obama.jpg", *AUTH)
    code, out, err = cli(
        home, "--as", "ada", "enroll", "-w", "missing", "-s", "B. H. Obama", case / "enrol_obama.jpg", *AUTH_MISSING
    )
    assert code == 0 and "matches person 1" in err and "person link 1 2" in err, out + err
    for wl, name in (("wanted", "Barack Obama"), ("missing", "B. H. Obama")):
        cli(home, "--as", "bob", "watchlist", "approve", wl, name)
    code, out, _ = cli(home, "--as", "bob", "identify", case / "probe_obama2.jpg", "--json")
    [face] = [f for f in json_lines(out)[0]["faces"] if f["subject"]]  # two look-alike persons: ambiguous, both shown
    assert face["ambiguous"] and {face["subject"], face["candidates"][0]["subject"]} == {"Barack Obama", "B. H. Obama"}
    assert cli(home, "--as", "ada", "person", "link", "1", "2", "--reason", "same passport")[0] == 0
    code, out, _ = cli(home, "--as", "bob", "identify", case / "probe_obama2.jpg", "--json")
    [face] = [f for f in json_lines(out)[0]["faces"] if f["subject"]]
    assert sorted(face["watchlists"]) == ["missing", "wanted"] and not face["ambiguous"]
    code, out, _ = cli(home, "--as", "ada", "audit", "show", "--json", "--last", "200")
    assert "person.link" in {json.loads(line)["action"] for line in out.splitlines() if line.startswith("{")}


def run_json(home: Path, clip: Path, camera: str, *extra: str) -> tuple[list[dict], dict]:
    code, out, err = cli(home, *extra, "run", "--source", clip, "--camera", camera, "--json")
    assert code == 0, err
    lines = json_lines(out)
    return [x for x in lines if x["type"] == "alert"], next(x for x in lines if x["type"] == "summary")


def test_a_video_of_the_person_on_two_lists_gives_one_alert_naming_both(tmp_path):
    case = require_case("same-person-two-lists")
    clip = require_case("brief-occlusion", "walk_no_pillar.mp4")
    home = tmp_path / "h"
    two_lists_home(home, case / "enrol_obama.jpg")
    alerts, summary = run_json(home, clip, "platform-1")
    assert summary["alerts"] == 1 and alerts, summary
    assert all(sorted(a["watchlists"]) == ["missing", "wanted"] for a in alerts)
    [row] = Store.for_home(home).alerts.all()
    assert sorted(e["watchlist"] for e in row.entries) == ["missing", "wanted"]
    assert {e["reference"] for e in row.entries} == {"T-1", "M-7"}


@pytest.fixture(scope="module")
def walker_home(tmp_path_factory) -> Path:
    """A home with Barack Obama's 2012 portrait enrolled and approved (template copied per test)."""
    home = tmp_path_factory.mktemp("walker") / "h"
    bootstrap(home)
    cli(home, "--as", "ada", "watchlist", "create", "wanted", "--category", "wanted")
    portrait = require_data("face_recognition_examples", "examples", "obama.jpg")
    assert cli(home, "--as", "ada", "enroll", "-w", "wanted", "-s", "Barack Obama", portrait, *AUTH)[0] == 0
    assert cli(home, "--as", "bob", "watchlist", "approve", "wanted", "Barack Obama")[0] == 0
    return home


def fresh(walker_home: Path, tmp_path: Path) -> Path:
    import shutil

    home = tmp_path / "h"
    shutil.copytree(walker_home, home)
    return home


@pytest.mark.parametrize("clip", ["walk_behind_pillar.mp4", "walk_no_pillar.mp4"])
def test_one_walk_past_is_one_alert_pillar_or_not(walker_home, tmp_path, clip):
    video = require_case("brief-occlusion", clip)
    home = fresh(walker_home, tmp_path)
    alerts, summary = run_json(home, video, "platform-1")
    assert summary["alerts"] == 1 and len({a["alert_id"] for a in alerts}) == 1, alerts
    store = Store.for_home(home)
    [row] = store.alerts.all()
    sightings = store.alerts.sightings(row.id)
    assert row.sightings == len(sightings) == summary["sightings"] == len(alerts)
    if clip == "walk_behind_pillar.mp4":
        assert len(sightings) == 2  # the track broke behind the pillar: its second part extends the alert
    assert row.first_seen < 0.5 and row.last_seen > 3.5  # the whole walk, 0–4 s


def test_the_same_walk_on_five_cameras_of_one_line_is_one_episode(walker_home, tmp_path):
    """Five `run`s of the walk on five cameras of line red, into one home: one alert whose five sightings (one
    per camera) need one two-person review."""
    video = require_case("brief-occlusion", "walk_no_pillar.mp4")
    home = fresh(walker_home, tmp_path)
    config = tmp_path / "line.yaml"
    config.write_text("cameras:\n" + "".join(f"  - {{id: red-{i}, source: {video}, line: red}}\n" for i in range(5)))
    printed = []
    for i in range(5):
        alerts, _ = run_json(home, video, f"red-{i}", "--config", str(config))
        printed += alerts
    assert [a["episode"] for a in printed].count("new") == 1 and len({a["alert_id"] for a in printed}) == 1
    store = Store.for_home(home)
    [row] = store.alerts.all()
    assert store.alerts.cameras(row.id) == [f"red-{i}" for i in range(5)] and row.group_key == "group:red"
    assert row.sightings == len(printed) >= 5
    code, out, _ = cli(home, "--as", "ada", "alert", "show", str(row.id))
    assert code == 0 and out.count("sighting ") == row.sightings and "red-4" in out
    assert cli(home, "--as", "ada", "alert", "confirm", str(row.id))[0] == 0
    code, out, _ = cli(home, "--as", "bob", "alert", "confirm", str(row.id))
    assert code == 0 and "actionable" in out
    code, out, _ = cli(home, "--as", "ada", "alert", "list", "--json")
    [listed] = json_lines(out)
    assert listed["sightings"] == row.sightings and listed["cameras"] == [f"red-{i}" for i in range(5)]
    assert listed["status"] == "actionable"


@pytest.mark.slow
def test_a_node_stores_the_line_s_sightings_in_one_episode(walker_home, tmp_path):
    """Five cameras of one line in a node (two worker processes) play the walk as live cameras would; the
    supervisor, where alerts are stored, merges their sightings: every camera that saw the person is in one alert.
    (On a loaded 2-core machine a camera may drop the frames with the face: at least two cameras must alert.)"""
    from metrosight.config.home import Home
    from metrosight.pipeline.supervisor import Supervisor
    from metrosight.services.suite import Services

    video = require_case("brief-occlusion", "walk_no_pillar.mp4")
    home = fresh(walker_home, tmp_path)
    cams = [{"id": f"red-{i}", "source": str(video), "line": "red", "analysis_fps": 8} for i in range(5)]
    settings = Settings.model_validate({"cameras": cams, "node": {"workers": 2, "shutdown_timeout_seconds": 60}})
    printed = []
    sup = Supervisor(Services.open(Home(home), settings), on_alert=lambda a, crop, stored: printed.append((a, stored)))
    report = sup.run(duration=240)
    store = Store.for_home(home)
    [row] = store.alerts.all()
    cameras = set(store.alerts.cameras(row.id))
    assert cameras == {a.camera_id for a, _ in printed} and len(cameras) >= 2, report
    assert row.sightings == len(printed) and [st.opened for _, st in printed].count(True) == 1


def test_enrol_with_person_links_a_folder_enrolment_too(walker_home, tmp_path):
    """`--person ID` puts the new entry on an enrolled person (also with --from-dir, whose folders are persons)."""
    home = fresh(walker_home, tmp_path)
    cli(home, "--as", "ada", "watchlist", "create", "missing", "--category", "missing")
    folder = tmp_path / "people" / "Barack_H_Obama"
    folder.mkdir(parents=True)
    (folder / "portrait.jpg").write_bytes(require_case("same-person-two-lists", "enrol_obama.jpg").read_bytes())
    code, out, err = cli(
        home, "--as", "ada", "enroll", "-w", "missing", "--from-dir", folder.parent, "--person", "1", *AUTH_MISSING
    )
    assert code == 0, out + err
    code, out, _ = cli(home, "person", "show", "1", "--json")
    assert sorted(e["name"] for e in json.loads(out)["entries"]) == ["Barack H Obama", "Barack Obama"]
    code, _, err = cli(
        home,
        "--as",
        "ada",
        "enroll",
        "-w",
        "missing",
        "-s",
        "X",
        folder / "portrait.jpg",
        "--person",
        "99",
        *AUTH_MISSING,
    )
    assert code != 0 and "no person 99" in err
