"""Red team: an alert's face crop shows the matched person only — a bystander's face in the crop is blurred, also
when detection regions (or motion gating) kept the detector from searching where the bystander stands."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from metrosight.config.model import Settings
from metrosight.core.types import Box, Category
from metrosight.pipeline.camera import CameraPipeline
from metrosight.recognize.gallery import Gallery, GalleryEntry, Matcher
from tests.unit.fakes import ColourEmbedder
from tests.unit.pipeline.test_camera_gating import ColourPatchDetector, frame

RED = Box(220, 150, 310, 250)  # the watchlisted person, inside the left-half region
GREEN = Box(322, 150, 412, 250)  # a bystander just right of it: outside the region, inside red's context crop


def _alert_crop(regions: list | None, gating: bool) -> np.ndarray:
    settings = Settings.model_validate(
        {
            "recognition": {"match_threshold": 0.95, "min_blur_var": 5.0},
            "detection": {"gating": {"enabled": gating}},
            "cameras": [{"id": "cam-1", "source": "a.mp4", "detection": {"regions": regions}}],
        }
    )
    emb = ColourEmbedder()
    gallery = Gallery([GalleryEntry(1, "person-red", "wl", Category.WANTED, emb.of_colour("red"))])
    alerts: list = []
    pipe = CameraPipeline(settings, ColourPatchDetector(), emb, Matcher(gallery, 0.95), alerts.append, lambda u: None)
    for i in range(12):
        pipe.process(frame(i, [("red", RED), ("green", GREEN)]))
    pipe.finish()
    assert [a.subject for a in alerts] == ["person-red"] and alerts[0].crop_jpeg
    return cv2.imdecode(np.frombuffer(alerts[0].crop_jpeg, np.uint8), cv2.IMREAD_COLOR)


def _bystander_texture(crop: np.ndarray) -> float:
    """Pixel-to-pixel noise where the bystander's face is in red's crop (the crop starts 0.6 face sizes left of and
    above red's face): mean absolute difference of neighbouring pixels; a blurred face has next to none."""
    x0, y0 = int(RED.x1 - 0.6 * RED.width), int(RED.y1 - 0.6 * RED.height)
    patch = crop[int(GREEN.y1) - y0 + 10 : int(GREEN.y2) - y0 - 30, int(GREEN.x1) - x0 + 4 : crop.shape[1] - 4, 1]
    assert patch.size > 500
    return float(np.abs(np.diff(patch.astype(np.float32), axis=1)).mean())


def test_without_regions_the_bystander_is_blurred() -> None:
    assert _bystander_texture(_alert_crop(None, gating=False)) < 3.0


@pytest.mark.parametrize("gating", [False, True])
def test_a_bystander_outside_the_regions_is_blurred_in_the_alert_crop(gating: bool) -> None:
    assert _bystander_texture(_alert_crop([[0.0, 0.0, 0.5, 1.0]], gating)) < 3.0
