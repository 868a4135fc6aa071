"""Batching across cameras with the real models: two cameras playing the Hamilton clip in one frame loop, their
frames detected in one call and their faces embedded in one call a round, are each alerted as one camera alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.ingest.live import Captured
from metrosight.ingest.source import VideoSource, parse_source
from metrosight.pipeline.loop import FrameLoop, IteratorFeed, LoopCamera
from metrosight.pipeline.outbox import CameraOutputs
from metrosight.pipeline.runtime import Runtime
from tests.integration.helpers import bootstrap, cli, enrol_active

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "metrosight" / "sample"
CLIP = SAMPLE / "short_hamilton_clip.mp4"
FPS = 12.0  # analysed frames a second (the clip has 25): half the frames, the same people


class Alerts:
    """A camera's outbox: its alerts and alert updates in order (the decode times aside)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict]] = []

    def alert(self, a, frame_wall) -> None:  # noqa: ANN001 - the Outbox protocol
        self.items.append(("alert", a.model_dump(exclude={"crop_jpeg", "media_origin", "event_id", "camera_id"})))
        self.items[-1][1]["birth"] = a.event_id.rsplit(":", 1)[1]

    def alert_update(self, u) -> None:  # noqa: ANN001
        self.items.append(("update", {"birth": u.event_id.rsplit(":", 1)[1], "last_seen": u.last_seen}))

    def event(self, e) -> None:  # noqa: ANN001
        pass

    def event_update(self, u) -> None:  # noqa: ANN001
        pass

    def state(self, s) -> None:  # noqa: ANN001
        pass

    def stats(self, s) -> None:  # noqa: ANN001
        pass

    def snapshot(self, s) -> None:  # noqa: ANN001
        pass


class Host:
    def between_rounds(self) -> bool:
        return True

    def after_frame(self, cam: LoopCamera, cap: Captured) -> None:
        pass

    def ended(self, cam: LoopCamera) -> None:
        pass

    def idle(self) -> None:
        pass


class CountingDetector:
    """The runtime's detector, counting its batched calls (how many frames each)."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner = inner
        self.name, self.scales_input = inner.name, inner.scales_input
        self.batches: list[int] = []

    def detect(self, image):  # noqa: ANN001, ANN201
        self.batches.append(1)
        return self.inner.detect(image)

    def detect_batch(self, images):  # noqa: ANN001, ANN201
        self.batches.append(len(images))
        return self.inner.detect_batch(images)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    home = tmp_path_factory.mktemp("batch") / "home"
    bootstrap(home)
    assert cli(home, "--as", "ada", "watchlist", "create", "wl", "--category", "wanted")[0] == 0
    code, out, err = enrol_active(home, "wl", "-s", "Lin-Manuel Miranda", SAMPLE / "lin-manuel-miranda-still.png")
    assert code == 0 and "enrolled 1 photo" in out, out + err
    settings = Settings.model_validate({"ingest": {"analysis_fps": FPS}, "alerts": {"episode_window_s": 0}})
    rt = Runtime.open(Home(home), settings)
    rt.warm_up()
    return rt


def run_loop(rt: Runtime, camera_ids: list[str], batch: bool) -> tuple[dict[str, list], list[int]]:
    """The clip on each of ``camera_ids`` in one frame loop; each camera's outbox items, the detector's calls."""
    detector = CountingDetector(rt.services.models.detector)
    loop = FrameLoop(Host(), batch=batch)
    boxes = {}
    for cid in camera_ids:
        box = Alerts()
        outputs = CameraOutputs(box)
        built = rt.processor(cid, None, outputs, scope="same")
        built.processor.detector = detector  # type: ignore[attr-defined]
        video = VideoSource(parse_source(str(CLIP)), cid, FPS, 10.0)
        loop.add(LoopCamera(cid, None, IteratorFeed(lambda _s, v=video: v.frames()), built.processor, outputs))
        boxes[cid] = box.items
    loop.run()
    return boxes, detector.batches


def test_two_cameras_batched_in_one_loop_are_each_alerted_as_one_camera_alone(runtime: Runtime):
    alone, single_calls = run_loop(runtime, ["solo"], batch=False)
    together, batches = run_loop(runtime, ["left", "right"], batch=True)
    alerts = [x for kind, x in alone["solo"] if kind == "alert"]
    assert alerts and {a["subject"] for a in alerts} == {"Lin-Manuel Miranda"}, alone
    assert set(single_calls) == {1}
    frames = len(single_calls)
    assert batches == [2] * frames  # every round: both cameras' frames in one detector call
    for cid in ("left", "right"):
        got = together[cid]
        assert [k for k, _ in got] == [k for k, _ in alone["solo"]], cid
        for (_, g), (_, ref) in zip(got, alone["solo"], strict=True):
            score = g.pop("score", None), ref.pop("score", None)
            g.pop("distance", None), ref.pop("distance", None)
            assert g == ref, cid
            if score[1] is not None:  # a batched inference call may round the last digit differently
                assert abs(score[0] - score[1]) <= 1e-3, (cid, score)
