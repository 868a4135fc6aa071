"""The camera pipeline with fake models: who is alerted, how often, and what is kept."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metrosight.config.model import Settings
from metrosight.core.types import Box, Category
from metrosight.pipeline.camera import CameraPipeline
from metrosight.recognize.gallery import Gallery, GalleryEntry, Matcher
from tests.unit.fakes import ColourEmbedder, ScriptedDetector, paint_frame


def run_script(people_by_frame: dict[int, list[tuple[str, Box]]], n_frames: int, enrolled=("red",), **rec):
    settings = Settings.model_validate({"recognition": {"match_threshold": 0.95, "min_blur_var": 5.0, **rec}})
    emb = ColourEmbedder()
    gallery = Gallery(
        [GalleryEntry(i + 1, f"person-{c}", "wl", Category.WANTED, emb.of_colour(c)) for i, c in enumerate(enrolled)]
    )
    det = ScriptedDetector({i: [b for _, b in people_by_frame.get(i, [])] for i in range(n_frames)})
    alerts, updates = [], []
    pipe = CameraPipeline(settings, det, emb, Matcher(gallery, 0.95), alerts.append, updates.append, run_id=1)
    for i in range(n_frames):
        pipe.process(paint_frame(i, people_by_frame.get(i, [])))
    pipe.finish()
    return pipe, alerts, updates, emb


def walk(colour, start, stop, x0=100, step=4):
    return {
        i: [(colour, Box(x0 + step * (i - start), 100, x0 + step * (i - start) + 90, 200))] for i in range(start, stop)
    }


def test_one_alert_per_track_not_per_frame():
    pipe, alerts, updates, emb = run_script(walk("red", 0, 30), 35)
    assert len(alerts) == 1
    a = alerts[0]
    assert a.subject == "person-red" and a.watchlist == "wl" and a.track_id == 1
    assert a.first_seen == 0.0 and a.samples >= 2
    assert a.crop_jpeg and a.crop_jpeg[:2] == b"\xff\xd8"
    # the final last-seen time arrives when the track ends
    assert [u.event_id for u in updates] == [a.event_id] and abs(updates[0].last_seen - 2.9) < 1e-6
    # after the decision the track is embedded only to check it is still that person, every decide_every_seconds
    rec = pipe.settings.recognition
    assert emb.faces <= rec.max_samples + 1 + math.ceil(2.9 / rec.decide_every_seconds)
    assert pipe.stats.tracks == 1 and pipe.stats.frames == 35 and pipe.stats.faces == 30


def test_stranger_is_not_alerted_and_forgotten():
    pipe, alerts, _, emb = run_script(walk("green", 0, 20), 25)
    assert alerts == []
    assert emb.faces > 0  # it was looked at …
    assert len(pipe.fusion) == 0  # … and every descriptor is gone once its track ended


def test_two_people_two_tracks():
    script = walk("red", 0, 15, x0=20)
    for i, people in walk("blue", 0, 15, x0=400).items():
        script[i] = script.get(i, []) + people
    _, alerts, _, _ = run_script(script, 16, enrolled=("red", "blue"))
    assert sorted(a.subject for a in alerts) == ["person-blue", "person-red"]
    assert len({a.track_id for a in alerts}) == 2


def test_same_person_returning_is_a_new_track_and_a_new_alert():
    script = walk("red", 0, 10) | walk("red", 20, 30)
    _, alerts, _, _ = run_script(script, 31)
    assert len(alerts) == 2 and alerts[0].track_id != alerts[1].track_id
    assert alerts[1].first_seen == pytest.approx(2.0)


def test_single_glimpse_needs_min_samples():
    _, alerts, _, _ = run_script(walk("red", 0, 1), 10)
    assert alerts == []


def test_small_faces_are_not_recognised():
    script = {i: [("red", Box(100, 100, 120, 120))] for i in range(10)}
    _, alerts, _, emb = run_script(script, 10)
    assert alerts == [] and emb.faces == 0


def test_empty_gallery_embeds_nothing():
    pipe, alerts, _, emb = run_script(walk("red", 0, 10), 10, enrolled=())
    assert alerts == [] and emb.calls == 0 and pipe.stats.faces == 10


def test_crop_blurs_other_faces():
    from metrosight.policy.redact import redacted_crop

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, size=(200, 300, 3), dtype=np.uint8)
    keep, other = Box(10, 10, 90, 90), Box(100, 10, 180, 90)
    crop = redacted_crop(img, Box(0, 0, 200, 100), keep, [keep, other])
    assert np.array_equal(crop[15:85, 15:85], img[15:85, 15:85])  # the matched face is untouched
    assert np.abs(crop[20:80, 110:170].astype(int) - img[20:80, 110:170]).mean() > 20  # the other is not


def test_faces_that_cannot_reach_min_quality_are_not_even_aligned(monkeypatch):
    import metrosight.pipeline.camera as camera

    aligned = []
    real_align = camera.align
    monkeypatch.setattr(camera, "align", lambda *a, **k: aligned.append(1) or real_align(*a, **k))
    # 40 px faces: size score 40/72, so no chip can score above (40/72) ** (1/3) = 0.82 < min_quality 0.9
    small = {i: [("red", Box(100 + 2 * i, 100, 140 + 2 * i, 140))] for i in range(20)}
    _, alerts, _, emb = run_script(small, 20, min_quality=0.9)
    assert aligned == [] and emb.faces == 0 and alerts == []
    # the same faces with a reachable threshold are aligned, embedded and alerted as before
    _, alerts, _, emb = run_script(small, 20, min_quality=0.5)
    assert aligned and emb.faces >= 2 and [a.subject for a in alerts] == ["person-red"]


def test_an_ambiguous_track_alerts_once_naming_both_candidates():
    """Two different persons enrolled with the same face: the track is alerted (not dropped), with the other person
    as a candidate for the operators to decide."""
    settings = Settings.model_validate({"recognition": {"min_blur_var": 5.0}})
    emb = ColourEmbedder()
    red = emb.of_colour("red")
    gallery = Gallery(
        [
            GalleryEntry(1, "Eve", "wanted", Category.WANTED, red, person_id=1, person_name="Eve"),
            GalleryEntry(2, "Ida", "missing", Category.MISSING, red, person_id=2, person_name="Ida"),
        ]
    )
    det = ScriptedDetector({i: [b for _, b in walk("red", 0, 30)[i]] for i in range(30)})
    alerts: list = []
    pipe = CameraPipeline(
        settings, det, emb, Matcher(gallery, 0.95, min_margin=0.02), alerts.append, lambda _u: None, run_id=1
    )
    for i in range(30):
        pipe.process(paint_frame(i, walk("red", 0, 30)[i]))
    pipe.finish()
    [a] = alerts
    assert {a.subject, a.candidates[0].name} == {"Eve", "Ida"} and a.candidates[0].person_id in (1, 2)
