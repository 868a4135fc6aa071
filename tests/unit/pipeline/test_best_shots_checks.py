"""A video track's best shots pass the enrolment photo's checks: faces cut by the frame's edge or covered over the
mouth are never embedded nor kept (the camera pipeline calls the same quality function)."""

from __future__ import annotations

from metrosight.config.model import Settings
from metrosight.core.types import Box, Category
from metrosight.pipeline.camera import CameraPipeline
from metrosight.recognize.gallery import Gallery, GalleryEntry, Matcher
from tests.unit.fakes import ColourEmbedder, ScriptedDetector, paint_frame


def run(box: Box, n: int = 20, cover: bool = False):  # type: ignore[no-untyped-def]
    settings = Settings.model_validate({"recognition": {"match_threshold": 0.95, "min_blur_var": 5.0}})
    emb = ColourEmbedder()
    gallery = Gallery([GalleryEntry(1, "person-red", "wl", Category.WANTED, emb.of_colour("red"))])
    det = ScriptedDetector({i: [box] for i in range(n)})
    alerts: list = []
    pipe = CameraPipeline(settings, det, emb, Matcher(gallery, 0.95), alerts.append, lambda _u: None, run_id=1)
    for i in range(n):
        frame = paint_frame(i, [("red", box)])
        if cover:  # a white mask over the lower half of the face
            x1, y1, x2, y2 = (int(v) for v in box.as_tuple())
            frame.image[y1 + (y2 - y1) // 2 : y2, x1:x2] = 235
        pipe.process(frame)
    pipe.finish()
    return alerts, emb


def test_a_whole_bare_face_is_embedded_and_alerted():
    alerts, emb = run(Box(200, 100, 290, 200))
    assert emb.faces > 0 and [a.subject for a in alerts] == ["person-red"]


def test_a_face_cut_by_the_frames_edge_is_never_a_best_shot():
    alerts, emb = run(Box(0, 100, 40, 200))  # half a face at the left edge
    assert emb.faces == 0 and alerts == []
    alerts, emb = run(Box(200, 0, 290, 60))  # the top of the frame cuts through the eyes
    assert emb.faces == 0 and alerts == []


def test_a_covered_face_is_never_a_best_shot():
    alerts, emb = run(Box(200, 100, 290, 200), cover=True)
    assert emb.faces == 0 and alerts == []
