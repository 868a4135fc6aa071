"""Red team: at a low analysis rate a face track must not take over another person. A track that survives a few
missed detections (the miss count keeps it alive for seconds at 1 or 2 frames a second) must not continue with a
face of its size anywhere in the frame: the next person would inherit the first one's track — and, when that track
already alerted, never be recognised themselves."""

from __future__ import annotations

import dataclasses

import pytest

from metrosight.config.model import Settings
from metrosight.core.types import Box, Category
from metrosight.pipeline.camera import CameraPipeline
from metrosight.recognize.gallery import Gallery, GalleryEntry, Matcher
from tests.unit.fakes import ColourEmbedder
from tests.unit.pipeline.test_camera_gating import ColourPatchDetector, frame


def _run(frames, gating: bool):
    settings = Settings.model_validate(
        {
            "recognition": {"match_threshold": 0.95, "min_blur_var": 5.0},
            "detection": {"gating": {"enabled": gating}},
        }
    )
    emb = ColourEmbedder()
    gallery = Gallery(
        [
            GalleryEntry(1, "person-red", "wl", Category.WANTED, emb.of_colour("red")),
            GalleryEntry(2, "person-blue", "wl", Category.WANTED, emb.of_colour("blue")),
        ]
    )
    alerts: list = []
    pipe = CameraPipeline(settings, ColourPatchDetector(), emb, Matcher(gallery, 0.95), alerts.append, lambda u: None)
    for f in frames:
        pipe.process(f)
    pipe.finish()
    return pipe, alerts


@pytest.mark.parametrize("fps", [1.0, 2.0])
@pytest.mark.parametrize("blue_x", [300, 500])
@pytest.mark.parametrize("gating", [False, True])
def test_a_watchlisted_person_appearing_after_another_left_is_alerted_as_themselves(fps, blue_x, gating):
    """Red (watchlisted) stands at the left for three analysed frames and goes; one frame later blue (watchlisted
    too) appears 2.6 or 4.6 face heights away and stays. Both are alerted, on tracks of their own."""
    frames = [frame(i, [("red", Box(40, 150, 130, 250))], fps=fps) for i in range(3)]
    frames.append(frame(3, [], fps=fps))
    frames += [frame(i, [("blue", Box(blue_x, 170, blue_x + 90, 270))], fps=fps) for i in range(4, 8)]
    pipe, alerts = _run(frames, gating)
    assert sorted(a.subject for a in alerts) == ["person-blue", "person-red"]
    assert len({a.track_id for a in alerts}) == 2 and pipe.stats.tracks == 2


@pytest.mark.parametrize("gap", [4.0, 60.0])
def test_after_a_gap_in_the_video_the_next_person_at_the_same_spot_is_alerted_as_themselves(gap: float) -> None:
    """A motion-triggered recording (an NVR export of a turnstile camera) jumps ``gap`` seconds between clips: red
    (watchlisted) stands at the turnstile before the gap; after it blue (watchlisted) stands at the same spot. One
    missed detection across a long gap must not keep red's track alive for blue to continue."""
    spot = Box(270, 150, 360, 250)
    frames = [frame(i, [("red", spot)], fps=6.0) for i in range(6)]
    later = [dataclasses.replace(f, ts=f.ts + gap) for f in (frame(i, [("blue", spot)], fps=6.0) for i in range(6, 12))]
    pipe, alerts = _run(frames + later, gating=False)
    assert sorted(a.subject for a in alerts) == ["person-blue", "person-red"]
    assert len({a.track_id for a in alerts}) == 2
