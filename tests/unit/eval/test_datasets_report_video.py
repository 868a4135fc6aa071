import json
import math
from pathlib import Path

import numpy as np
import pytest

from metrosight.eval.datasets import DatasetError, load_pairs, open_set_split, people_folders, people_split
from metrosight.eval.report import Figure, Report, Table, det_plot
from metrosight.eval.video import Appearance, TrackLog, load_labels, score_tracks


def _people(root: Path, counts: dict[str, int]) -> Path:
    for person, n in counts.items():
        (root / person).mkdir(parents=True)
        for i in range(1, n + 1):
            (root / person / f"{person}_{i:04d}.jpg").write_bytes(b"x")
    return root


def test_open_set_split_follows_the_protocol(tmp_path):
    root = _people(tmp_path / "p", {"a": 3, "b": 1, "c": 2, "d": 10})
    people = people_folders(root)
    assert [p.name for p in people["d"]][:2] == ["d_0001.jpg", "d_0002.jpg"]
    sp = open_set_split(people, 1)
    assert sorted(sp.gallery) == ["a", "c", "d"] and [p.name for p in sp.gallery["d"]] == ["d_0001.jpg"]
    assert len(sp.mated) == 2 + 1 + 9 and [lab for _, lab in sp.non_mated] == ["b"]
    sp3 = open_set_split(people, 3)
    assert sorted(sp3.gallery) == ["d"] and len(sp3.non_mated) == 3 + 1 + 2
    assert len(sp3.all_items()) == 16
    ps = people_split(people, 1, ["d"])
    assert "d" not in ps.gallery and len(ps.non_mated) == 10
    with pytest.raises(DatasetError):
        open_set_split({"x": people["b"]}, 1)
    with pytest.raises(DatasetError, match="unknown"):
        people_split(people, 1, ["zz"])
    with pytest.raises(DatasetError):
        people_folders(tmp_path / "missing")
    assert list(people_folders(root, include="[ab]")) == ["a", "b"]


def test_load_pairs(tmp_path):
    root = _people(tmp_path / "img", {"a": 2, "b": 1})
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\t1\na\t1\t2\na\t1\tb\t1\n")
    got = load_pairs(pairs, root)
    assert [(p.same, p.fold) for p in got] == [(True, 0), (False, 0)]
    assert got[1].b == root / "b" / "b_0001.jpg"
    pairs.write_text("1\t1\na\t1\t3\na\t1\tb\t1\n")
    with pytest.raises(DatasetError, match="does not exist"):
        load_pairs(pairs, root)
    pairs.write_text("1\t2\na\t1\t2\n")
    with pytest.raises(DatasetError, match="promises"):
        load_pairs(pairs, root)


def test_report_is_self_contained(tmp_path):
    r = Report("t", "metrosight eval identify --data x")
    s = r.section("s")
    s.tables.append(Table(["m", "v"], [["a<b", 0.12345], ["inf", math.inf]]))
    png = det_plot([("x", np.array([0.0, 0.1, 1.0]), np.array([1.0, 0.5, 0.0]))])
    s.figures.append(Figure("det", png))
    r.data = {"x": np.float32(0.5), "y": [math.inf, math.nan]}
    html, js = r.write(tmp_path, "run")
    text = html.read_text()
    assert "a&lt;b" in text and "data:image/png;base64," in text and "0.1235" in text and "∞" in text
    assert (tmp_path / "run-det.png").read_bytes()[:4] == b"\x89PNG"
    d = json.loads(js.read_text())
    assert d["data"] == {"x": 0.5, "y": ["inf", None]} and d["sections"][0]["figures"] == ["run-det.png"]


def test_video_labels_and_track_scoring(tmp_path):
    f = tmp_path / "l.csv"
    f.write_text("subject,start,end\n# comment\nAnn,0,2\nBob,5,6\n")
    labels = load_labels(f)
    assert labels == [Appearance("Ann", 0.0, 2.0), Appearance("Bob", 5.0, 6.0)]
    logs = [
        TrackLog(1, 0.5, 1.5, "Ann", 0.95),  # right person, on screen: true
        TrackLog(2, 3.0, 4.0, "Ann", 0.97),  # Ann named while she is off screen: false
        TrackLog(3, 5.0, 5.5, "Bob", 0.90),  # below a strict threshold
    ]
    assert score_tracks(logs, labels, 0.93) == (1, 1, [True, False])
    assert score_tracks(logs, labels, 0.89) == (2, 1, [True, True])
    assert score_tracks(logs, labels, 0.99) == (0, 0, [False, False])
    f.write_text("Ann,3,1\n")
    with pytest.raises(DatasetError):
        load_labels(f)
