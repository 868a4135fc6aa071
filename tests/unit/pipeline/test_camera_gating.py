"""The camera pipeline with motion gating and detection regions (fake models, real gate): who is alerted, and
when the detector runs at all."""

from __future__ import annotations

import numpy as np

from metrosight.config.model import Settings
from metrosight.core.types import Box, Category, Detection, Frame
from metrosight.pipeline.camera import CameraPipeline
from metrosight.recognize.gallery import Gallery, GalleryEntry, Matcher
from tests.unit.detect.test_motion import scene
from tests.unit.fakes import COLOURS, ColourEmbedder, landmarks_for


class ColourPatchDetector:
    """Finds the strongly coloured patches (people of :data:`COLOURS`) in whatever image it is given: a whole
    frame or a crop of it. Counts its calls and the pixels it was given."""

    name = "colour-patch"
    scales_input = False

    def __init__(self) -> None:
        self.calls = 0
        self.pixels = 0

    def detect(self, image: np.ndarray) -> list[Detection]:
        import cv2

        self.calls += 1
        self.pixels += image.shape[0] * image.shape[1]
        im = image.astype(np.int16)
        mask = ((im.max(axis=2) - im.min(axis=2)) > 120).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        out = []
        for x, y, w, h, area in stats[1:n].tolist():
            if area >= 200:
                b = Box(float(x), float(y), float(x + w), float(y + h))
                out.append(Detection(b, 1.0, landmarks_for(b)))
        return out


def frame(index: int, people: list[tuple[str, Box]], fps: float = 10.0) -> Frame:
    img = scene(480, 640)
    rng = np.random.default_rng(index)
    for colour, b in people:
        x1, y1, x2, y2 = (int(v) for v in b.as_tuple())
        patch = np.array(COLOURS[colour], dtype=np.int16) + rng.integers(-25, 25, size=(y2 - y1, x2 - x1, 3))
        img[y1:y2, x1:x2] = np.clip(patch, 0, 255).astype(np.uint8)
        my = y1 + int(0.76 * (y2 - y1))
        img[my : my + max(1, (y2 - y1) // 40), x1 + int(0.35 * (x2 - x1)) : x1 + int(0.65 * (x2 - x1))] //= 4
    return Frame(image=img, ts=index / fps, index=index, camera_id="cam-1")


def run(frames: list[Frame], gating: bool, regions: list | None = None, full_every: float = 2.0):
    settings = Settings.model_validate(
        {
            "recognition": {"match_threshold": 0.95, "min_blur_var": 5.0},
            "detection": {"gating": {"enabled": gating, "full_every_seconds": full_every}},
            "cameras": [{"id": "cam-1", "source": "a.mp4", "detection": {"regions": regions}}],
        }
    )
    emb = ColourEmbedder()
    gallery = Gallery([GalleryEntry(1, "person-red", "wl", Category.WANTED, emb.of_colour("red"))])
    det = ColourPatchDetector()
    alerts: list = []
    pipe = CameraPipeline(settings, det, emb, Matcher(gallery, 0.95), alerts.append, lambda u: None, run_id=1)
    for f in frames:
        pipe.process(f)
    pipe.finish()
    return pipe, det, alerts


def walk_in(n: int = 40, start: int = 10) -> list[Frame]:
    """An empty hall; from frame ``start`` a red person walks across."""
    return [
        frame(i, [] if i < start else [("red", Box(100 + 6 * (i - start), 150, 190 + 6 * (i - start), 250))])
        for i in range(n)
    ]


def test_an_empty_still_scene_is_searched_once():
    frames = [frame(i, []) for i in range(30)]
    pipe, det, alerts = run(frames, gating=True, full_every=60.0)
    assert det.calls == 1 and alerts == []
    assert pipe.stats.gated == 29 and pipe.stats.detect_pixels == 640 * 480
    assert pipe.stats.frame_pixels == 30 * 640 * 480
    off_pipe, off_det, _ = run(frames, gating=False)
    assert off_det.calls == 30 and off_pipe.stats.gated == 0  # today: every frame, whole


def test_the_safety_refresh_searches_the_whole_frame_every_full_every_seconds():
    _, det, _ = run([frame(i, []) for i in range(30)], gating=True, full_every=1.0)
    assert det.calls == 3  # frames 0, 10 and 20 (media time 0, 1 and 2 s)
    assert det.pixels == 3 * 640 * 480


def test_a_person_walking_in_is_alerted_as_without_gating_searching_less():
    frames = walk_in()
    pipe, det, alerts = run(frames, gating=True)
    off_pipe, off_det, off_alerts = run(frames, gating=False)
    assert [a.subject for a in alerts] == [a.subject for a in off_alerts] == ["person-red"]
    assert alerts[0].first_seen == off_alerts[0].first_seen
    assert pipe.stats.tracks == off_pipe.stats.tracks == 1 and pipe.stats.faces == off_pipe.stats.faces
    assert det.pixels < 0.5 * off_det.pixels  # while the person walks, only around them
    assert pipe.stats.gated >= 8  # the empty hall before they came


def test_a_person_standing_still_keeps_their_track():
    frames = [frame(i, [("red", Box(300, 150, 390, 250))]) for i in range(60)]
    pipe, det, alerts = run(frames, gating=True)
    assert pipe.stats.tracks == 1 and len(alerts) == 1 and pipe.stats.faces == 60
    assert det.pixels < 0.4 * 60 * 640 * 480  # around the face, whole frames only at the refreshes


def test_a_region_that_excludes_the_person_raises_no_alert():
    frames = walk_in()
    for gating in (True, False):
        pipe, det, alerts = run(frames, gating=gating, regions=[[0.6, 0.0, 1.0, 1.0]])
        assert alerts == [] and pipe.stats.faces == 0, gating
    pipe, _, alerts = run(frames, gating=True, regions=[[0.0, 0.2, 0.6, 0.7]])  # where they walk
    assert [a.subject for a in alerts] == ["person-red"]


def test_a_face_cut_by_a_region_edge_is_tracked_but_never_a_best_shot():
    # the person stands across the region's right edge (x = 0.5 of 640 = 320)
    frames = [frame(i, [("red", Box(280, 150, 370, 250))]) for i in range(30)]
    pipe, _, alerts = run(frames, gating=False, regions=[[0.0, 0.0, 0.5, 1.0]])
    assert pipe.stats.faces == 30 and pipe.stats.tracks == 1
    assert alerts == [] and pipe.stats.embedded == 0
    pipe, _, alerts = run(frames, gating=False, regions=[[0.0, 0.0, 0.7, 1.0]])  # whole inside: alerted
    assert len(alerts) == 1


def test_a_reconnect_forces_a_full_detection():
    frames = [frame(i, []) for i in range(10)]
    pipe, det, _ = run(frames, gating=True, full_every=60.0)
    assert det.calls == 1
    pipe.finish()  # what the frame loop calls on a reconnect
    pipe.process(frame(10, []))
    assert det.calls == 2 and pipe.stats.gated == 9


def test_gating_counters_reach_the_node_metrics():
    import time

    from metrosight.bus.payloads import CameraStatsV1
    from metrosight.pipeline.metrics import NodeMetrics

    pipe, _, _ = run([frame(i, []) for i in range(30)], gating=True, full_every=60.0)
    s = pipe.stats
    m = NodeMetrics()
    m.on_stats(
        CameraStatsV1(
            camera_id="cam-1",
            worker=0,
            state="live",
            frames_decoded=30,
            frames_skipped=0,
            frames_dropped=0,
            frames_analysed=s.frames,
            faces=s.faces,
            embedded=s.embedded,
            tracks=s.tracks,
            alerts=s.alerts,
            reconnects=0,
            stalls=0,
            failed_attempts=0,
            frames_gated=s.gated,
            detect_pixels=s.detect_pixels,
            frame_pixels=s.frame_pixels,
            last_frame_wall=time.time(),
            worker_cpu_seconds=1.0,
            wall_time=time.time(),
        )
    )
    text = m.prometheus()
    assert 'metrosight_camera_frames_gated_total{camera="cam-1"} 29' in text
    assert f'metrosight_camera_detect_pixels_total{{camera="cam-1"}} {640 * 480}' in text
    assert f'metrosight_camera_frame_pixels_total{{camera="cam-1"}} {30 * 640 * 480}' in text


def test_cameras_batched_together_with_gating_alert_as_each_alone():
    from metrosight.pipeline.batch import analyse_together

    scenes = {"cam-1": walk_in(), "cam-2": [frame(i, []) for i in range(40)]}  # a walker; an empty hall
    alone = {cid: run(frames, gating=True)[2] for cid, frames in scenes.items()}
    settings = Settings.model_validate(
        {
            "recognition": {"match_threshold": 0.95, "min_blur_var": 5.0},
            "detection": {"gating": {"enabled": True}},
        }
    )
    emb, det = ColourEmbedder(), ColourPatchDetector()
    gallery = Gallery([GalleryEntry(1, "person-red", "wl", Category.WANTED, emb.of_colour("red"))])
    alerts: dict[str, list] = {cid: [] for cid in scenes}
    pipes = {
        cid: CameraPipeline(settings, det, emb, Matcher(gallery, 0.95), alerts[cid].append, lambda u: None)
        for cid in scenes
    }
    for i in range(40):
        analyse_together([(pipes[cid], scenes[cid][i]) for cid in scenes])
    for p in pipes.values():
        p.finish()
    for cid in scenes:
        got = [(a.subject, a.first_seen, a.track_id) for a in alerts[cid]]
        assert got == [(a.subject, a.first_seen, a.track_id) for a in alone[cid]], cid
    assert pipes["cam-2"].stats.gated == 38 and pipes["cam-1"].stats.gated > 0  # refreshed at 0 and 2 s
