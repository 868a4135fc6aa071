"""``metrosight run --camera ID`` analyses at the configured camera's own ``analysis_fps``, as a node does — the
calibration of the capacity figures runs a camera's settings this way (``bench/node.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.pipeline.runtime import Runtime

pytestmark = [pytest.mark.integration]

CLIP = Path(__file__).resolve().parents[2] / "src" / "metrosight" / "sample" / "short_hamilton_clip.mp4"  # 9.2 s


def test_a_configured_cameras_own_rate_replaces_the_ingest_rate(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"ingest": {"analysis_fps": 10.0}, "cameras": [{"id": "platform-2", "source": str(CLIP), "analysis_fps": 1.0}]}
    )
    rt = Runtime.open(Home(tmp_path / "home"), settings)
    own = rt.run(str(CLIP), "platform-2")
    other = rt.run(str(CLIP), "unconfigured")
    assert own.status == "finished" and other.status == "finished"
    assert 9 <= own.stats.frames <= 11  # one frame a second of 9.2 s
    assert 90 <= other.stats.frames <= 95  # ingest.analysis_fps for a camera without its own rate
