"""Matching over persons: the same person on two lists is one candidate named with both lists; the ambiguity rule
compares different persons only; enrolment links by name and face only, and otherwise warns."""

import numpy as np

from metrosight.core.types import Category
from metrosight.recognize.gallery import Gallery, GalleryEntry, Matcher
from metrosight.recognize.persons import Candidate, candidates, decide, name_key


def unit(seed):
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


def near(v, seed, eps=0.05):
    w = v + eps * unit(seed)
    return w / np.linalg.norm(w)


def test_same_person_on_two_lists_is_one_candidate_named_with_both_lists():
    face = unit(1)
    g = Gallery(
        [
            GalleryEntry(1, "Ann Lee", "wanted", Category.WANTED, face, 7, "Ann Lee", "R-1"),
            GalleryEntry(2, "Ann Lee", "missing", Category.MISSING, near(face, 2, 0.01), 7, "Ann Lee", "R-2"),
            GalleryEntry(3, "Bob", "wanted", Category.WANTED, unit(3), 8, "Bob"),
        ]
    )
    m = Matcher(g, 0.9, min_margin=0.05).match(near(face, 4))
    assert m is not None and m.person_id == 7 and m.person_name == "Ann Lee"
    assert set(m.watchlists) == {"wanted", "missing"} and {e.reference for e in m.entries} == {"R-1", "R-2"}
    assert m.entries[0].entry_id == m.subject_id  # the best-scoring entry first
    assert g.persons == 2


def test_same_face_as_two_different_persons_is_still_ambiguous():
    face = unit(1)
    g = Gallery(
        [
            GalleryEntry(1, "Ann", "wanted", Category.WANTED, face, 7, "Ann"),
            GalleryEntry(2, "Ann twin", "missing", Category.MISSING, near(face, 2, 0.01), 8, "Ann twin"),
        ]
    )
    m = Matcher(g, 0.9, min_margin=0.05).match(near(face, 4))  # ambiguous: both shown, nothing dropped
    assert m is not None and m.ambiguous and {m.person_id, m.rivals[0].person_id} == {7, 8}
    assert not Matcher(g, 0.9, min_margin=0.0).match(near(face, 4)).ambiguous


def test_entries_without_a_person_each_count_as_their_own():
    face = unit(1)
    g = Gallery([GalleryEntry(1, "A", "w", Category.WANTED, face), GalleryEntry(2, "A", "m", Category.MISSING, face)])
    m = Matcher(g, 0.9, min_margin=0.05).match(face)
    assert m is not None and m.ambiguous and len(m.entries) == 1  # two candidates, not one person


def test_name_key_folds_case_space_and_unicode_form():
    assert name_key("  José\u0301  LEE ") != name_key("josé lee")  # an extra accent is another name
    assert name_key("Jose\u0301 Lee") == name_key("josé  lee") == name_key("JOSÉ LEE")


def cand(pid, score, name="Ann Lee"):
    return Candidate(pid, name, score, (name,), ("wanted",))


def test_decide_links_same_name_and_face_only():
    d = decide("ann lee", [cand(7, 0.97)], {7: "Ann Lee"}, set())
    assert d.person_id == 7 and "same name and face" in d.reason and not d.warnings
    other_name = decide("Anna Smith", [cand(7, 0.97)], {}, set())
    assert other_name.person_id is None and "person link 7 NEW_PERSON" in other_name.warnings[0]
    no_face = decide("Ann Lee", [], {7: "Ann Lee"}, set())
    assert no_face.person_id is None and "does not match" in no_face.warnings[0]


def test_decide_respects_recorded_distinct_pairs_for_added_photos():
    assert decide("Ann", [cand(8, 0.95, "Eve")], {}, {(7, 8)}, own_person=7).warnings == ()
    assert "person link 7 8" in decide("Ann", [cand(8, 0.95, "Eve")], {}, set(), own_person=7).warnings[0]


def test_candidates_are_persons_above_threshold_best_first():
    face = unit(1)
    g = Gallery(
        [
            GalleryEntry(1, "Ann", "wanted", Category.WANTED, face, 7, "Ann"),
            GalleryEntry(2, "Ann", "missing", Category.MISSING, face, 7, "Ann"),
            GalleryEntry(3, "Eve", "wanted", Category.WANTED, near(face, 5, 0.2), 9, "Eve"),
            GalleryEntry(4, "Bob", "wanted", Category.WANTED, unit(9), 8, "Bob"),
        ]
    )
    found = candidates(Matcher(g, 0.9), face)
    assert [c.person_id for c in found] == [7, 9] and found[0].watchlists == ("wanted", "missing")
