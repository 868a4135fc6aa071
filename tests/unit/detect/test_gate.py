"""The detection gate: which areas of each frame the face detector searches."""

from __future__ import annotations

from metrosight.config.detection import GatingConfig
from metrosight.config.model import Settings
from metrosight.core.types import Box
from metrosight.detect.gate import DetectionGate, gate_for
from tests.unit.detect.test_motion import scene, with_blob

CFG = GatingConfig(enabled=True, full_every_seconds=2.0)


def test_without_gating_or_regions_the_whole_frame_is_searched_as_today():
    gate = DetectionGate(CFG, enabled=False)
    for i in range(5):
        plan = gate.plan(scene(), i / 10, [], cut=False)
        assert plan.areas is None and plan.full and plan.share == 1.0
    assert gate.motion is None  # no motion detector runs at all


def test_regions_alone_are_searched_every_frame():
    gate = DetectionGate(CFG, enabled=False, regions=[(0.0, 0.5, 0.5, 1.0), (0.75, 0.0, 1.0, 0.25)])
    plan = gate.plan(scene(), 0.0, [], cut=False)
    assert plan.areas == (Box(0, 180, 320, 360), Box(480, 0, 640, 90))
    assert plan.full and abs(plan.share - 0.3125) < 1e-9


def test_still_frames_are_gated_after_the_first_full_detection_until_the_refresh():
    gate = DetectionGate(CFG, enabled=True)
    bg = scene()
    plans = [gate.plan(bg, i / 10, [], cut=False) for i in range(25)]
    assert plans[0].full and plans[0].reason == "first" and plans[0].areas is None
    assert all(p.areas == () and p.reason == "idle" and p.share == 0.0 for p in plans[1:20])
    assert plans[20].full and plans[20].reason == "refresh"  # 2 s after the first
    assert all(p.areas == () for p in plans[21:])


def test_a_moving_blob_is_searched_padded_and_live_tracks_are_searched_around_their_prediction():
    gate = DetectionGate(CFG, enabled=True)
    bg = scene()
    gate.plan(bg, 0.0, [], cut=False)
    plan = gate.plan(with_blob(bg, 300, 150), 0.1, [], cut=False)
    assert plan.reason == "motion" and len(plan.areas or ()) == 1
    a = (plan.areas or ())[0]
    assert a.x1 < 300 and a.y1 < 150 and a.x2 > 360 and a.y2 > 210 and 0 < plan.share < 0.2
    still = gate.plan(bg, 0.2, [Box(50, 50, 80, 90)], cut=False)  # nothing moves, one face tracked
    assert still.reason == "motion" and len(still.areas or ()) == 1
    t = (still.areas or ())[0]
    assert t.x1 <= 20 and t.y1 <= 10 and t.x2 >= 110 and t.y2 >= 130


def test_a_cut_or_a_reset_forces_a_full_detection():
    gate = DetectionGate(CFG, enabled=True)
    bg = scene()
    gate.plan(bg, 0.0, [], cut=False)
    assert gate.plan(bg, 0.1, [], cut=False).areas == ()
    assert gate.plan(bg, 0.2, [], cut=True).reason == "cut"
    assert gate.plan(bg, 0.3, [], cut=False).areas == ()
    gate.reset()  # a reconnect
    assert gate.plan(bg, 0.4, [], cut=False).reason == "first"


def test_motion_is_searched_only_inside_the_regions():
    gate = DetectionGate(CFG, enabled=True, regions=[(0.5, 0.0, 1.0, 1.0)])
    bg = scene()
    first = gate.plan(bg, 0.0, [], cut=False)
    assert first.areas == (Box(320, 0, 640, 360),)
    assert gate.plan(with_blob(bg, 40, 150), 0.1, [], cut=False).areas == ()  # outside the region: nothing
    plan = gate.plan(with_blob(bg, 300, 150), 0.2, [], cut=False)  # across the region's left edge
    assert plan.areas and all(a.x1 >= 320 for a in plan.areas)


def test_motion_over_most_of_the_frame_is_searched_as_one():
    gate = DetectionGate(CFG, enabled=True)
    bg = scene()
    gate.plan(bg, 0.0, [], cut=False)
    frame = bg.copy()
    frame[:, :300] = 255 - frame[:, :300]  # nearly half the picture changes at once
    plan = gate.plan(frame, 0.1, [], cut=False)
    assert plan.full and plan.reason in ("wide", "global")


def test_a_camera_takes_its_regions_and_switch_from_the_configuration():
    settings = Settings.model_validate(
        {
            "detection": {"gating": {"enabled": True}},
            "cameras": [
                {"id": "Platform 1", "source": "a.mp4", "detection": {"regions": [[0, 0, 0.5, 0.5]]}},
                {"id": "gate", "source": "b.mp4", "detection": {"gating": False}},
            ],
        }
    )
    one = gate_for(settings, "platform 1")  # camera ids as the identifier rule compares them
    assert one.enabled and one.regions == ((0.0, 0.0, 0.5, 0.5),)
    assert not gate_for(settings, "gate").enabled
    other = gate_for(settings, "not-configured")
    assert other.enabled and other.regions is None
    assert not gate_for(Settings(), "cam").enabled  # off by default


def test_areas_covering_most_of_the_frame_are_searched_as_one():
    gate = DetectionGate(CFG, enabled=True)
    bg = scene()
    gate.plan(bg, 0.0, [], cut=False)
    tracked = [Box(0, 0, 200, 300), Box(400, 0, 600, 300)]  # big faces, padded by their size: most of the frame
    plan = gate.plan(bg, 0.1, tracked, cut=False)
    assert plan.full and plan.reason == "wide" and plan.areas is None


def test_media_time_going_back_forces_a_full_detection():
    gate = DetectionGate(CFG, enabled=True)
    bg = scene()
    gate.plan(bg, 10.0, [], cut=False)
    assert gate.plan(bg, 10.1, [], cut=False).areas == ()
    assert gate.plan(bg, 0.2, [], cut=False).reason == "refresh"  # a stream that restarted its clock
    assert gate.plan(bg, 0.3, [], cut=False).areas == ()
