"""The two operating points of the capacity figures: ``today`` turns every speed-up off, ``tuned`` is the defaults;
both at the reference load."""

from __future__ import annotations

from typing import Any

import pytest

from metrosight.config.model import CameraConfig, Settings
from metrosight.config.operating_points import (
    POINTS,
    PROFILES,
    REFERENCE_LOAD,
    SWITCHES,
    camera_overrides,
    lookup,
    overrides,
)


def _camera(point: Any, profile: str) -> CameraConfig:
    return CameraConfig.model_validate({"id": "cam", "source": "rtsp://cam/x", **camera_overrides(point, profile)})


def _leaves(model: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        path = f"{prefix}{name}"
        if hasattr(type(value), "model_fields"):
            out.update(_leaves(value, path + "."))
        else:
            out[path] = value
    return out


def test_today_turns_every_switch_off_in_the_settings_and_in_each_camera() -> None:
    today = Settings.model_validate(overrides("today"))
    for s in SWITCHES:
        if s.path.startswith("cameras."):
            for profile in PROFILES:
                assert lookup(_camera("today", profile), s.path.removeprefix("cameras.")) == s.today, (s, profile)
        else:
            assert lookup(today, s.path) == s.today, s


def test_today_differs_from_tuned_only_in_the_switches() -> None:
    today, tuned = (_leaves(Settings.model_validate(overrides(p))) for p in POINTS)
    differ = {k for k in today if today[k] != tuned[k]}
    assert differ <= {s.path for s in SWITCHES}


def test_tuned_is_the_defaults_at_the_reference_load() -> None:
    tuned = _leaves(Settings.model_validate(overrides("tuned")))
    default = _leaves(Settings())
    load = {f"{section}.{key}": v for section, values in REFERENCE_LOAD.items() for key, v in values.items()}
    assert {k for k in tuned if tuned[k] != default[k]} <= set(load)
    for k, v in load.items():
        assert tuned[k] == v  # every usable face embedded: the reference load, on both points
        assert _leaves(Settings.model_validate(overrides("today")))[k] == v


def test_a_base_configuration_is_kept_and_not_changed() -> None:
    base = {"ingest": {"open_timeout_seconds": 3.0}, "recognition": {"max_samples": 5}}
    s = Settings.model_validate(overrides("today", base))
    assert s.ingest.open_timeout_seconds == 3.0 and s.recognition.max_samples == 32
    assert base["recognition"]["max_samples"] == 5


def test_each_profile_gives_valid_camera_settings_with_todays_rate_on_today() -> None:
    for name, prof in PROFILES.items():
        assert _camera("today", name).analysis_fps == prof.today_fps
        tuned = _camera("tuned", name)
        assert tuned.analysis_fps is not None and tuned.analysis_fps <= prof.today_fps
    with pytest.raises(KeyError):
        camera_overrides("fast", "hd")  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        camera_overrides("today", "4k")


def _settings(point: Any, profile: str) -> Settings:
    cam = {"id": "cam", "source": "rtsp://cam/x", **camera_overrides(point, profile)}
    return Settings.model_validate({**overrides(point), "cameras": [cam]})


def test_today_builds_todays_pipeline_parts_and_tuned_the_new_ones() -> None:
    from metrosight.detect.gate import gate_for
    from metrosight.track.faces import make_cut_detector, make_face_tracker
    from metrosight.track.iou import IouTracker

    for profile in PROFILES:
        today, tuned = _settings("today", profile), _settings("tuned", profile)
        assert isinstance(make_face_tracker(today.tracking), IouTracker)  # overlap-only, as before issue 20
        assert not isinstance(make_face_tracker(tuned.tracking), IouTracker)
        assert make_cut_detector(today.tracking).per_second == 0.0
        gate = gate_for(today, "cam")
        assert not gate.enabled and gate.regions is None  # every analysed frame searched whole
        assert gate_for(tuned, "cam").enabled
        assert today.ingest.decode.skip == "off" and today.ingest.decode.threads == 0
        assert not today.inference.batch_cameras and tuned.inference.batch_cameras
