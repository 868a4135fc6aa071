"""Still photos embedded from nine moved alignments (``photos.jitter``): the moves, the unit mean, one embedder call
for all chips of all faces, and the photo paths (enrolment, identification) using it only when asked."""

from __future__ import annotations

import numpy as np
import pytest

from metrosight.core.types import Box
from metrosight.recognize.align import AlignmentError
from metrosight.recognize.jitter import (
    MAX_JITTERED_FACES,
    MOVES,
    embed_still,
    jitters,
    moved_landmarks,
    still_chips,
    unit_mean,
)
from metrosight.recognize.photo import enrolment_face, faces_in_photo
from tests.unit.fakes import ColourEmbedder, ScriptedDetector, landmarks_for, paint_frame

W, H = 640, 480


def box(cx: float, cy: float, h: float) -> Box:
    return Box(cx - 0.4 * h, cy - h / 2, cx + 0.4 * h, cy + h / 2)


def test_moves_are_the_plain_landmarks_then_shifts_scales_and_rotations_in_eye_distances():
    lm = np.asarray(landmarks_for(box(320, 240, 150)), dtype=np.float64)
    eye = np.hypot(*(lm[0:2].mean(axis=0) - lm[2:4].mean(axis=0)))
    marks = moved_landmarks(lm)
    assert len(marks) == 1 + len(MOVES) == 9
    assert np.array_equal(marks[0], lm)
    assert np.allclose(marks[1] - lm, [0.06 * eye, 0.0])  # shifted right by 6% of the eye distance
    assert np.allclose(marks[3] - lm, [0.0, 0.06 * eye])  # and down
    centre = lm.mean(axis=0)
    assert np.allclose(marks[5] - centre, 1.06 * (lm - centre))  # scaled about the centre
    d0, d7 = lm[0] - centre, marks[7][0] - centre
    angle = np.degrees(np.arctan2(d7[1], d7[0]) - np.arctan2(d0[1], d0[0]))
    assert angle == pytest.approx(4.0, abs=1e-6)  # rotated by 4 degrees, distances kept
    assert np.linalg.norm(d7) == pytest.approx(np.linalg.norm(d0))


def test_unit_mean_is_the_normalised_mean_of_normalised_rows():
    d = np.array([[3.0, 0.0], [0.0, 0.5]], dtype=np.float32)
    assert np.allclose(unit_mean(d), [np.sqrt(0.5), np.sqrt(0.5)])
    assert unit_mean(d).dtype == np.float32


def test_still_chips_refuse_missing_landmarks():
    img = np.zeros((H, W, 3), np.uint8)
    with pytest.raises(AlignmentError):
        still_chips(img, box(320, 240, 150), None, jitter=True)
    assert still_chips(img, box(320, 240, 150), landmarks_for(box(320, 240, 150)), jitter=True).shape == (
        9,
        150,
        150,
        3,
    )
    assert still_chips(img, box(320, 240, 150), landmarks_for(box(320, 240, 150)), jitter=False).shape == (
        1,
        150,
        150,
        3,
    )


def _photo(faces: list[Box], colours: list[str]) -> np.ndarray:
    return paint_frame(3, list(zip(colours, faces, strict=True)), size=(H, W)).image


def test_every_chip_of_every_face_goes_in_one_call_and_each_face_gets_one_unit_descriptor():
    faces = [box(170, 240, 160), box(470, 240, 160)]
    img = _photo(faces, ["red", "blue"])
    emb = ColourEmbedder()
    d = embed_still(img, [(b, landmarks_for(b)) for b in faces], emb, jitter=True)
    assert d.shape == (2, 128) and emb.calls == 1 and emb.faces == 18
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0)
    assert d[0][0] > d[0][2] and d[1][2] > d[1][0]  # each face's own colour: the chips are not mixed up
    plain = embed_still(img, [(b, landmarks_for(b)) for b in faces], ColourEmbedder(), jitter=False)
    chips = np.concatenate([still_chips(img, b, landmarks_for(b), jitter=False) for b in faces])
    assert np.array_equal(plain, ColourEmbedder().embed(chips))  # without jitter: the embedder's own descriptors


@pytest.mark.parametrize("jitter", [False, True])
def test_enrolment_and_identification_embed_nine_chips_a_face_only_with_jitter(jitter):
    faces = [box(320, 240, 160)]
    img = _photo(faces, ["red"])
    emb = ColourEmbedder()
    enrolment_face(img, ScriptedDetector({3: faces}), emb, 36, 0.0, jitter=jitter)
    assert emb.faces == (9 if jitter else 1)
    emb = ColourEmbedder()
    usable, _ = faces_in_photo(img, ScriptedDetector({3: faces}), emb, 36, 0.0, jitter=jitter)
    assert len(usable) == 1 and emb.faces == (9 if jitter else 1) and emb.calls == 1


def _crowd(n: int) -> tuple[np.ndarray, list[Box]]:
    """A photo of ``n`` equal faces, 80 px high, in rows of six."""
    faces = [box(60 + 100 * (i % 6), 60 + 110 * (i // 6), 80) for i in range(n)]
    return _photo(faces, [("red", "green", "blue")[i % 3] for i in range(n)]), faces


@pytest.mark.parametrize("n", [MAX_JITTERED_FACES, MAX_JITTERED_FACES + 1])
def test_a_crowd_photo_is_embedded_from_one_alignment_a_face_so_its_cost_stays_bounded(n):
    # a hostile or careless client's crowd photo must not cost 18 network passes a face (97 faces: 9.6 s of CPU)
    img, faces = _crowd(n)
    emb = ColourEmbedder()
    usable, _ = faces_in_photo(img, ScriptedDetector({3: faces}), emb, 36, 0.0, jitter=True)
    assert len(usable) == n
    assert emb.faces == (9 * n if n <= MAX_JITTERED_FACES else n)
    if n > MAX_JITTERED_FACES:  # exactly as with photos.jitter off
        plain, _ = faces_in_photo(img, ScriptedDetector({3: faces}), ColourEmbedder(), 36, 0.0, jitter=False)
        assert all(np.array_equal(a.descriptor, b.descriptor) for a, b in zip(usable, plain, strict=True))
    assert jitters(n, True) == (n <= MAX_JITTERED_FACES) and not jitters(1, False)
    emb = ColourEmbedder()
    d = embed_still(img, [(b, landmarks_for(b)) for b in faces], emb, jitter=True)
    assert d.shape == (n, 128) and emb.faces == (9 * n if n <= MAX_JITTERED_FACES else n)


def test_an_enrolment_photo_of_a_crowd_embeds_its_faces_from_one_alignment_each():
    # one large central face and twelve small ones: the taken face and the others it is checked against are all
    # embedded alike (one alignment each), at the cost of photos.jitter off
    small = [box(60 + 100 * (i % 6), 30 if i < 6 else 450, 40) for i in range(12)]
    faces = [box(320, 240, 200), *small]
    img = _photo(faces, ["red"] + ["blue"] * 12)
    emb = ColourEmbedder()
    got = enrolment_face(img, ScriptedDetector({3: faces}), emb, 36, 0.0, jitter=True)
    assert got.found == 13 and len(got.others) == 12 and emb.faces == 13
    emb = ColourEmbedder()
    chosen = enrolment_face(img, ScriptedDetector({3: faces}), emb, 36, 0.0, face=got.number, jitter=True)
    assert emb.faces == 9  # the operator's choice alone: jittered
    assert not np.array_equal(chosen.descriptor, got.descriptor)
