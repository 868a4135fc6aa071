"""Real detector and embedder: a watchlisted person who steps into the spot where an alerted person was just hidden
(a pillar, under 0.5 s at 6 analysed frames a second) is recognised as themselves, and the first alert keeps its
own last-seen time; the same person coming back keeps one track and one alert. Faces: LFW fold 1 (one photo of each
person enrolled, another shown to the camera)."""

from __future__ import annotations

import numpy as np
import pytest

from metrosight.config.model import Settings
from metrosight.core.types import Category, Frame
from metrosight.pipeline.camera import CameraPipeline
from metrosight.recognize.align import align
from metrosight.recognize.gallery import Gallery, GalleryEntry, Matcher, l2_normalize
from metrosight.recognize.registry import embedder_for
from metrosight.services.models import make_face_detector
from tests.conftest import require_data

pytestmark = pytest.mark.integration

FPS = 6.0
PEOPLE = {"Akhmed_Zakayev": (1, 3), "Amber_Tamblyn": (1, 2)}  # (photo enrolled, photo shown), genuine pairs of fold 1


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory):
    settings = Settings()
    return make_face_detector(settings), embedder_for(settings, tmp_path_factory.mktemp("models"))


def photo(name: str, n: int) -> np.ndarray:
    from PIL import Image

    path = require_data("lfw", "lfw-deepfunneled", name, f"{name}_{n:04d}.jpg")
    return np.asarray(Image.open(path).convert("RGB"))


def template(models, name: str, n: int) -> np.ndarray:
    det, emb = models
    image = photo(name, n)
    face = max(det.detect(image), key=lambda d: d.box.height)
    return l2_normalize(emb.embed(align(image, face.box, face.landmarks)[None])[0])


def frame(i: int, who: str | None) -> Frame:
    """A 1280×720 grey frame with the shown photo's face and shoulders at one spot (``who`` None: hidden)."""
    image = np.full((720, 1280, 3), 118, np.uint8)
    if who is not None:
        image[260:460, 540:740] = photo(who, PEOPLE[who][1])[25:225, 25:225]
    return Frame(image=image, ts=i / FPS, index=i, camera_id="pillar")


def run(models, first: str, then: str):
    det, emb = models
    settings = Settings()
    gallery = Gallery(
        [
            GalleryEntry(k + 1, name, "wanted", Category.WANTED, template(models, name, PEOPLE[name][0]))
            for k, name in enumerate(PEOPLE)
        ]
    )
    alerts: list = []
    updates: list = []
    matcher = Matcher(gallery, settings.recognition.match_threshold)
    pipe = CameraPipeline(settings, det, emb, matcher, alerts.append, updates.append, event_scope="t")
    frames = [frame(i, first) for i in range(6)] + [frame(i, None) for i in (6, 7)]
    frames += [frame(i, then) for i in range(8, 14)]
    for f in frames:
        pipe.process(f)
    pipe.finish()
    assert pipe.stats.cuts == 0  # the face changing is not a scene cut: the tracker alone decides
    return pipe, alerts, {u.event_id: u.last_seen for u in updates}


def test_another_person_resuming_an_alerted_track_is_recognised(models):
    pipe, alerts, last = run(models, "Akhmed_Zakayev", "Amber_Tamblyn")
    assert [a.subject for a in alerts] == ["Akhmed_Zakayev", "Amber_Tamblyn"]
    first, second = alerts
    assert first.track_id != second.track_id
    assert last[first.event_id] == pytest.approx(5 / FPS, abs=1e-3)  # not extended by the second person
    assert second.first_seen == pytest.approx(8 / FPS, abs=1e-3)
    assert pipe.stats.splits == 1


def test_the_same_person_resuming_keeps_one_track_and_one_alert(models):
    pipe, alerts, last = run(models, "Amber_Tamblyn", "Amber_Tamblyn")
    assert [a.subject for a in alerts] == ["Amber_Tamblyn"]
    assert last[alerts[0].event_id] == pytest.approx(13 / FPS, abs=1e-3)
    assert pipe.stats.splits == 0 and pipe.stats.resumes_checked >= 1
