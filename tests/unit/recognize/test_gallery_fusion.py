import numpy as np
import pytest

from metrosight.core.types import Box, Category, FaceSample
from metrosight.recognize.fusion import TrackFusion
from metrosight.recognize.gallery import Gallery, GalleryEntry, Matcher, fuse, l2_normalize


def unit(seed, dim=128):
    return l2_normalize(np.random.default_rng(seed).normal(size=dim))


def gallery(*vecs):
    return Gallery([GalleryEntry(i + 1, f"p{i}", "wl", Category.WANTED, v) for i, v in enumerate(vecs)])


def test_matcher_threshold_and_distance():
    a, b = unit(1), unit(2)
    m = Matcher(gallery(a, b), threshold=0.9)
    hit = m.match(a * 3.0)
    assert hit is not None and hit.subject_name == "p0" and abs(hit.score - 1.0) < 1e-5 and hit.distance < 1e-2
    assert m.match(unit(3)) is None
    assert Matcher(gallery(), 0.9).match(a) is None


def test_fuse_is_unit_mean():
    a, b = unit(1), unit(2)
    f = fuse(np.stack([a, b]))
    assert abs(np.linalg.norm(f) - 1) < 1e-6
    assert np.allclose(f, l2_normalize(a + b), atol=1e-6)


def sample(track, q, ts=0.0):
    return FaceSample(track, ts, Box(0, 0, 10, 10), np.zeros((150, 150, 3), np.uint8), q)


def test_fusion_needs_min_samples_and_decides_once():
    a = unit(1)
    fusion = TrackFusion(Matcher(gallery(a), 0.9), min_samples=2, max_samples=3, decide_every=0.0)
    fusion.add(sample(7, 0.5), a + 0.05 * unit(9))
    assert fusion.decide(7, 0.1) is None  # one shot is not enough
    fusion.add(sample(7, 0.6), a + 0.05 * unit(10))
    first = fusion.decide(7, 0.2)
    assert first is not None and first.subject_name == "p0"
    assert fusion.decide(7, 0.3) is None  # once per track
    fusion.forget(7)
    assert fusion.state(7) is None and len(fusion) == 0


def test_fusion_keeps_best_shots():
    fusion = TrackFusion(Matcher(gallery(unit(1)), 0.9), min_samples=1, max_samples=2, decide_every=1.0)
    for q in (0.2, 0.9, 0.5):
        fusion.add(sample(1, q), unit(int(q * 10)))
    assert sorted(s.sample.quality for s in fusion.state(1).shots) == [0.5, 0.9]
    assert fusion.wants(1, 0.4) is False and fusion.wants(1, 0.6) is True
    assert fusion.state(1).best_shot().quality == 0.9


def test_two_different_persons_close_together_are_shown_as_ambiguous():
    """Ambiguity rule: another person above their threshold within the margin is shown next to the best, never
    dropped; a rival below the threshold or outside the margin does not make the match ambiguous."""
    a = unit(1)
    b = l2_normalize(a + 0.05 * unit(2))  # a near look-alike of a
    probe = l2_normalize(a + b)
    assert not Matcher(gallery(a, b), 0.9, min_margin=0.0).match(probe).ambiguous
    m = Matcher(gallery(a, b), 0.9, min_margin=0.05).match(probe)
    assert m is not None and m.ambiguous and {m.subject_name, m.rivals[0].name} == {"p0", "p1"}
    assert m.rivals[0].score >= 0.9
    alone = Matcher(gallery(a, unit(3)), 0.9, min_margin=0.05).match(a)
    assert alone.subject_name == "p0" and not alone.ambiguous
    # the look-alike under its own (stricter) threshold is no rival: the match is not ambiguous
    strict_b = Matcher(gallery(a, b), 0.9, min_margin=0.05, thresholds=np.array([0.9, 0.99999])).match(a)
    assert strict_b.subject_name == "p0" and not strict_b.ambiguous


def test_same_person_on_two_lists_is_not_ambiguous():
    a = unit(1)
    two = Gallery(
        [
            GalleryEntry(1, "Ann Lee", "wanted", Category.WANTED, a, person_id=7, person_name="Ann Lee"),
            GalleryEntry(
                2,
                "Ann Lee",
                "missing",
                Category.MISSING,
                l2_normalize(a + 0.01 * unit(4)),
                person_id=7,
                person_name="Ann Lee",
            ),
            GalleryEntry(3, "Bo Li", "wanted", Category.WANTED, unit(9), person_id=8, person_name="Bo Li"),
        ]
    )
    m = Matcher(two, 0.9, min_margin=0.05).match(a)
    assert m is not None and not m.ambiguous and m.person_id == 7 and set(m.watchlists) == {"wanted", "missing"}


def test_per_list_thresholds_take_the_person_s_loosest_list():
    a, b = unit(1), unit(2)
    probe = l2_normalize(a + 0.35 * unit(5))  # cosine to a about 0.94
    cos = float(probe @ a)
    g = Gallery(
        [
            GalleryEntry(1, "Ann Lee", "missing", Category.MISSING, a, person_id=7, person_name="Ann Lee"),
            GalleryEntry(2, "Bo Li", "wanted", Category.WANTED, b, person_id=8, person_name="Bo Li"),
        ]
    )
    assert Matcher(g, cos + 0.01).match(probe) is None  # one strict threshold for all: no match
    m = Matcher(g, cos + 0.01, thresholds=np.array([cos - 0.01, cos + 0.01])).match(probe)
    assert m is not None and m.person_id == 7
    with pytest.raises(ValueError, match="one value per entry"):
        Matcher(g, 0.9, thresholds=np.array([0.9]))
