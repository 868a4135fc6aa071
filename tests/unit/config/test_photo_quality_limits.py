"""The quality limits of still photos come from the configuration (``photos.min_face_px``, ``min_blur_var``,
``max_yaw_ratio``; defaults chosen by bench/quality_bins.py) and are what enrolment applies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from metrosight.config.model import Settings
from metrosight.core.types import Box
from metrosight.recognize.photo import PhotoRefused, enrolment_face
from tests.unit.fakes import ColourEmbedder, ScriptedDetector, paint_frame

BENCH = Path(__file__).resolve().parents[3] / "bench" / "results" / "quality_bins.json"


def test_defaults_are_the_measured_limits():
    p = Settings().photos
    assert (p.min_face_px, p.min_blur_var, p.max_yaw_ratio) == (28, 10.0, 0.45)
    if BENCH.is_file():  # when the bench has been run here, the defaults are still what it chose
        lim = json.loads(BENCH.read_text())["limits"]
        assert (lim["height_px"], lim["blur_var"], lim["yaw_ratio"]) == (28, 10, 0.45)


@pytest.mark.parametrize(
    ("key", "value"), [("min_face_px", 4), ("min_blur_var", -1), ("max_yaw_ratio", 0), ("max_yaw_ratio", 3)]
)
def test_impossible_limits_are_refused_by_name(key, value):
    with pytest.raises(ValidationError, match=key):
        Settings.model_validate({"photos": {key: value}})


def _enrol(height: float, settings: Settings):  # type: ignore[no-untyped-def]
    b = Box(300 - 0.4 * height, 240 - height / 2, 300 + 0.4 * height, 240 + height / 2)
    img = paint_frame(11, [("red", b)], size=(480, 640)).image
    p = settings.photos
    return enrolment_face(
        img, ScriptedDetector({11: [b]}), ColourEmbedder(), p.min_face_px, p.min_blur_var, None, p.max_yaw_ratio
    )


def test_a_30_px_face_is_enrolled_by_default_and_refused_under_a_stricter_configured_limit():
    sharp = {"min_blur_var": 0.0}  # the painted test face is flat; sharpness is not what is tested here
    default = Settings.model_validate({"photos": sharp})
    assert _enrol(30, default).detection.box.height == pytest.approx(30)  # 36 px was the hand-set limit
    strict = Settings.model_validate({"photos": {**sharp, "min_face_px": 40}})
    with pytest.raises(PhotoRefused, match=r"face too small \(30 px high, need at least 40 px\)"):
        _enrol(30, strict)
    with pytest.raises(PhotoRefused, match="face too small"):
        _enrol(24, default)


def test_enrolment_uses_the_photo_limits_not_the_video_ones(monkeypatch, tmp_path):
    from metrosight.config.home import Home
    from metrosight.services import enrolment as rt_mod
    from metrosight.services.installation import Installation
    from metrosight.services.models import Models
    from metrosight.services.suite import Services

    seen = {}

    def spy(
        image, detector, embedder, min_face_px, min_blur_var, face=None, max_yaw_ratio=None, scale=1.0, jitter=None
    ):  # type: ignore[no-untyped-def]
        seen.update(px=min_face_px, blur=min_blur_var, yaw=max_yaw_ratio, face=face, jitter=jitter)
        raise PhotoRefused("no face found")

    monkeypatch.setattr(rt_mod, "enrolment_face", spy)
    s = Settings.model_validate(
        {
            "photos": {"min_face_px": 33, "min_blur_var": 7.5, "max_yaw_ratio": 0.3, "jitter": False},
            "detection": {"min_face_px": 50},
            "recognition": {"min_blur_var": 30},
        }
    )
    inst = Installation.open(Home(tmp_path / "home"), s)
    rt = Services.of(inst, Models(s, inst.home.cache, ScriptedDetector({}), ColourEmbedder()))
    from metrosight.ingest.images import Photo

    monkeypatch.setattr(rt.store.watchlists, "category", lambda name, view=None: "wanted")
    monkeypatch.setattr(rt_mod, "require", lambda *a, **k: None)
    import numpy as np

    photo = Photo(np.zeros((64, 64, 3), np.uint8), "0" * 64, "p.png", "p.png", "PNG", (64, 64))
    from metrosight.policy.rules import Actor

    res = rt.enrolment.enroll("wl", [("Some One", photo)], actor=Actor("ada", frozenset({"approver"})), face=2)
    assert res[0].status == "refused" and seen == {"px": 33, "blur": 7.5, "yaw": 0.3, "face": 2, "jitter": False}
