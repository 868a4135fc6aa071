"""Reports say which data chose the settings and which measured them; an overlap is called out."""

from pathlib import Path

from metrosight.config.model import Settings
from metrosight.eval.provenance import provenance


def _row(p, prefix):
    return next(r for r in p["settings"] if r["setting"].startswith(prefix))


def test_lfw_measurements_are_flagged_as_overlapping_the_development_data():
    p = provenance(Settings(), [Path("/data/lfw/lfw-deepfunneled"), Path("/data/lfw/pairs.txt")])
    assert _row(p, "photos quality limits")["overlaps"] == ["lfw"]
    assert _row(p, "enrolment dominance")["overlaps"] == ["lfw"]
    assert _row(p, "detector")["overlaps"] == []
    assert any("OVERLAPS the measured data (lfw)" in n for n in p["notes"])
    assert p["notes"][0] == "Measured on: /data/lfw/lfw-deepfunneled, /data/lfw/pairs.txt."


def test_operator_data_overlaps_nothing_and_own_limits_are_named_as_such():
    s = Settings.model_validate({"photos": {"min_face_px": 40}})
    p = provenance(s, [Path("/site/staff-photos")])
    assert all(r["overlaps"] == [] for r in p["settings"])
    assert "this installation's configuration" in _row(p, "photos quality limits")["chosen_on"]


def test_fddb_fold_1_is_the_development_fold_and_other_folds_are_held_out():
    dev = provenance(Settings(), [Path("/data/fddb")], fddb_folds=[1])
    assert _row(dev, "detector")["overlaps"] == ["fddb"]
    assert any("none of them held out" in n for n in dev["notes"])
    held = provenance(Settings(), [Path("/data/fddb")], fddb_folds=[2, 3])
    assert _row(held, "detector")["overlaps"] == []
    assert any("held-out folds among them: 2, 3" in n for n in held["notes"])
