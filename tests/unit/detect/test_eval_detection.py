"""Scoring functions of metrosight.eval.detection on hand-made ground truth."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from metrosight.core.types import Box
from metrosight.eval.detection import (
    GroundTruthError,
    GroundTruthImage,
    ellipse_to_box,
    evaluate,
    load_dlib_xml,
    load_fddb_fold,
    match_image,
    roc_points,
    summarize,
)


def test_ellipse_axis_aligned_and_rotated() -> None:
    b = ellipse_to_box(20, 10, 0.0, 100, 50)
    assert b.as_tuple() == pytest.approx((80, 40, 120, 60))
    b = ellipse_to_box(20, 10, math.pi / 2, 100, 50)  # major axis vertical, as in most of FDDB
    assert b.as_tuple() == pytest.approx((90, 30, 110, 70))
    b = ellipse_to_box(10, 10, 0.7, 0, 0)  # a circle at any angle
    assert b.as_tuple() == pytest.approx((-10, -10, 10, 10))
    b = ellipse_to_box(20, 10, math.pi / 4, 0, 0)
    half = math.sqrt((400 + 100) / 2)
    assert b.x2 == pytest.approx(half) and b.y2 == pytest.approx(half)


def test_load_dlib_xml_with_ignore(tmp_path: Path) -> None:
    xml = tmp_path / "faces.xml"
    xml.write_text(
        "<?xml version='1.0'?><dataset><images>"
        "<image file='a.jpg'><box top='10' left='20' width='30' height='40'/>"
        "<box top='0' left='0' width='5' height='5' ignore='1'/></image>"
        "<image file='b.jpg'></image>"
        "</images></dataset>"
    )
    gts = load_dlib_xml(xml)
    assert [g.path.name for g in gts] == ["a.jpg", "b.jpg"]
    assert gts[0].boxes == (Box(20, 10, 50, 50),)
    assert gts[0].ignore == (Box(0, 0, 5, 5),)
    assert gts[0].path.parent == tmp_path
    assert gts[1].boxes == ()


def test_load_dlib_xml_errors(tmp_path: Path) -> None:
    with pytest.raises(GroundTruthError, match="not found"):
        load_dlib_xml(tmp_path / "nope.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text("<dataset><images><image file='a.jpg'><box top='x' left='1' width='1' height='1'/>")
    with pytest.raises(GroundTruthError):
        load_dlib_xml(bad)


def test_load_fddb_fold_skips_missing(tmp_path: Path) -> None:
    pics = tmp_path / "pics"
    (pics / "2002/07").mkdir(parents=True)
    (pics / "2002/07/img_1.jpg").write_bytes(b"")
    lst = tmp_path / "fold.txt"
    lst.write_text("2002/07/img_1\n2\n20 10 1.5707963 100 50 1\n5 5 0 10 10 1\n2002/07/img_missing\n1\n10 10 0 0 0 1\n")
    gts = load_fddb_fold(lst, pics)
    assert len(gts) == 1 and len(gts[0].boxes) == 2
    assert gts[0].boxes[0].as_tuple() == pytest.approx((90, 30, 110, 70), abs=1e-5)
    assert len(load_fddb_fold(lst, pics, skip_missing=False)) == 2
    lst.write_text("2002/07/img_1\n3\n1 1 0 1 1 1\n")
    with pytest.raises(GroundTruthError, match="malformed"):
        load_fddb_fold(lst, pics)


GT = GroundTruthImage(Path("x.jpg"), (Box(0, 0, 10, 10), Box(100, 100, 120, 120)), (Box(200, 200, 210, 210),))


def test_match_greedy_by_score_and_ignore() -> None:
    boxes = [Box(1, 1, 11, 11), Box(0, 0, 10, 10), Box(200, 200, 210, 210), Box(50, 50, 60, 60)]
    scores = [0.5, 0.9, 0.8, 0.7]
    r = match_image(boxes, scores, GT)
    # order by score: exact(0.9)=TP, ignore-box(0.8)=ignored, stray(0.7)=FP, duplicate(0.5)=FP
    assert r.scores.tolist() == [0.9, 0.8, 0.7, 0.5]
    assert r.matched.tolist() == [1, -1, 0, 0]
    s = summarize([r])
    assert (s.n_gt, s.tp, s.fp, s.missed) == (2, 1, 2, 1)
    assert s.recall == pytest.approx(0.5) and s.precision == pytest.approx(1 / 3)


def test_iou_threshold_is_respected() -> None:
    near = Box(0, 0, 10, 16)  # IoU 100/160 = 0.625 with the first face
    assert match_image([near], [1.0], GT, iou_threshold=0.6).matched.tolist() == [1]
    assert match_image([near], [1.0], GT, iou_threshold=0.7).matched.tolist() == [0]


def test_threshold_and_roc() -> None:
    res = evaluate(
        [([Box(0, 0, 10, 10), Box(300, 300, 310, 310), Box(100, 100, 120, 120)], [0.9, 0.6, 0.3]), ([], [])],
        [GT, GroundTruthImage(Path("y.jpg"), (Box(0, 0, 5, 5),))],
    )
    s = summarize(res, threshold=0.5)
    assert (s.n_images, s.n_gt, s.tp, s.fp) == (2, 3, 1, 1)
    pts = roc_points(res)
    assert [(p.threshold, p.tp, p.fp) for p in pts] == [(0.9, 1, 0), (0.6, 1, 1), (0.3, 2, 1)]
    assert pts[-1].recall == pytest.approx(2 / 3)


def test_empty_inputs() -> None:
    assert summarize([]).recall == 1.0
    assert roc_points([]) == []
    r = match_image([], [], GT)
    assert r.matched.shape == (0,) and r.n_gt == 2
    with pytest.raises(ValueError):
        match_image([Box(0, 0, 1, 1)], [], GT)
    with pytest.raises(ValueError):
        evaluate([], [GT])
    assert isinstance(r.scores, np.ndarray)
