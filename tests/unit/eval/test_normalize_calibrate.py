import numpy as np
import pytest

from metrosight.config.load import load_settings
from metrosight.core.types import Category
from metrosight.eval.calibrate import CalibrationError, choose_threshold, fpir_from_fmr, set_recognition_keys
from metrosight.recognize.gallery import Gallery, GalleryEntry, Matcher, l2_normalize
from metrosight.recognize.normalize import Cohort, CohortError, CohortNorm


def rand_unit(n, seed, dim=128):
    return l2_normalize(np.random.default_rng(seed).normal(size=(n, dim)))


def test_cohort_stats_and_roundtrip(tmp_path):
    c = Cohort.build(rand_unit(50, 1) * 3.0, top_k=10)
    assert np.allclose(np.linalg.norm(c.descriptors, axis=1), 1, atol=1e-5)
    mu, sd = c.stats(c.descriptors[:3])
    assert mu.shape == (3,) and np.all(sd > 0)
    assert np.all(mu > 0.1)  # each row's top-10 includes itself (1.0); random strangers are near 0
    p = c.save(tmp_path / "cal" / "cohort.npz")
    back = Cohort.load(p)
    assert back.top_k == 10 and np.allclose(back.descriptors, c.descriptors)
    with pytest.raises(CohortError, match="not found"):
        Cohort.load(tmp_path / "nope.npz")
    with pytest.raises(CohortError):
        Cohort.build(np.zeros((1, 128)))


def test_as_norm_is_symmetric_standardisation():
    cohort = Cohort.build(rand_unit(200, 2), top_k=20)
    t = rand_unit(4, 3)
    norm = CohortNorm(cohort, t)
    probe = rand_unit(1, 4)[0]
    cos = t @ probe
    out = norm.normalize(probe, cos)
    mu_p, sd_p = cohort.stats(probe)
    expect = 0.5 * ((cos - norm.mu_g) / norm.sd_g + (cos - mu_p[0]) / sd_p[0])
    assert np.allclose(out, expect, atol=1e-5)
    assert np.allclose(norm.normalize_many(probe[None], cos[None])[0], out, atol=1e-5)


def test_hub_probe_is_tamed_by_normalisation():
    """A probe close to everybody (a hub) reaches a raw threshold against a stranger; AS-norm brings it down."""
    rng = np.random.default_rng(5)
    centre = l2_normalize(rng.normal(size=128))
    cohort = Cohort.build(l2_normalize(centre + 0.9 * rand_unit(300, 6)), top_k=30)
    gallery_vecs = l2_normalize(centre + 0.9 * rand_unit(5, 7))
    hub = l2_normalize(centre + 0.1 * rand_unit(1, 8)[0])
    entries = [GalleryEntry(i, f"p{i}", "wl", Category.WANTED, v) for i, v in enumerate(gallery_vecs)]
    raw = Matcher(Gallery(entries), threshold=0.6)
    assert raw.match(hub) is not None  # the hub looks like everyone
    normed = Matcher(Gallery(entries), threshold=3.0, cohort=cohort)
    assert normed.scoring == "cohort" and normed.match(hub) is None
    # A true mate still matches, under the same identity as with raw cosine.
    mate = l2_normalize(gallery_vecs[2] + 0.05 * rand_unit(1, 9)[0])
    m = normed.match(mate)
    assert m is not None and m.subject_name == "p2" and m.score > 3.0 and m.distance < 0.5


def test_choose_threshold_scales_with_watchlist_size_and_reports_bounds():
    rng = np.random.default_rng(0)
    scores = rng.normal(0.0, 1.0, size=(2000, 10))
    c10 = choose_threshold(scores, 0.01, 10, 100_000, "cohort")
    c1000 = choose_threshold(scores, 0.01, 1000, 100_000, "cohort")
    assert c1000.threshold > c10.threshold
    assert c10.resolved and c10.fpir <= 0.01 + 1e-9 and c10.fmr <= 1 - 0.99 ** (1 / 10)
    assert c10.false_alerts_per_day == pytest.approx(100_000 * c10.fpir)
    # 20,000 comparisons cannot resolve FMR ~1e-5: the threshold is above every score, the bound is rule-of-three.
    assert not c1000.resolved and c1000.fmr == 0.0
    assert c1000.fmr_upper == pytest.approx(3 / 20_000, rel=2e-3)  # rule of three
    assert c1000.false_alerts_per_day_upper == pytest.approx(100_000 * fpir_from_fmr(c1000.fmr_upper, 1000))
    assert c10.fmr_upper > c10.fmr
    floored = choose_threshold(scores, 0.5, 10, 1, "cohort", floor=2.5)
    assert floored.threshold == 2.5
    with pytest.raises(CalibrationError):
        choose_threshold(np.zeros((0, 3)), 0.01, 3, 1, "cosine")
    with pytest.raises(CalibrationError):
        choose_threshold(scores, 1.5, 3, 1, "cosine")


def test_set_recognition_keys_keeps_the_rest(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "# deployment config\n"
        "detection:\n  min_face_px: 40   # bigger faces only\n"
        "recognition:\n  embedder: onnx\n  match_threshold: 0.93  # lead's default\n  min_samples: 3\n"
        "tracking: {iou_threshold: 0.4}\n"
    )
    set_recognition_keys(cfg, {"match_threshold": 0.9512})
    text = cfg.read_text()
    assert "# deployment config" in text and "# bigger faces only" in text and "# lead's default" in text
    s = load_settings(cfg, environ={})
    assert s.recognition.match_threshold == pytest.approx(0.9512)
    assert s.recognition.min_samples == 3 and s.detection.min_face_px == 40 and s.tracking.iou_threshold == 0.4
    set_recognition_keys(cfg, {"match_threshold": 4.25, "normalization": "cohort"})
    s = load_settings(cfg, environ={})
    assert s.recognition.normalization == "cohort" and s.recognition.match_threshold == 4.25


def test_set_recognition_keys_creates_and_refuses_invalid(tmp_path):
    new = tmp_path / "new.yaml"
    set_recognition_keys(new, {"match_threshold": 0.95})
    assert load_settings(new, environ={}).recognition.match_threshold == 0.95
    other = tmp_path / "o.yaml"
    other.write_text("detection:\n  min_face_px: 40\n")
    set_recognition_keys(other, {"match_threshold": 0.94})
    s = load_settings(other, environ={})
    assert s.detection.min_face_px == 40 and s.recognition.match_threshold == 0.94
    flow = tmp_path / "f.yaml"
    flow.write_text("recognition: {min_samples: 3}\n")
    set_recognition_keys(flow, {"match_threshold": 0.96})
    s = load_settings(flow, environ={})
    assert s.recognition.min_samples == 3 and s.recognition.match_threshold == 0.96
    before = other.read_text()
    with pytest.raises(CalibrationError, match="invalid"):
        set_recognition_keys(other, {"match_threshold": 4.0})  # AS-norm units without normalization: cohort
    assert other.read_text() == before
