"""The frame loop every host runs its cameras in, its feeds, the outbox, typed worker messages and typed topics."""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import numpy as np
import pytest

from metrosight.bus.inproc import InProcessBus
from metrosight.bus.payloads import AlertUpdateV1, AlertV1, CameraStateV1
from metrosight.bus.topics import ALERTS, TopicMismatch
from metrosight.core.types import Box, Frame
from metrosight.ingest.live import Captured
from metrosight.ingest.source import SourceBroken
from metrosight.ingest.state import CameraState, IngestCounters, StateChange
from metrosight.pipeline.camera import CameraStats
from metrosight.pipeline.loop import FrameLoop, IteratorFeed, LoopCamera
from metrosight.pipeline.messages import AlertRaised, AlertUpdated, CameraFinished, StateChanged
from metrosight.pipeline.outbox import BusOutbox, CameraOutputs, PipeOutbox
from metrosight.pipeline.processor import Composite
from metrosight.pipeline.runs import RunCounts


def frame(i: int, ts: float | None = None) -> Frame:
    return Frame(image=np.zeros((4, 4, 3), np.uint8), ts=i * 0.5 if ts is None else ts, index=i, camera_id="cam")


def alert(event_id: str) -> AlertV1:
    return AlertV1(
        event_id=event_id,
        camera_id="cam",
        track_id=1,
        subject_id=1,
        subject="P",
        watchlist="wl",
        category="wanted",
        score=0.9,
        distance=0.1,
        first_seen=0.0,
        last_seen=1.0,
        samples=1,
    )


class Recorder:
    """A processor that records what the loop asks of it; raises an alert at the frames listed."""

    def __init__(self, outputs: CameraOutputs | None = None, alert_at: tuple[int, ...] = ()) -> None:
        self.calls: list[str] = []
        self.outputs = outputs
        self.alert_at = alert_at
        self.stats = CameraStats()
        self.live = False

    def process(self, f: Frame) -> None:
        self.calls.append(f"process {f.index}")
        self.stats.frames += 1
        if f.index in self.alert_at and self.outputs is not None:
            self.outputs.alert(alert(f"cam:{f.index}"))

    def finish(self) -> None:
        self.calls.append("finish")

    @property
    def camera_stats(self) -> CameraStats:
        return self.stats

    @property
    def quiescent(self) -> bool:
        return not self.live

    @property
    def last_boxes(self) -> list[Box]:
        return []

    @property
    def gallery_size(self) -> int:
        return 3


class Host:
    def __init__(self) -> None:
        self.after: list[tuple[str, int]] = []
        self.ends: list[str] = []
        self.rounds = 0

    def between_rounds(self) -> bool:
        self.rounds += 1
        return self.rounds < 100

    def after_frame(self, cam: LoopCamera, cap: Captured) -> None:
        self.after.append((cam.camera_id, cap.frame.index))

    def ended(self, cam: LoopCamera) -> None:
        self.ends.append(cam.camera_id)

    def idle(self) -> None:
        pass


class SegmentFeed:
    """A live-like feed: frames with connection numbers, a state change with the first."""

    def __init__(self, segments: list[int]) -> None:
        self.caps = [Captured(frame(i), 100.0 + i, s) for i, s in enumerate(segments)]
        self.states = [StateChange("cam", CameraState.LIVE, CameraState.STARTING, "receiving", 0, 1.0)]
        self.stopped = False
        self.error = None
        self.state = CameraState.LIVE
        self.counters = IngestCounters()

    @property
    def done(self) -> bool:
        return not self.caps

    def take(self) -> Captured | None:
        return self.caps.pop(0) if self.caps else None

    def poll_states(self) -> list[StateChange]:
        out, self.states = self.states, []
        return out

    def stop(self, join_timeout: float = 2.0) -> None:
        self.stopped = True


class ListOutbox:
    def __init__(self) -> None:
        self.items: list[object] = []

    def alert(self, a: AlertV1, frame_wall: float | None) -> None:
        self.items.append(("alert", a.event_id, frame_wall))

    def alert_update(self, u: AlertUpdateV1) -> None:
        self.items.append(("update", u.event_id))

    def event(self, e: object) -> None:
        self.items.append(("event", e))

    def event_update(self, u: object) -> None:
        self.items.append(("event_update", u))

    def state(self, s: CameraStateV1) -> None:
        self.items.append(("state", s.state))

    def stats(self, s: object) -> None:
        self.items.append(("stats", s))

    def snapshot(self, s: object) -> None:
        self.items.append(("snapshot", s))


def test_the_loop_ends_tracks_on_reconnect_stamps_alerts_and_ends_the_stream_once():
    box = ListOutbox()
    outputs = CameraOutputs(box)
    proc = Recorder(outputs, alert_at=(2,))
    feed = SegmentFeed([0, 0, 1, 1])
    host = Host()
    loop = FrameLoop(host, worker=3)
    cam = LoopCamera("cam", 7, feed, proc, outputs)
    loop.add(cam)
    loop.run()
    # a reconnect (segment 0 -> 1) ends every track before the first frame of the new connection
    assert proc.calls == ["process 0", "process 1", "finish", "process 2", "process 3", "finish"]
    assert ("alert", "cam:2", 102.0) in box.items  # the decode time of the frame that raised it
    assert box.items[0] == ("state", "live")
    assert host.after == [("cam", 0), ("cam", 1), ("cam", 2), ("cam", 3)] and host.ends == ["cam"]
    assert feed.stopped and cam.ended and cam.counts == RunCounts(frames=4)
    loop.end(cam)  # ending again changes nothing
    assert host.ends == ["cam"] and proc.calls.count("finish") == 2


def test_cameras_are_served_in_turn_and_a_stopped_camera_is_not_finished():
    host = Host()
    loop = FrameLoop(host)
    procs = {}
    for cid in ("a", "b"):
        procs[cid] = Recorder()
        loop.add(LoopCamera(cid, None, SegmentFeed([0, 0]), procs[cid], CameraOutputs(ListOutbox())))
    loop.run()
    assert [c for c, _ in host.after] in (["a", "b", "b", "a"], ["a", "b", "a", "b"])
    lost = LoopCamera("c", None, SegmentFeed([0]), Recorder(), CameraOutputs(ListOutbox()))
    loop.add(lost)
    loop.end(lost, finish=False)  # a camera whose lease was lost: nothing more is published
    assert lost.processor.calls == [] and lost.feed.stopped  # type: ignore[attr-defined]


def frames_then_break(n: int) -> Iterator[Frame]:
    for i in range(n):
        yield frame(i)
    raise SourceBroken("video broke off", n)


def test_an_iterator_feed_skips_what_was_analysed_before_and_reports_a_break():
    feed = IteratorFeed(lambda _on_state: frames_then_break(200), resume_after=150)
    assert feed.open()
    got = []
    while not feed.done:
        cap = feed.take()
        if cap is not None:
            got.append(cap.frame.index)
    assert got == [0, *range(151, 200)]  # the first frame is read by open(), the rest after the checkpoint
    assert isinstance(feed.error, SourceBroken)


def test_an_iterator_feed_delivers_in_real_time_when_asked():
    feed = IteratorFeed(lambda _on_state: iter([frame(0, 0.0), frame(1, 3600.0)]), realtime=True)
    assert feed.take() is not None
    assert feed.take() is None and not feed.done  # an hour ahead of the wall clock: not due yet


def test_a_composite_is_quiescent_when_both_are_and_counts_the_primary():
    faces, behaviour = Recorder(), Recorder()
    both = Composite(faces, behaviour)
    both.process(frame(0))
    assert faces.calls == behaviour.calls == ["process 0"]
    behaviour.live = True
    assert not both.quiescent and both.camera_stats is faces.stats and both.gallery_size == 3


def test_the_pipe_outbox_sends_typed_messages_that_cross_a_process_boundary():
    sent: list[object] = []
    out = PipeOutbox(sent.append)
    out.alert(alert("e1"), 12.5)
    out.alert_update(AlertUpdateV1(event_id="e1", last_seen=3.0))
    out.state(CameraStateV1(camera_id="cam", state="live", wall_time=1.0))
    assert [type(m) for m in sent] == [AlertRaised, AlertUpdated, StateChanged]
    msg = CameraFinished("cam", "finished", None, RunCounts(10, 4, 2, 1))
    assert pickle.loads(pickle.dumps(msg)) == msg
    match pickle.loads(pickle.dumps(sent[0])):
        case AlertRaised(a, wall):
            assert a.event_id == "e1" and wall == 12.5
        case _:
            pytest.fail("not an AlertRaised")


def test_a_topic_refuses_a_payload_of_another_type():
    bus = InProcessBus()
    got: list[AlertV1] = []
    bus.subscribe(ALERTS, got.append)
    BusOutbox(bus).alert(alert("e1"), None)
    assert [a.event_id for a in got] == ["e1"]
    with pytest.raises(TopicMismatch, match="alerts carries AlertV1, not AlertUpdateV1"):
        bus.publish(ALERTS, AlertUpdateV1(event_id="e1", last_seen=1.0))  # type: ignore[arg-type]
