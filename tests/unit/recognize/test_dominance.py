"""Which face of an enrolment photo is the subject's: the dominance rule on synthetic detections, and the numbered
refusal and the operator's choice through :func:`enrolment_face` (fake detector and embedder)."""

from __future__ import annotations

import numpy as np
import pytest

from metrosight.core.types import Box, Detection
from metrosight.recognize import photo as ph
from metrosight.recognize.photo import PhotoRefused, dominant_face, enrolment_face
from tests.unit.fakes import ColourEmbedder, ScriptedDetector, paint_frame

W, H = 640, 480


def box(cx: float, cy: float, h: float) -> Box:
    return Box(cx - 0.4 * h, cy - h / 2, cx + 0.4 * h, cy + h / 2)


def test_lone_face_dominates():
    assert dominant_face([box(320, 240, 100)], [False], (W, H)) == 0


def test_background_faces_under_half_the_height_never_compete_even_at_the_centre():
    faces = [box(100, 200, 160), box(320, 240, 79)]  # the small one is central
    assert dominant_face(faces, [False, False], (W, H)) == 0


def test_smaller_face_further_from_the_centre_does_not_compete():
    faces = [box(560, 200, 120), box(320, 240, 150)]  # 0.8 of the height … just under the ratio, off-centre
    faces[0] = box(560, 200, 0.79 * 150)
    assert dominant_face(faces, [False, False], (W, H)) == 1


def test_smaller_but_more_central_face_makes_the_photo_ambiguous():
    faces = [box(330, 240, 100), box(120, 220, 150)]  # two thirds of the height and nearer the centre
    assert dominant_face(faces, [False, False], (W, H)) is None


@pytest.mark.parametrize("ratio", [ph.DOMINANCE_RATIO, 0.9, 0.99])
def test_a_face_near_the_subjects_size_is_ambiguous_unless_well_off_centre(ratio):
    """A second face 0.8–1.0 of the central face's height competes when it is less than half a face height further
    from the centre, and stands aside when it is further (the subject is the largest and most central face)."""
    near = box(320 + 0.45 * 150, 240, ratio * 150)  # 0.45 of a face height off-centre, the subject at the centre
    assert dominant_face([box(320, 240, 150), near], [False, False], (W, H)) is None
    far = box(320 + 0.55 * 150, 240, ratio * 150)
    assert dominant_face([box(320, 240, 150), far], [False, False], (W, H)) == 0


def test_a_face_as_large_as_the_central_one_is_ambiguous_wherever_it_is():
    for other in (box(600, 100, 150), box(600, 100, 170)):  # equal height, or larger, in a corner
        assert dominant_face([box(320, 240, 150), other], [False, False], (W, H)) is None


def test_the_candidate_is_the_most_central_face_not_the_largest():
    """A larger recognisable face off-centre makes the photo ambiguous (it may be the subject); the smaller central
    face is not taken on its own."""
    faces = [box(560, 200, 160), box(320, 240, 140)]
    assert dominant_face(faces, [False, False], (W, H)) is None
    assert dominant_face(faces, [False, False], (W, H), usable=[True, True]) is None


def test_an_unrecognisable_face_well_off_centre_stands_aside_whatever_its_size():
    """Turned away, blurred or covered bystanders at the side (LFW: a news photo with people kissing the subject's
    cheeks) do not compete; the same faces, recognisable, do."""
    faces = [box(80, 240, 160), box(320, 240, 140), box(560, 240, 150)]
    assert dominant_face(faces, [False] * 3, (W, H), usable=[False, True, False]) == 1
    assert dominant_face(faces, [False] * 3, (W, H), usable=[True, True, False]) is None
    assert dominant_face(faces, [False] * 3, (W, H)) is None  # usable unknown: every face counts


def test_an_unrecognisable_face_clearly_larger_than_the_central_one_competes():
    """Red team: the subject large at the side, turned away (or blurred, or covered), and a smaller stranger at the
    centre: the stranger must not be taken as the subject (a turned face 1.58 times the central one's height made
    LFW's Jimmy Carter the enrolled face of Federico Trillo). Faces about as large as the central one (box noise,
    LFW's kissed cheeks: 0.97–1.14) still stand aside."""
    central = box(320, 240, 100)
    for ratio in (1.0 / ph.DOMINANCE_RATIO, 1.58, 1.99):
        large = box(320 - 180, 240, ratio * 100)
        assert dominant_face([large, central], [False, False], (W, H), usable=[False, True]) is None, ratio
    for ratio in (0.97, 1.14, 1.24):
        near = box(320 - 180, 240, ratio * 100)
        assert dominant_face([near, central], [False, False], (W, H), usable=[False, True]) == 1, ratio


def test_an_unrecognisable_face_near_the_centre_still_competes():
    faces = [box(320, 240, 150), box(320 + 0.3 * 150, 240, 150)]
    assert dominant_face(faces, [False, False], (W, H), usable=[True, False]) is None


def test_an_unrecognisable_cut_face_keeps_the_cut_rule():
    """A cut face twice the height is likely the cropped subject even when unrecognisable (red team: Biden enrolled
    as Obama)."""
    cut_subject, bystander = box(320, 40, 2.0 * 90), box(320, 300, 90)
    assert dominant_face([cut_subject, bystander], [True, False], (W, H), usable=[False, True]) is None


def test_faces_cut_by_the_edge_never_dominate_and_compete_only_when_likely_the_subject():
    small_cut = box(300, 20, 0.79 * 120)  # central but small
    assert dominant_face([small_cut, box(320, 240, 120)], [True, False], (W, H)) == 1
    side_cut = box(630, 240, 1.5 * 120)  # as large, at the side: a neighbour of the centred subject
    assert dominant_face([box(320, 240, 120), side_cut], [False, True], (W, H)) == 0
    big_cut = box(20, 240, 300)
    assert dominant_face([big_cut], [True], (W, H)) is None


@pytest.mark.parametrize("ratio", [ph.DOMINANCE_RATIO, 1.0, 1.9])
def test_a_cut_face_as_large_and_nearer_the_centre_makes_the_photo_ambiguous(ratio):
    """The subject cropped through the forehead by the top edge, a small bystander whole in a corner: the
    bystander used to be taken as the subject (red team: Joe Biden enrolled as Barack Obama)."""
    cut_subject, bystander = box(320, 60, ratio * 100), box(560, 400, 100)
    assert dominant_face([cut_subject, bystander], [True, False], (W, H)) is None


def test_a_cut_face_twice_the_height_makes_the_photo_ambiguous_wherever_the_whole_one_is():
    cut_subject, bystander = box(320, 40, 2.0 * 90), box(320, 300, 90)  # the bystander is the more central
    assert dominant_face([cut_subject, bystander], [True, False], (W, H)) is None


# -- through enrolment_face ---------------------------------------------------------------------------------------
def _photo(index: int, boxes: list[Box], colours: list[str]) -> np.ndarray:
    return paint_frame(index, list(zip(colours, boxes, strict=True)), size=(H, W)).image


def _enrol(script, index, colours, face=None):  # type: ignore[no-untyped-def]
    det = ScriptedDetector(script)
    img = _photo(index, script[index], colours)
    return enrolment_face(img, det, ColourEmbedder(), 36, 0.0, face)


def test_equal_faces_are_refused_numbered_left_to_right_and_the_chosen_one_is_enrolled():
    right, left = box(470, 240, 160), box(170, 240, 160)
    script = {5: [right, left]}  # the detector lists the right face first
    with pytest.raises(PhotoRefused) as e:
        _enrol(script, 5, ["red", "blue"])
    assert "2 faces found and none is clearly the subject's" in str(e.value)
    assert [(f.number, f.box) for f in e.value.faces] == [(1, left), (2, right)]
    assert "face 1: x 106–234, y 160–320 (160 px high)" in str(e.value)
    chosen = {n: _enrol(script, 5, ["red", "blue"], face=n) for n in (1, 2)}
    assert chosen[1].detection.box == left and chosen[2].detection.box == right
    # the descriptors are of the chosen faces: the right face is painted red, the left blue
    assert chosen[2].descriptor[0] > chosen[2].descriptor[2] and chosen[1].descriptor[2] > chosen[1].descriptor[0]


def test_a_clearly_dominant_face_is_taken_without_asking():
    subject, bystander = box(320, 240, 200), box(560, 300, 90)
    got = _enrol({6: [bystander, subject]}, 6, ["blue", "red"])
    assert got.detection.box == subject
    assert (got.number, got.found) == (1, 2)  # the bystander is on the right: the subject is face 1 of 2


class _TurnedDetector(ScriptedDetector):
    """The scripted faces; those listed in ``turned`` have the nose far to one side (a face turned away)."""

    def __init__(self, script: dict[int, list[Box]], turned: list[Box]) -> None:
        super().__init__(script)
        self.turned = turned

    def detect(self, image: np.ndarray) -> list[Detection]:
        out = []
        for d in super().detect(image):
            if d.box in self.turned:
                lm = np.array(d.landmarks, dtype=np.float64)
                eye = np.hypot(*(lm[0:2].mean(axis=0) - lm[2:4].mean(axis=0)))
                lm[4, 0] = lm[0:4, 0].max() + 0.2 * eye  # the nose beyond the outer eye corner: in profile
                d = Detection(d.box, d.score, lm)
            out.append(d)
        return out


def test_a_large_turned_away_bystander_off_centre_does_not_block_the_subject():
    """Through the photo checks: a bystander as large as the subject at the side, turned away, is not a competitor
    (the subject is taken, as face 1 of 2); turned towards the camera it makes the photo ambiguous."""
    subject, bystander = box(300, 240, 140), box(540, 240, 150)
    script = {10: [subject, bystander]}
    img = _photo(10, script[10], ["red", "blue"])
    got = enrolment_face(img, _TurnedDetector(script, [bystander]), ColourEmbedder(), 36, 0.0)
    assert got.detection.box == subject and (got.number, got.found) == (1, 2)
    with pytest.raises(PhotoRefused, match="2 faces found and none is clearly the subject's"):
        enrolment_face(img, _TurnedDetector(script, []), ColourEmbedder(), 36, 0.0)


def test_a_chosen_face_that_does_not_exist_or_is_unusable_is_refused_with_the_faces():
    script = {7: [box(170, 240, 160), box(470, 240, 30)]}  # face 2 is 30 px high: too small
    with pytest.raises(PhotoRefused, match="there is no face 3: the photo has 2 face"):
        _enrol(script, 7, ["blue", "red"], face=3)
    with pytest.raises(PhotoRefused, match=r"face 2: face too small \(30 px high") as e:
        _enrol(script, 7, ["blue", "red"], face=2)
    assert [f.number for f in e.value.faces] == [1, 2] and e.value.faces[1].problem.startswith("face too small")


def test_no_face_and_a_single_unusable_face_keep_their_reasons():
    with pytest.raises(PhotoRefused, match="no face found") as e:
        _enrol({8: []}, 8, [])
    assert e.value.faces == ()
    with pytest.raises(PhotoRefused, match="face too small") as e:
        _enrol({9: [box(320, 240, 30)]}, 9, ["red"])
    assert e.value.faces == ()  # nothing to choose from


def test_an_unusable_central_face_is_refused_naming_it_and_numbering_the_faces():
    """Red team: the most central face turned away (a smaller, usable face at the side standing aside) was refused
    as "face turned too far …" alone — the CLI then asked for --face N without saying which face was judged or how
    the faces are numbered. The refusal names the face and lists them all, numbered."""
    side, central = box(120, 240, 100), box(330, 240, 140)
    script = {11: [central, side]}
    img = _photo(11, script[11], ["red", "blue"])
    with pytest.raises(PhotoRefused) as e:
        enrolment_face(img, _TurnedDetector(script, [central]), ColourEmbedder(), 36, 0.0)
    msg = str(e.value)
    assert msg.startswith("face 2 (the most central) of 2: face turned too far"), msg
    assert "choose one by its number: face 1: x 80–160" in msg and "; face 2: x 274–386" in msg, msg
    assert [f.number for f in e.value.faces] == [1, 2]
    got = enrolment_face(img, _TurnedDetector(script, [central]), ColourEmbedder(), 36, 0.0, face=1)
    assert got.detection.box == side and got.number == 1


def test_a_face_taken_without_a_choice_carries_the_other_usable_faces_for_the_cross_check():
    """The other usable faces of the photo come with the face taken (held in memory for the enrolment's check that
    none of them is more like the entry's other photos); none when the operator chose the face."""
    subject, bystander, tiny = box(320, 240, 200), box(560, 300, 90), box(80, 240, 30)
    script = {12: [bystander, subject, tiny]}
    got = _enrol(script, 12, ["blue", "red", "green"])
    assert got.detection.box == subject and (got.number, got.found) == (2, 3)
    assert [n for n, _ in got.others] == [3]  # the bystander (face 3); the 30 px face is too small to compare
    assert got.others[0][1].shape == got.descriptor.shape
    assert _enrol(script, 12, ["blue", "red", "green"], face=2).others == ()
