"""Batching across a worker's cameras: one detector call and one embedder call per round, the same alerts per
camera as one camera at a time."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from metrosight.config.model import Settings
from metrosight.core.types import Box, Category, Detection, Frame
from metrosight.ingest.live import Captured
from metrosight.pipeline.camera import CameraPipeline, CameraStats
from metrosight.pipeline.loop import FrameLoop, IteratorFeed, LoopCamera
from metrosight.pipeline.outbox import CameraOutputs
from metrosight.pipeline.processor import FaceComposite
from metrosight.recognize.gallery import Gallery, GalleryEntry, Matcher
from tests.unit.fakes import ColourEmbedder, landmarks_for, paint_frame

People = dict[int, list[tuple[str, Box]]]


def walk(colour: str, start: int, stop: int, x0: float, y0: float = 100, step: float = 4) -> People:
    return {
        i: [(colour, Box(x0 + step * (i - start), y0, x0 + step * (i - start) + 90, y0 + 90))]
        for i in range(start, stop)
    }


def merge(*scripts: People) -> People:
    out: People = {}
    for s in scripts:
        for i, row in s.items():
            out[i] = out.get(i, []) + row
    return out


SCRIPTS: list[People] = [
    walk("red", 0, 20, 20),  # cam0: red, once
    merge(walk("blue", 3, 25, 300), walk("green", 0, 12, 40, 250)),  # cam1: blue and a stranger
    merge(walk("red", 5, 12, 200), walk("red", 18, 28, 200)),  # cam2: red twice (two tracks, two alerts)
]
FRAMES = 30


class TaggedDetector:
    """One detector shared by the cameras: reads the camera (pixel (0, 1)) and frame index (pixel (0, 0)) from the
    image and returns that camera's scripted boxes; records the size of each batched call."""

    name = "tagged"
    scales_input = False

    def __init__(self, scripts: list[People]) -> None:
        self.scripts = scripts
        self.single_calls = 0
        self.batches: list[int] = []

    def _faces(self, image: np.ndarray) -> list[Detection]:
        index = int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])
        cam = int(image[0, 1, 0])
        return [Detection(b, 1.0, landmarks_for(b)) for _, b in self.scripts[cam].get(index, [])]

    def detect(self, image: np.ndarray) -> list[Detection]:
        self.single_calls += 1
        return self._faces(image)

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        self.batches.append(len(images))
        return [self._faces(im) for im in images]


class Outbox:
    """One camera's outputs as a list (alerts without their decode time, which is the wall clock)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, object]] = []

    def alert(self, a: object, frame_wall: float | None) -> None:
        self.items.append(("alert", a.model_dump()))  # type: ignore[attr-defined]

    def alert_update(self, u: object) -> None:
        self.items.append(("update", u.model_dump()))  # type: ignore[attr-defined]

    def event(self, e: object) -> None:
        self.items.append(("event", e))

    def event_update(self, u: object) -> None:
        self.items.append(("event_update", u))

    def state(self, s: object) -> None:
        self.items.append(("state", s))

    def stats(self, s: object) -> None:
        pass

    def snapshot(self, s: object) -> None:
        pass


class Host:
    def __init__(self) -> None:
        self.after: list[tuple[str, int]] = []

    def between_rounds(self) -> bool:
        return True

    def after_frame(self, cam: LoopCamera, cap: Captured) -> None:
        self.after.append((cam.camera_id, cap.frame.index))

    def ended(self, cam: LoopCamera) -> None:
        pass

    def idle(self) -> None:
        pass


class Behaviour:
    """A second processor of a composite: records the frames it is given."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def process(self, f: Frame) -> None:
        self.log.append(f"behaviour {f.camera_id} {f.index}")

    def finish(self) -> None:
        pass

    @property
    def camera_stats(self) -> CameraStats:
        return CameraStats()

    @property
    def quiescent(self) -> bool:
        return True

    @property
    def last_boxes(self) -> list[Box]:
        return []

    @property
    def gallery_size(self) -> int:
        return 0


def frames_of(cam: int) -> list[Frame]:
    out = []
    for i in range(FRAMES):
        f = paint_frame(i, SCRIPTS[cam].get(i, []))
        f.image[0, 1] = (cam, 0, 0)
        out.append(Frame(image=f.image, ts=f.ts, index=i, camera_id=f"cam{cam}"))
    return out


def run_cameras(batch: bool, behaviour_log: list[str] | None = None):
    settings = Settings.model_validate({"recognition": {"match_threshold": 0.95, "min_blur_var": 5.0}})
    emb = ColourEmbedder()
    gallery = Gallery(
        [
            GalleryEntry(i + 1, f"person-{c}", "wl", Category.WANTED, emb.of_colour(c))
            for i, c in enumerate(("red", "blue"))
        ]
    )
    det = TaggedDetector(SCRIPTS)
    host = Host()
    loop = FrameLoop(host, batch=batch)
    boxes = []
    for n in range(len(SCRIPTS)):
        box = Outbox()
        outputs = CameraOutputs(box)
        pipe = CameraPipeline(
            settings,
            det,
            emb,
            Matcher(gallery, 0.95),
            outputs.alert,
            outputs.alert_update,
            run_id=n,
            event_scope=f"s{n}",
            clock=lambda: 1000.0,
        )
        proc = pipe if behaviour_log is None or n != 1 else FaceComposite(pipe, Behaviour(behaviour_log))
        frames = frames_of(n)
        loop.add(LoopCamera(f"cam{n}", n, IteratorFeed(lambda _s, fr=frames: iter(fr)), proc, outputs))
        boxes.append(box)
    loop.run()
    return boxes, det, emb, host, loop


def test_a_round_is_one_detector_call_and_one_embedder_call_with_the_same_alerts_per_camera():
    alone, det_a, emb_a, host_a, _ = run_cameras(batch=False)
    together, det_b, emb_b, host_b, loop = run_cameras(batch=True)
    subjects = [[x[1]["subject"] for x in box.items if x[0] == "alert"] for box in alone]
    assert subjects == [["person-red"], ["person-blue"], ["person-red", "person-red"]]
    # each camera publishes the same alerts and updates, in the same order, with the same event ids
    assert [b.items for b in together] == [b.items for b in alone]
    # one detector call a round with every camera's frame; none a frame at a time
    assert det_b.single_calls == 0 and det_b.batches == [3] * FRAMES
    assert det_a.batches == [] and det_a.single_calls == 3 * FRAMES
    # the same faces embedded, in fewer calls: one a round where any camera had chips
    assert emb_b.faces == emb_a.faces > 0 and emb_b.calls < emb_a.calls
    assert emb_b.calls <= FRAMES
    # every camera's frames counted and handed to the host's hook, in order per camera
    for n, cam in enumerate(loop.cameras):
        assert cam.frames == FRAMES and cam.counts.frames == FRAMES
        assert [i for c, i in host_b.after if c == f"cam{n}"] == list(range(FRAMES))
    sa = [c.processor.camera_stats for c in loop.cameras]
    assert all(s.stage_hist["detect"] and sum(s.stage_hist["detect"]) == FRAMES for s in sa)


def test_a_composite_camera_is_batched_and_its_behaviour_part_sees_every_frame_after_the_faces():
    log: list[str] = []
    together, det, _, _, _ = run_cameras(batch=True, behaviour_log=log)
    alone, _, _, _, _ = run_cameras(batch=False, behaviour_log=[])
    assert det.batches == [3] * FRAMES
    assert log == [f"behaviour cam1 {i}" for i in range(FRAMES)]
    assert [b.items for b in together] == [b.items for b in alone]


def test_a_round_takes_only_the_cameras_with_a_frame_ready():
    """A camera whose frames are not due yet (a slow camera) is not waited for: the others' rounds go on."""
    settings = Settings.model_validate({"recognition": {"match_threshold": 0.95, "min_blur_var": 5.0}})
    emb = ColourEmbedder()
    det = TaggedDetector(SCRIPTS)
    host = Host()
    loop = FrameLoop(host, batch=True)
    gallery = Gallery([GalleryEntry(1, "person-red", "wl", Category.WANTED, emb.of_colour("red"))])
    for n, realtime in ((0, False), (1, True)):
        frames = frames_of(n)
        if realtime:  # an hour between frames: the second is never due during the test
            frames = [Frame(image=f.image, ts=3600.0 * f.index, index=f.index, camera_id=f.camera_id) for f in frames]
        outputs = CameraOutputs(Outbox())
        pipe = CameraPipeline(settings, det, emb, Matcher(gallery, 0.95), outputs.alert, run_id=n)
        feed = IteratorFeed(lambda _s, fr=frames: iter(fr), realtime=realtime)
        loop.add(LoopCamera(f"cam{n}", n, feed, pipe, outputs))
    slow = loop.cameras[1]
    rounds = 0

    class Stop(Host):
        def between_rounds(self) -> bool:
            nonlocal rounds
            rounds += 1
            return rounds <= FRAMES + 1

    loop.host = Stop()
    loop.run()
    assert loop.cameras[0].frames == FRAMES and slow.frames == 1  # its first frame only
    assert det.batches[0] == 2 and det.batches[1:] == [1] * (FRAMES - 1)


@pytest.mark.parametrize("on", [True, False])
def test_a_node_worker_batches_its_cameras_as_configured(on: bool):
    import threading

    from metrosight.pipeline.worker import NodeWorker, WorkerSpec

    settings = Settings.model_validate({"inference": {"batch_cameras": on}})
    spec = WorkerSpec(0, "/nonexistent", settings.model_dump(mode="json"), ())
    worker = NodeWorker(spec, lambda _m: None, threading.Event(), threading.Event())
    assert worker.loop.batch is on
