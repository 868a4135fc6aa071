"""A track resumed after a miss (or by distance) must not carry another person: the face is checked against the
track's fused descriptor first, and another person's face splits the track (issue 20 red team)."""

from __future__ import annotations

import numpy as np
import pytest

from metrosight.config.model import Settings
from metrosight.core.types import Box, Category, Detection
from metrosight.pipeline.camera import CameraPipeline
from metrosight.recognize.gallery import Gallery, GalleryEntry, Matcher
from tests.unit.fakes import ColourEmbedder, ScriptedDetector, paint_frame

FPS = 6.0
SPOT = Box(200, 150, 290, 250)  # a face 100 px high
NEAR = Box(260, 160, 350, 260)  # 0.6 face heights from SPOT's centre: no overlap with it above 0.2


class NoLandmarksAfter(ScriptedDetector):
    """The scripted detector, without landmarks from frame ``after`` on (faces that cannot be aligned)."""

    def __init__(self, script: dict[int, list[Box]], after: int) -> None:
        super().__init__(script)
        self.after = after

    def detect(self, image: np.ndarray) -> list[Detection]:
        index = int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])
        found = super().detect(image)
        return [Detection(d.box, d.score, None) for d in found] if index >= self.after else found


def run(script: dict[int, list[tuple[str, Box]]], n: int, *, no_landmarks_after: int | None = None):
    settings = Settings.model_validate({"recognition": {"match_threshold": 0.95, "min_blur_var": 5.0}})
    emb = ColourEmbedder()
    gallery = Gallery(
        [
            GalleryEntry(1, "person-red", "wl", Category.WANTED, emb.of_colour("red")),
            GalleryEntry(2, "person-blue", "wl", Category.WANTED, emb.of_colour("blue")),
        ]
    )
    boxes = {i: [b for _, b in script.get(i, [])] for i in range(n)}
    det = ScriptedDetector(boxes) if no_landmarks_after is None else NoLandmarksAfter(boxes, no_landmarks_after)
    alerts: list = []
    updates: list = []
    pipe = CameraPipeline(settings, det, emb, Matcher(gallery, 0.95), alerts.append, updates.append, run_id=1)
    for i in range(n):
        pipe.process(paint_frame(i, script.get(i, []), fps=FPS))
    pipe.finish()
    return pipe, alerts, updates


def hidden_then(colour: str, box: Box, hidden: int = 2) -> dict[int, list[tuple[str, Box]]]:
    """Red (watchlisted) at SPOT for frames 0-5, hidden for ``hidden`` frames, then ``colour`` at ``box`` for 6."""
    script: dict[int, list[tuple[str, Box]]] = {i: [("red", SPOT)] for i in range(6)}
    start = 6 + hidden
    script |= {i: [(colour, box)] for i in range(start, start + 6)}
    return script


@pytest.mark.parametrize("hidden", [1, 2])
@pytest.mark.parametrize("box", [SPOT, NEAR])
def test_another_person_resuming_an_alerted_track_is_alerted_as_themselves(hidden: int, box: Box) -> None:
    """Red is alerted, hidden behind a pillar for 1 or 2 analysed frames (under 0.5 s); blue (watchlisted too)
    appears where red was. Blue gets a track and an alert of their own; red's alert ends where red was last seen."""
    pipe, alerts, updates = run(hidden_then("blue", box, hidden), 6 + hidden + 7)
    assert [a.subject for a in alerts] == ["person-red", "person-blue"]
    red, blue = alerts
    assert red.track_id != blue.track_id and red.event_id != blue.event_id
    assert blue.first_seen == pytest.approx((6 + hidden) / FPS, abs=1e-3)
    last = {u.event_id: u.last_seen for u in updates}
    assert last[red.event_id] == pytest.approx(5 / FPS, abs=1e-3)  # red's own last sighting, not blue's
    assert last[blue.event_id] == pytest.approx((6 + hidden + 5) / FPS, abs=1e-3)
    assert pipe.stats.splits == 1 and len(pipe.fusion) == 0


@pytest.mark.parametrize("box", [SPOT, NEAR])
def test_the_same_person_resuming_keeps_one_track_and_one_alert(box: Box) -> None:
    """Red hidden for two analysed frames comes back: one track, one alert, last seen at red's last sighting."""
    pipe, alerts, updates = run(hidden_then("red", box), 15)
    assert [a.subject for a in alerts] == ["person-red"]
    assert [u.last_seen for u in updates] == [pytest.approx(13 / FPS, abs=1e-3)]
    assert pipe.stats.splits == 0 and pipe.stats.resumes_checked >= 1 and pipe.stats.tracks == 1


def test_another_person_taking_a_track_by_distance_without_a_miss_is_split() -> None:
    """Red is alerted and steps out of view as blue steps in 0.6 face heights away at the next frame (no miss:
    matched by centre distance): blue is recognised as blue."""
    script = {i: [("red", SPOT)] for i in range(6)} | {i: [("blue", NEAR)] for i in range(6, 12)}
    pipe, alerts, updates = run(script, 13)
    assert [a.subject for a in alerts] == ["person-red", "person-blue"]
    assert {u.event_id: u.last_seen for u in updates}[alerts[0].event_id] == pytest.approx(5 / FPS, abs=1e-3)


def test_a_face_that_cannot_be_checked_does_not_extend_an_alert() -> None:
    """After the miss the face has no landmarks (it cannot be embedded): it may not extend red's alert."""
    pipe, alerts, updates = run(hidden_then("red", SPOT), 15, no_landmarks_after=8)
    assert [a.subject for a in alerts] == ["person-red"]
    assert [u.last_seen for u in updates] == [pytest.approx(5 / FPS, abs=1e-3)]
    assert pipe.stats.splits == 1


def test_a_track_not_yet_alerted_does_not_fuse_two_people() -> None:
    """Green (not watchlisted) is seen, hidden, and blue resumes the track: blue's shots are fused on their own and
    blue is alerted; green's shots never are."""
    script = {i: [("green", SPOT)] for i in range(4)} | {i: [("blue", SPOT)] for i in range(6, 9)}
    pipe, alerts, _ = run(script, 10)
    assert [a.subject for a in alerts] == ["person-blue"]
    assert alerts[0].first_seen == pytest.approx(6 / FPS, abs=1e-3)
    assert pipe.stats.splits == 1


def test_in_a_no_identification_window_a_resumed_alerted_track_is_split_without_embedding() -> None:
    """Red is alerted; a no-identification window starts while red is hidden: the face that resumes the track may
    not be embedded to check it, so it does not extend red's alert either."""
    settings = Settings.model_validate({"recognition": {"match_threshold": 0.95, "min_blur_var": 5.0}})
    emb = ColourEmbedder()
    matcher = Matcher(Gallery([GalleryEntry(1, "person-red", "wl", Category.WANTED, emb.of_colour("red"))]), 0.95)
    script = hidden_then("blue", SPOT)
    det = ScriptedDetector({i: [b for _, b in script.get(i, [])] for i in range(15)})
    alerts: list = []
    updates: list = []
    now = {"i": 0}
    window = {"on": False}

    def policy() -> tuple[Matcher, bool] | None:
        if now["i"] == 7 and not window["on"]:
            window["on"] = True
            return matcher, False
        return None

    pipe = CameraPipeline(settings, det, emb, matcher, alerts.append, updates.append, policy=policy)
    for i in range(15):
        now["i"] = i
        if i == 7:
            embedded = emb.faces
        pipe.process(paint_frame(i, script.get(i, []), fps=FPS))
    pipe.finish()
    assert [a.subject for a in alerts] == ["person-red"] and emb.faces == embedded
    assert [u.last_seen for u in updates] == [pytest.approx(5 / FPS, abs=1e-3)]
    assert pipe.stats.splits == 1  # and nothing embedded in the window (above)


class NoLandmarksBefore(ScriptedDetector):
    """The scripted detector, without landmarks before frame ``until`` (faces that give no shot)."""

    def __init__(self, script: dict[int, list[Box]], until: int) -> None:
        super().__init__(script)
        self.until = until

    def detect(self, image: np.ndarray) -> list[Detection]:
        index = int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])
        found = super().detect(image)
        return [Detection(d.box, d.score, None) for d in found] if index < self.until else found


def test_a_track_holding_no_shot_does_not_lend_its_first_sighting_to_another_person() -> None:
    """Green is tracked but gives no shot (no landmarks: never embedded), hides, and blue (watchlisted) resumes the
    track: blue's alert says blue was first seen when blue appeared, not when green did (red team 2)."""
    settings = Settings.model_validate({"recognition": {"match_threshold": 0.95, "min_blur_var": 5.0}})
    emb = ColourEmbedder()
    matcher = Matcher(Gallery([GalleryEntry(2, "person-blue", "wl", Category.WANTED, emb.of_colour("blue"))]), 0.95)
    script = {i: [("green", SPOT)] for i in range(4)} | {i: [("blue", SPOT)] for i in range(6, 12)}
    det = NoLandmarksBefore({i: [b for _, b in script.get(i, [])] for i in range(13)}, until=6)
    alerts: list = []
    updates: list = []
    pipe = CameraPipeline(settings, det, emb, matcher, alerts.append, updates.append)
    for i in range(13):
        pipe.process(paint_frame(i, script.get(i, []), fps=FPS))
    pipe.finish()
    assert [a.subject for a in alerts] == ["person-blue"]
    assert alerts[0].first_seen == pytest.approx(6 / FPS, abs=1e-3)
    assert [u.last_seen for u in updates] == [pytest.approx(11 / FPS, abs=1e-3)]
    assert pipe.stats.splits == 0 and len(pipe.fusion) == 0


def test_another_person_stepping_into_an_alerted_face_between_two_frames_is_recognised() -> None:
    """Red is alerted; between two analysed frames red steps away and blue (watchlisted) steps into the same spot:
    no miss, same size, full overlap, so nothing is resumed. An alerted track's face is checked again every
    ``decide_every_seconds``: blue is alerted as blue within that time, and red's alert is not extended with blue's
    sightings (red team 2)."""
    script = {i: [("red", SPOT)] for i in range(6)} | {i: [("blue", SPOT)] for i in range(6, 12)}
    pipe, alerts, updates = run(script, 13)
    assert [a.subject for a in alerts] == ["person-red", "person-blue"]
    red, blue = alerts
    every = pipe.settings.recognition.decide_every_seconds
    assert blue.first_seen <= 6 / FPS + every + 1e-3
    last = {u.event_id: u.last_seen for u in updates}
    assert last[red.event_id] < blue.first_seen and last[blue.event_id] == pytest.approx(11 / FPS, abs=1e-3)
    assert pipe.stats.splits == 1 and len(pipe.fusion) == 0


def test_an_alerted_face_checked_again_and_the_same_keeps_one_alert() -> None:
    """Red stays in view for 2 s: the periodic checks find red each time; one track, one alert."""
    pipe, alerts, updates = run({i: [("red", SPOT)] for i in range(12)}, 13)
    assert [a.subject for a in alerts] == ["person-red"]
    assert [u.last_seen for u in updates] == [pytest.approx(11 / FPS, abs=1e-3)]
    assert pipe.stats.splits == 0 and pipe.stats.resumes_checked >= 3


@pytest.mark.parametrize("seen", [2, 4])
def test_a_watchlisted_person_stepping_into_a_strangers_face_is_not_hidden_by_its_shots(seen: int) -> None:
    """Green (not watchlisted, shots held, no alert) is replaced at the very spot by blue between two analysed frames
    (no miss, same size: nothing resumed). Blue's first shot is clearly another person than green's template: the
    track splits there, so blue's shots are not fused with green's and blue is alerted (red team 2)."""
    script = {i: [("green", SPOT)] for i in range(seen)} | {i: [("blue", SPOT)] for i in range(seen, seen + 8)}
    pipe, alerts, updates = run(script, seen + 9)
    assert [a.subject for a in alerts] == ["person-blue"]
    assert alerts[0].first_seen == pytest.approx(seen / FPS, abs=1e-3)
    assert [u.last_seen for u in updates] == [pytest.approx((seen + 7) / FPS, abs=1e-3)]
    assert pipe.stats.splits == 1 and pipe.stats.tracks == 2 and len(pipe.fusion) == 0 and pipe.quiescent
