"""LiveSource with scripted connections: states, reconnects, latest-frame semantics, analysis rate."""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pytest

from metrosight.ingest.backoff import Backoff
from metrosight.ingest.live import LiveSource, SourceStalled
from metrosight.ingest.source import SourceBroken, SourceError
from metrosight.ingest.state import CameraState, DecodeStats


class RawFrame:
    def __init__(self, t: float, tag: int) -> None:
        self.time = t
        self.tag = tag

    def to_ndarray(self, format: str) -> np.ndarray:
        img = np.zeros((4, 6, 3), dtype=np.uint8)
        img[0, 0, 0] = self.tag % 256
        return img


class Session:
    """``n`` frames at ``fps`` (media time starting at ``t0``), produced every ``period`` wall seconds; then ends
    or raises ``error``."""

    def __init__(self, n: int, fps: float = 25.0, period: float = 0.0, t0: float = 100.0, error=None) -> None:
        self.n, self.fps, self.period, self.t0, self.error = n, fps, period, t0, error
        self.closed = False
        self.stats = DecodeStats()

    def frames(self):
        for i in range(self.n):
            if self.period:
                time.sleep(self.period)
            yield RawFrame(self.t0 + i / self.fps, i)
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.closed = True


class Script:
    """An opener that plays a list of outcomes: a Session, or an exception to raise on open."""

    def __init__(self, *outcomes, then=None) -> None:
        self.outcomes = list(outcomes)
        self.then = then
        self.opens = 0

    def __call__(self):
        self.opens += 1
        item = self.outcomes.pop(0) if self.outcomes else self.then
        if item is None:
            raise SourceError("cannot open RTSP stream rtsp://cam/x: Connection refused")
        if isinstance(item, Exception):
            raise item
        return item


FAST = Backoff(initial=0.01, maximum=0.04, factor=2.0, jitter=0.0)


def states(changes):
    return [c.state for c in changes]


def test_never_connects_goes_down_after_retries_with_the_last_error():
    opener = Script()
    src = LiveSource("cam1", opener, "rtsp://cam/x", backoff=FAST, down_after=4, keep_trying=False)
    seen = []
    with pytest.raises(SourceError, match=r"cam1 is down after 4 failed attempts: cannot open RTSP stream") as err:
        list(src.frames(on_state=seen.append))
    assert not isinstance(err.value, SourceBroken)
    assert opener.opens == 4
    assert states(seen) == [CameraState.STARTING, CameraState.DOWN]
    assert seen[-1].attempt == 4 and "Connection refused" in seen[-1].reason
    assert src.counters.failed_attempts == 4


def test_drop_reconnect_live_again_with_monotonic_media_time():
    first = Session(30, period=0.002, error=SourceError("connection reset"))
    second = Session(30, period=0.002, t0=5.0)  # the server restarted: its clock starts elsewhere
    opener = Script(first, SourceError("refused"), second, then=None)
    src = LiveSource("cam1", opener, backoff=FAST, down_after=3, keep_trying=False)
    seen, frames, segments = [], [], []
    with pytest.raises(SourceBroken, match=r"cam1 is down after \d+ failed attempts"):
        for f in src.frames(on_state=seen.append):
            frames.append(f)
            segments.append(src.segment)
            time.sleep(0.004)  # slower than the source: some frames are dropped
    assert states(seen) == [
        CameraState.STARTING,
        CameraState.LIVE,
        CameraState.RECONNECTING,
        CameraState.LIVE,
        CameraState.RECONNECTING,
        CameraState.DOWN,
    ]
    assert "connection reset" in seen[2].reason
    assert segments[0] == 0 and segments[-1] == 1 and segments == sorted(segments)
    ts = [f.ts for f in frames]
    # media time counts from the first decoded frame (the newest-frame buffer may already have replaced it by the
    # time the consumer reads, under load): the first frame read sits on that clock, never on the source's t0 = 100
    assert ts[0] == pytest.approx(frames[0].index / 25.0) and ts[0] < 29 / 25.0
    assert all(b >= a for a, b in itertools.pairwise(ts))
    first_of_second = frames[segments.index(1)]
    assert first_of_second.ts >= 29 / 25.0  # continues after the first connection, never back to 0
    idx = [f.index for f in frames]
    assert idx == sorted(set(idx))
    c = src.counters
    assert c.reconnects == 2 and c.decoded == 60


def test_latest_frame_semantics_bounded_buffer_counts_drops():
    opener = Script(Session(200, fps=100.0, period=0.001), then=Session(0))
    src = LiveSource("cam1", opener, backoff=FAST, keep_trying=False, reconnect_on_end=False)
    src.start()
    got = []
    while not src.done:
        cap = src.latest(0.5)
        if cap is not None:
            got.append(cap.frame.index)
            time.sleep(0.02)  # a slow analysis: ~20 source frames per analysed frame
    c = src.counters
    assert c.decoded == 200
    assert c.delivered == len(got) and c.dropped > 100
    assert c.decoded == c.delivered + c.dropped + c.skipped  # nothing else is held: the buffer is one frame
    assert got == sorted(got) and got[-1] == 199  # the newest frame is what the analysis gets


def test_analysis_fps_offers_frames_at_that_rate_of_media_time():
    opener = Script(Session(100, fps=25.0), then=Session(0))  # 4 s of media time
    src = LiveSource("cam1", opener, analysis_fps=5.0, backoff=FAST, keep_trying=False, reconnect_on_end=False)
    src.start()
    got = []
    while not src.done:
        cap = src.latest(0.5)
        if cap is not None:
            got.append(cap.frame.ts)
    # a fast consumer with a producer that does not wait: the slot may still be replaced, so count offers
    assert src.counters.skipped == 80 and src.counters.delivered + src.counters.dropped == 20
    assert all(b - a >= 0.2 - 1e-6 for a, b in itertools.pairwise(got))


def test_down_then_back_when_it_keeps_trying():
    opener = Script(*[SourceError("refused")] * 3, Session(5, period=0.002), then=Session(0))
    wake = threading.Event()
    src = LiveSource("cam1", opener, backoff=FAST, down_after=2, keep_trying=True, wake=wake)
    src.start()
    seen = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and CameraState.LIVE not in states(seen):
        wake.wait(0.1)
        wake.clear()
        seen += src.poll_states()
        src.take()
    src.stop()
    seen += src.poll_states()
    assert states(seen)[:3] == [CameraState.STARTING, CameraState.DOWN, CameraState.LIVE]
    assert states(seen)[-1] == CameraState.STOPPED


def test_stall_counts_and_flapping_stream_backs_off():
    stalled = [Session(3, error=SourceStalled("no frame for 1 s")) for _ in range(3)]
    opener = Script(*stalled, then=None)
    src = LiveSource("cam1", opener, backoff=FAST, down_after=3, keep_trying=False, stable_seconds=60)
    seen = []
    with pytest.raises(SourceBroken, match="down after"):
        list(src.frames(on_state=seen.append))
    assert src.counters.stalls == 3 and src.counters.reconnects == 3
    # each short-lived connection counts as a failed attempt, so a flapping camera still ends up down
    assert CameraState.DOWN in states(seen)


class JumpingSession(Session):
    """Frames whose timestamps jump back by an hour half-way (a camera that restarted its clock)."""

    def frames(self):
        for i in range(self.n):
            time.sleep(self.period)
            t = self.t0 + i / self.fps
            yield RawFrame(t - 3600.0 if i >= self.n // 2 else t, i)


def test_a_camera_clock_that_jumps_back_is_reanchored_so_frames_keep_flowing():
    opener = Script(JumpingSession(40, fps=25.0, period=0.01, t0=5000.0), then=None)
    src = LiveSource("cam1", opener, analysis_fps=10.0, backoff=FAST, down_after=1, keep_trying=False)
    got = []
    with pytest.raises(SourceBroken):
        for f in src.frames():
            got.append(f.ts)
    # without re-anchoring, every frame after the jump would carry the same frozen time and be skipped
    assert sum(1 for t in got if t > 0.7) >= 3
    assert all(b >= a for a, b in itertools.pairwise(got))
    assert got[-1] == pytest.approx(39 / 25.0, abs=0.3)
