"""The frame loop: the one loop every host runs its cameras in.

``metrosight run`` (one camera, in this process), a node's worker processes (a few cameras each) and a cluster
worker (the cameras it holds leases on) all drive their cameras here. A :class:`LoopCamera` is one camera: its
:class:`Feed` (frames from ingest), its processor (:class:`~metrosight.pipeline.processor.FrameProcessor`) and its
outputs (:class:`~metrosight.pipeline.outbox.CameraOutputs`). :class:`FrameLoop` takes the cameras' frames in turn
(round-robin, so no camera is always served first) and for each camera:

1. takes its next frame if one is ready (a live camera's newest, a file's next: no round waits for a slow camera),
   then publishes its state changes;
2. ends every track when the source reconnected (no track carries across an outage);
3. stamps the frame's decode time on the outputs and runs the processor on the frame — with ``batch`` (the
   ``inference.batch_cameras`` setting), the frames of every camera of the round together: one detector call and one
   embedder call for them all (:mod:`metrosight.pipeline.batch`), then each camera's after-frame hook in turn;
4. at the end of the stream (a file ended, a camera gave up): stops the feed, ends every track, publishes the last
   state changes, and tells the host (:meth:`LoopHost.ended`), which closes the camera's run.

What differs between hosts is what happens around it (:class:`LoopHost`): when to stop, what to do between rounds
(claim cameras, send counters) and after each frame (store held alerts, checkpoint, snapshot).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator, Iterator
from typing import Protocol

from metrosight.bus.payloads import CameraStateV1, CameraStatsV1
from metrosight.core.types import Frame
from metrosight.ingest.live import Captured
from metrosight.ingest.source import SourceError
from metrosight.ingest.state import CameraState, DecodeStats, IngestCounters, StateChange
from metrosight.pipeline.batch import PhasedProcessor, analyse_together
from metrosight.pipeline.outbox import CameraOutputs
from metrosight.pipeline.processor import FrameProcessor
from metrosight.pipeline.runs import RunCounts


class Feed(Protocol):
    """A camera's frames as the loop takes them (:class:`~metrosight.ingest.live.LiveSource` is one).

    ``take`` returns the next frame due, or None when none is ready (or the feed is :attr:`done`); ``poll_states``
    the state changes since the last call; ``error`` why the source ended early, if it did.
    """

    @property
    def done(self) -> bool: ...

    @property
    def error(self) -> SourceError | None: ...

    @property
    def counters(self) -> IngestCounters: ...

    @property
    def state(self) -> object: ...

    def take(self) -> Captured | None: ...

    def poll_states(self) -> list[StateChange]: ...

    def stop(self, join_timeout: float = 2.0) -> None: ...


SKIP_BATCH = 64  # frames a resumed file skips per call of IteratorFeed.take


class IteratorFeed:
    """Frames pulled from an iterator, one per :meth:`take`: a file decoded in order
    (:meth:`~metrosight.ingest.source.VideoSource.frames`), or a live source's newest frames for a one-off run
    (:meth:`~metrosight.ingest.live.LiveSource.frames`).

    Args:
        frames: called once with the feed's :meth:`on_state` (for a source that reports state changes); returns the
            frames, and raises :class:`~metrosight.ingest.source.SourceError` when the source breaks.
        segment: the connection number of the frame just yielded (0 for a file).
        resume_after: frames with an index up to this one are decoded and skipped (analysed by a worker before a
            failover: decoding them keeps the frame selection identical).
        realtime: deliver frames at their own rate (media time against the monotonic clock), like a camera.
        decode: the source's decoder counters (a file's :attr:`~metrosight.ingest.source.VideoSource.stats`, a
            live source's :attr:`~metrosight.ingest.live.LiveSource.counters`), copied into :attr:`counters` after
            each frame.
    """

    def __init__(
        self,
        frames: Callable[[Callable[[StateChange], None]], Iterator[Frame]],
        segment: Callable[[], int] = lambda: 0,
        resume_after: int = -1,
        realtime: bool = False,
        decode: DecodeStats | IngestCounters | None = None,
    ) -> None:
        self._segment = segment
        self._decode = decode
        self.resume_after = resume_after
        self.realtime = realtime
        self.counters = IngestCounters()
        self.error: SourceError | None = None
        self.state: CameraState | None = None
        self._done = False
        self._states: list[StateChange] = []
        self._pending: Frame | None = None
        self._started: tuple[float, float] | None = None  # (first media ts, monotonic time then)
        self._frames = frames(self.on_state)

    def open(self) -> bool:
        """Read the first frame now (it is the first :meth:`take`): opens the source. Returns whether there is one.

        Raises:
            SourceError: the source cannot be opened.
        """
        try:
            self._pending = next(self._frames)
        except StopIteration:
            self._done = True
        return self._pending is not None

    @property
    def done(self) -> bool:
        return self._done

    def on_state(self, change: StateChange) -> None:
        """Queue a state change of the source (published by the loop)."""
        self.state = change.state
        self._states.append(change)

    def poll_states(self) -> list[StateChange]:
        out, self._states = self._states, []
        return out

    def take(self) -> Captured | None:
        frame = self._next()
        if frame is None:
            return None
        if self.realtime:
            if self._started is None:
                self._started = (frame.ts, time.monotonic())
            if frame.ts - self._started[0] > time.monotonic() - self._started[1]:
                self._pending = frame  # not due yet: like a camera, the file delivers frames at its own rate
                return None
        self.counters.delivered += 1
        return Captured(frame, time.time(), self._segment())

    def _next(self) -> Frame | None:
        if self._pending is not None:
            frame, self._pending = self._pending, None
            return frame
        for _ in range(SKIP_BATCH):  # a bounded batch of skipped frames per call: the host's hooks keep running
            if self._done:
                break
            try:
                frame = next(self._frames)
            except StopIteration:
                self._done = True
                self._copy_decode()  # what the decoder did after the last frame
            except SourceError as exc:
                self.error, self._done = exc, True
            else:
                self.counters.decoded += 1
                self._copy_decode()
                if frame.index > self.resume_after:
                    return frame
        return None

    def _copy_decode(self) -> None:
        if self._decode is not None:
            c, d = self.counters, self._decode
            c.codec_skipped, c.decode_seconds, c.decoder = d.codec_skipped, d.decode_seconds, d.decoder

    def stop(self, join_timeout: float = 2.0) -> None:
        """Stop reading (closes the iterator: a live source's decode thread stops)."""
        self._done = True
        if isinstance(self._frames, Generator):  # a source's frames(): closing it stops its decode thread
            self._frames.close()


class LoopCamera:
    """One camera in the loop: its id, run row, feed, processor and outputs."""

    def __init__(
        self, camera_id: str, run_id: int | None, feed: Feed, processor: FrameProcessor, outputs: CameraOutputs
    ) -> None:
        self.camera_id = camera_id
        self.run_id = run_id
        self.feed = feed
        self.processor = processor
        self.outputs = outputs
        self.segment = 0
        self.ended = False
        self.frames = 0  # frames analysed
        self.last_index = -1  # the last analysed frame's index

    @property
    def counts(self) -> RunCounts:
        """What the camera's run counted so far."""
        s = self.processor.camera_stats
        return RunCounts(s.frames, s.faces, s.tracks, s.alerts)


class LoopHost(Protocol):
    """What a host does around the loop."""

    def between_rounds(self) -> bool:
        """Called before each round over the cameras; False ends the loop (stop)."""
        ...

    def after_frame(self, cam: LoopCamera, cap: Captured) -> None:
        """Called after ``cam``'s processor analysed ``cap``."""
        ...

    def ended(self, cam: LoopCamera) -> None:
        """``cam``'s stream ended (its tracks are ended, its feed stopped): close its run."""
        ...

    def idle(self) -> None:
        """No camera had a frame this round: wait a little (for a frame or a state change)."""
        ...


def camera_state_payload(change: StateChange, worker: int | None = None) -> CameraStateV1:
    """The bus payload of a camera state change (``worker``: the node worker that saw it, if any)."""
    return CameraStateV1(
        camera_id=change.camera_id,
        state=change.state.value,
        previous=change.previous.value if change.previous is not None else None,
        reason=change.reason,
        attempt=change.attempt,
        wall_time=change.wall_time,
        worker=worker,
    )


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def stats_payload(cam: LoopCamera, worker: int) -> CameraStatsV1:
    """The counters of ``cam`` (its feed's and its processor's) as a bus payload."""
    c = cam.feed.counters
    s = cam.processor.camera_stats
    return CameraStatsV1(
        camera_id=cam.camera_id,
        worker=worker,
        state=str(cam.feed.state or "starting"),
        frames_decoded=c.decoded,
        frames_skipped=c.skipped,
        frames_dropped=c.dropped,
        frames_codec_skipped=c.codec_skipped,
        decode_seconds=round(c.decode_seconds, 6),
        decoder=c.decoder,
        frames_analysed=s.frames,
        faces=s.faces,
        embedded=s.embedded,
        tracks=s.tracks,
        alerts=s.alerts,
        reconnects=c.reconnects,
        stalls=c.stalls,
        failed_attempts=c.failed_attempts,
        frames_gated=s.gated,
        detect_pixels=s.detect_pixels,
        frame_pixels=s.frame_pixels,
        last_frame_wall=c.last_frame_wall,
        worker_cpu_seconds=_cpu_seconds(),
        wall_time=time.time(),
        stage_seconds=dict(s.stage_seconds),
        stage_buckets={k: list(v) for k, v in s.stage_hist.items()},
    )


class FrameLoop:
    """Drives cameras' processors with their feeds' frames (see the module docstring).

    Args:
        host: the host's hooks.
        worker: the node worker number stamped on state changes (None outside a node).
        until_all_ended: end the loop once every camera ended (``run``, a node worker); a cluster worker keeps
            going and claims more cameras.
        batch: analyse the frames of a round together (``inference.batch_cameras``): one detector call and one
            embedder call for every camera that had a frame ready (:mod:`metrosight.pipeline.batch`); each camera
            gets the same alerts as alone. Cameras without face recognition are analysed one frame at a time.
    """

    def __init__(
        self, host: LoopHost, worker: int | None = None, until_all_ended: bool = True, batch: bool = False
    ) -> None:
        self.host = host
        self.batch = batch
        self.worker = worker
        self.until_all_ended = until_all_ended
        self.cameras: list[LoopCamera] = []
        self._turn = 0

    def add(self, cam: LoopCamera) -> None:
        self.cameras.append(cam)

    def remove(self, cam: LoopCamera) -> None:
        if cam in self.cameras:
            self.cameras.remove(cam)

    def run(self) -> None:
        """Rounds over the cameras until the host stops the loop (or, with ``until_all_ended``, every camera
        ended)."""
        while self.host.between_rounds():
            active = [c for c in self.cameras if not c.ended]
            progressed = False
            together: list[tuple[LoopCamera, Captured, PhasedProcessor]] = []
            for k in range(len(active)):  # round-robin start, so no camera is always served first
                cam = active[(self._turn + k) % len(active)]
                if cam.ended or cam not in self.cameras:  # a hook may have removed it
                    continue
                proc = cam.processor
                if self.batch and isinstance(proc, PhasedProcessor):
                    cap = self.take(cam)
                    if cap is not None:
                        together.append((cam, cap, proc))
                else:
                    progressed |= self.step(cam)
            if together:
                self.analyse_together(together)
                progressed = True
            self._turn += 1
            if self.until_all_ended and all(c.ended for c in self.cameras):
                return
            if not progressed:
                self.host.idle()

    def take(self, cam: LoopCamera) -> Captured | None:
        """``cam``'s next frame if one is ready, with its state changes published, its tracks ended after a
        reconnect and its outputs stamped with the frame's decode time; None when none is ready (the camera is
        ended when its stream ended)."""
        cap = cam.feed.take()
        self.publish_states(cam)
        if cap is None:
            if cam.feed.done:
                self.end(cam)
            return None
        if cap.segment != cam.segment:  # reconnected: no track carries across the outage
            cam.segment = cap.segment
            cam.processor.finish()
        cam.outputs.at(cap.wall)
        return cap

    def step(self, cam: LoopCamera) -> bool:
        """Analyse ``cam``'s next frame if one is ready, or end it if its stream ended. Returns whether a frame was
        analysed."""
        cap = self.take(cam)
        if cap is None:
            return False
        cam.processor.process(cap.frame)
        self._analysed(cam, cap)
        return True

    def analyse_together(self, taken: list[tuple[LoopCamera, Captured, PhasedProcessor]]) -> None:
        """Analyse one frame of each of several cameras (``(camera, its frame, its processor)``) with one detector
        call and one embedder call for them all (:func:`~metrosight.pipeline.batch.analyse_together`), then run each
        camera's after-frame hook in turn."""
        analyse_together([(proc, cap.frame) for _, cap, proc in taken])
        for cam, cap, _ in taken:
            self._analysed(cam, cap)

    def _analysed(self, cam: LoopCamera, cap: Captured) -> None:
        cam.frames += 1
        cam.last_index = cap.frame.index
        self.host.after_frame(cam, cap)

    def publish_states(self, cam: LoopCamera) -> None:
        for change in cam.feed.poll_states():
            cam.outputs.state(camera_state_payload(change, self.worker))

    def end(self, cam: LoopCamera, finish: bool = True) -> None:
        """End ``cam``: stop its feed, end its tracks (unless not ``finish``: a file left mid-way for another worker
        to resume, or a camera whose lease was lost), publish its last state changes, tell the host."""
        if cam.ended:
            return
        cam.ended = True
        cam.feed.stop(join_timeout=1.0)
        if finish:
            cam.processor.finish()
        self.publish_states(cam)
        self.host.ended(cam)

    def end_all(self) -> None:
        """Shutdown: stop every feed first (no camera waits for another's decoder), then end each camera."""
        for cam in self.cameras:
            if not cam.ended:
                cam.feed.stop(join_timeout=1.0)
        for cam in list(self.cameras):
            self.end(cam)
