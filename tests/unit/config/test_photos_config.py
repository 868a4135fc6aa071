"""The photo budget keys: validated by `config check`, overridable from the environment, used by the loader."""

from pathlib import Path

import pytest

from metrosight.config import ConfigError, load_settings
from metrosight.ingest.images import PhotoLimits


def test_defaults_give_a_50_mp_budget():
    limits = PhotoLimits.of(load_settings(None, environ={}).photos)
    assert limits == PhotoLimits(max_pixels=50_000_000, max_side=4096, max_bytes=40_000_000)


@pytest.mark.parametrize("text", ["max_megapixels: 0", "max_megapixels: 500", "max_side: 10", "max_megapixels: many"])
def test_bad_budget_is_named(tmp_path: Path, text: str):
    p = tmp_path / "c.yaml"
    p.write_text(f"photos:\n  {text}\n")
    with pytest.raises(ConfigError, match=r"photos\." + text.split(":")[0]):
        load_settings(p, environ={})


def test_budget_from_file_and_environment(tmp_path: Path):
    p = tmp_path / "c.yaml"
    p.write_text("photos:\n  max_megapixels: 12\n")
    assert PhotoLimits.of(load_settings(p, environ={}).photos).max_pixels == 12_000_000
    env = {"METROSIGHT__PHOTOS__MAX_MEGAPIXELS": "2.5"}
    assert PhotoLimits.of(load_settings(p, environ=env).photos).max_pixels == 2_500_000
