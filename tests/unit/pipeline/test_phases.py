"""The phases of a camera's frame: composed by hand they give what ``process`` gives (alerts, updates, counters)."""

from __future__ import annotations

import numpy as np
import pytest

from metrosight.config.model import Settings
from metrosight.core.types import Box, Category, Detection
from metrosight.pipeline.camera import CameraPipeline
from metrosight.pipeline.phases import DetectionArea
from metrosight.recognize.gallery import Gallery, GalleryEntry, Matcher
from tests.unit.fakes import ColourEmbedder, ScriptedDetector, landmarks_for, paint_frame


def script() -> dict[int, list[tuple[str, Box]]]:
    """Red walks right, blue walks left and leaves, green (a stranger) stands; then red comes back."""
    people: dict[int, list[tuple[str, Box]]] = {}
    for i in range(30):
        row = [("red", Box(20 + 4 * i, 100, 110 + 4 * i, 190))] if i < 14 or i > 20 else []
        if i < 18:
            row.append(("blue", Box(500 - 3 * i, 250, 590 - 3 * i, 340)))
        row.append(("green", Box(300, 20, 380, 100)))
        people[i] = row
    return people


def pipeline(people: dict[int, list[tuple[str, Box]]]) -> tuple[CameraPipeline, list, list, ColourEmbedder]:
    settings = Settings.model_validate({"recognition": {"match_threshold": 0.95, "min_blur_var": 5.0}})
    emb = ColourEmbedder()
    gallery = Gallery(
        [
            GalleryEntry(i + 1, f"person-{c}", "wl", Category.WANTED, emb.of_colour(c))
            for i, c in enumerate(("red", "blue"))
        ]
    )
    det = ScriptedDetector({i: [b for _, b in row] for i, row in people.items()})
    alerts: list = []
    updates: list = []
    pipe = CameraPipeline(
        settings,
        det,
        emb,
        Matcher(gallery, 0.95),
        alerts.append,
        updates.append,
        run_id=1,
        event_scope="s1",
        clock=lambda: 1000.0,
    )
    return pipe, alerts, updates, emb


def test_the_phases_composed_give_what_process_gives():
    people = script()
    whole, alerts_a, updates_a, emb_a = pipeline(people)
    phased, alerts_b, updates_b, emb_b = pipeline(people)
    returned_a, returned_b = [], []
    for i in range(len(people) + 3):
        frame = paint_frame(i, people.get(i, []))
        returned_a.append([a.event_id for a in whole.process(frame)])
        request = phased.prepare(frame)
        found = [phased.detector.detect(area.image) for area in request.areas]
        pending = phased.after_detection(request, found)
        assert pending.chips.shape == (len(pending.samples), 150, 150, 3)
        descriptors = phased.embedder.embed(pending.chips) if pending.samples else np.zeros((0, 128), np.float32)
        returned_b.append([a.event_id for a in phased.after_embedding(pending, descriptors)])
    whole.finish()
    phased.finish()
    assert sorted(a.subject for a in alerts_a) == ["person-blue", "person-red", "person-red"]
    assert [a.model_dump() for a in alerts_a] == [a.model_dump() for a in alerts_b]
    assert updates_a == updates_b and returned_a == returned_b
    assert emb_a.faces == emb_b.faces > 0
    sa, sb = whole.stats, phased.stats
    assert (sa.frames, sa.faces, sa.tracks, sa.alerts, sa.embedded) == (
        sb.frames,
        sb.faces,
        sb.tracks,
        sb.alerts,
        sb.embedded,
    )


def test_detections_of_a_crop_or_a_downscaled_image_come_back_in_frame_pixels():
    box = Box(10, 20, 50, 60)
    det = Detection(box, 0.9, landmarks_for(box), yaw=0.1)
    crop = DetectionArea(np.zeros((100, 100, 3), np.uint8), offset=(300.0, 200.0), scale=2.0)
    (back,) = crop.to_frame([det])
    assert back.box.as_tuple() == pytest.approx((320, 240, 400, 320))
    assert back.landmarks is not None and np.allclose(back.landmarks, landmarks_for(box) * 2 + [300, 200])
    assert back.score == 0.9 and back.yaw == 0.1
    whole = DetectionArea(np.zeros((100, 100, 3), np.uint8))
    assert whole.to_frame([det]) == [det]


def test_detections_must_match_the_areas_and_descriptors_the_chips():
    people = script()
    pipe, _, _, _ = pipeline(people)
    request = pipe.prepare(paint_frame(0, people[0]))
    with pytest.raises(ValueError, match="0 detection lists for 1 detection areas"):
        pipe.after_detection(request, [])
    pending = pipe.after_detection(request, [pipe.detector.detect(request.areas[0].image)])
    assert pending.samples
    with pytest.raises(ValueError, match="descriptors for"):
        pipe.after_embedding(pending, np.zeros((0, 128), np.float32))
