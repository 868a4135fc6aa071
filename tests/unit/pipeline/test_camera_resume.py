"""Event ids that do not depend on where a run started, and resume points (scale-out failover)."""

from __future__ import annotations

from metrosight.config.model import Settings
from metrosight.core.types import Category
from metrosight.pipeline.camera import CameraPipeline
from metrosight.recognize.gallery import Gallery, GalleryEntry, Matcher
from tests.unit.fakes import ColourEmbedder, ScriptedDetector, paint_frame
from tests.unit.pipeline.test_camera import walk

N = 60
# red walks through twice with a gap (quiescent frames 20-29 and 50-59); blue and red enter together at frame 30
SCRIPT = {
    **walk("red", 0, 20),
    **{i: walk("red", 30, 50)[i] + walk("blue", 30, 50, x0=400)[i] for i in range(30, 50)},
}


def pipeline(scope: str | None, alerts: list, updates: list) -> CameraPipeline:
    settings = Settings.model_validate({"recognition": {"match_threshold": 0.95, "min_blur_var": 5.0}})
    emb = ColourEmbedder()
    gallery = Gallery(
        [
            GalleryEntry(i + 1, f"person-{c}", "wl", Category.WANTED, emb.of_colour(c))
            for i, c in enumerate(("red", "blue"))
        ]
    )
    det = ScriptedDetector({i: [b for _, b in SCRIPT.get(i, [])] for i in range(N)})
    return CameraPipeline(settings, det, emb, Matcher(gallery, 0.95), alerts.append, updates.append, event_scope=scope)


def run(scope: str | None, start: int = 0, stop: int = N) -> tuple[list, list, list[int]]:
    alerts: list = []
    updates: list = []
    pipe = pipeline(scope, alerts, updates)
    quiet = []
    for i in range(start, stop):
        pipe.process(paint_frame(i, SCRIPT.get(i, [])))
        if pipe.quiescent:
            quiet.append(i)
    if stop == N:
        pipe.finish()
    return alerts, updates, quiet


def test_event_ids_are_camera_scope_and_birth_frame():
    alerts, _, _ = run("scope1")
    assert sorted(a.event_id for a in alerts) == [
        "cam-test:scope1:0.0",
        "cam-test:scope1:30.0",
        "cam-test:scope1:30.1",
    ]
    assert len({a.event_id for a in alerts}) == 3


def test_default_scope_is_fresh_per_run():
    a1, _, _ = run(None)
    a2, _, _ = run(None)
    assert not {a.event_id for a in a1} & {a.event_id for a in a2}


def test_quiescent_only_when_no_track_lives():
    _, _, quiet = run("s")
    assert 25 in quiet and 55 in quiet
    assert not set(range(20)) & set(quiet) and not set(range(30, 50)) & set(quiet)


def test_resuming_after_a_quiescent_frame_gives_the_same_alerts_and_updates():
    full_alerts, full_updates, quiet = run("s")
    resume_from = max(q for q in quiet if q < 30)  # the last resume point before the second walk
    head_alerts, head_updates, _ = run("s", 0, 40)  # a worker dies at frame 40, mid-track
    tail_alerts, tail_updates, _ = run("s", resume_from + 1)  # another resumes after the checkpoint
    stored = {a.event_id: a for a in head_alerts + tail_alerts}  # the store keeps one per event id
    assert sorted(stored) == sorted(a.event_id for a in full_alerts)
    for a in full_alerts:
        b = stored[a.event_id]
        assert (b.subject, b.first_seen, b.track_id >= 1) == (a.subject, a.first_seen, True)
    last = {u.event_id: u.last_seen for u in head_updates + tail_updates}
    assert last == {u.event_id: u.last_seen for u in full_updates}
