"""Live sources: a decode thread per camera, a one-frame buffer, reconnects and a stall watchdog.

A live camera never waits for the analysis. Its decode thread reads every packet and decodes those the analysis
rate needs (non-reference frames it does not need are left undecoded: :mod:`metrosight.ingest.skip`), keeps at most
**one** frame for the analysis (the newest; one that was still waiting is counted as *dropped*), and reconnects
with exponential backoff and jitter when the stream drops, ends, or stalls (no decoded frame for ``stall_timeout``
seconds: the watchdog). State changes (starting, live, reconnecting, down, stopped) are queued for the consumer,
which reads them with :meth:`LiveSource.poll_states` on its own thread.

Media time (``Frame.ts``) counts from the first frame; after a reconnect it continues from the last frame's time
plus the wall-clock length of the outage, so it never goes backwards and a tracker sees the gap. The consumer sees
the connection number in :attr:`Captured.segment` and can end its tracks when it changes.

No pixels are converted for frames that are dropped or skipped: a frame is converted to RGB only when the analysis
takes it.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import av

from metrosight.core.types import Frame
from metrosight.ingest.backoff import Backoff
from metrosight.ingest.session import Opener, RawFrame, SourceStalled
from metrosight.ingest.source import Matrix, Orientation, SourceBroken, SourceError, frame_rgb
from metrosight.ingest.state import CameraState, DecodeStats, IngestCounters, StateChange

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Captured:
    """A frame taken by the analysis.

    Attributes:
        frame: the frame (RGB pixels, media time, index over the whole run).
        wall: Unix time at which it was decoded, seconds (the start of its alert latency).
        segment: connection number, 0 for the first; it increments on every reconnect.
    """

    frame: Frame
    wall: float
    segment: int


@dataclass(slots=True)
class _Slot:
    raw: RawFrame
    ts: float
    index: int
    wall: float
    segment: int
    matrix: Matrix | None = None  # display orientation (see ingest.source.Orientation)


@dataclass(slots=True)
class _Timeline:
    """The decode thread's place on the source's one timeline, across reconnects: the last frame's index, media
    time and wall time, and the media time of the next frame the analysis rate lets through."""

    min_gap: float  # seconds between analysed frames (0: every frame)
    index: int = -1
    last_ts: float = -1.0
    last_wall: float = 0.0
    next_ts: float = -1.0
    ever_live: bool = False


@dataclass(slots=True)
class _Connection:
    """One connection's clock: when its first frame came (monotonic; None before), its first timestamp, and the
    media time it starts at."""

    started: float | None = None
    t0: float | None = None
    offset: float = 0.0


class LiveSource:
    """A camera decoded on its own thread; the analysis takes the newest frame when it is ready for one.

    Args:
        camera_id: stamped on frames and state changes.
        opener: opens one connection (see :func:`pyav_opener`).
        target: the address, for messages (without credentials: ``SourceSpec.display``).
        analysis_fps: at most this many frames a second (media time) are offered to the analysis; ``None``: all.
        stall_timeout: seconds without a decoded frame before the watchdog reconnects (enforced by the session).
        backoff: delays between attempts.
        down_after: consecutive failed attempts after which the camera is reported ``down``.
        keep_trying: when down, keep retrying at the backoff ceiling (a node) instead of giving up (one-off run).
        reconnect_on_end: a source that ends is reconnected (streams) rather than stopped (files).
        stable_seconds: a connection must have delivered frames this long for the attempt count to reset, so a
            flapping stream backs off instead of reconnecting at full speed.
        wake: set whenever a frame or a state change is ready (one event can serve many sources).
        stop_event: the event that stops the source (share it with the opener so that its sleeps end too).
        redact: applied to every reason, error and log line (``SourceSpec.redact``: decoder messages may quote
            the address with its credentials).
    """

    def __init__(
        self,
        camera_id: str,
        opener: Opener,
        target: str = "",
        analysis_fps: float | None = None,
        stall_timeout: float = 5.0,
        backoff: Backoff | None = None,
        down_after: int = 5,
        keep_trying: bool = True,
        reconnect_on_end: bool = True,
        stable_seconds: float = 10.0,
        wake: threading.Event | None = None,
        stop_event: threading.Event | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        if down_after < 1:
            raise ValueError(f"down_after must be >= 1, got {down_after}")
        self.camera_id = camera_id
        self.opener = opener
        self.target = target or camera_id
        self.analysis_fps = analysis_fps
        self.stall_timeout = stall_timeout
        self.backoff = backoff or Backoff()
        self.down_after = down_after
        self.keep_trying = keep_trying
        self.reconnect_on_end = reconnect_on_end
        self.stable_seconds = stable_seconds
        self.wake = wake
        self.redact: Callable[[str], str] = redact or (lambda text: text)
        self.counters = IngestCounters()
        self.state: CameraState | None = None
        self.error: SourceError | None = None
        self.segment = 0
        self._cond = threading.Condition()
        self._slot: _Slot | None = None
        self._pending: list[StateChange] = []
        self._stop = stop_event or threading.Event()
        self._thread: threading.Thread | None = None
        self._done = False

    # -- consumer side ----------------------------------------------------------------------------------------
    def start(self) -> LiveSource:
        """Start the decode thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"decode-{self.camera_id}", daemon=True)
            self._thread.start()
        return self

    def stop(self, join_timeout: float = 2.0) -> None:
        """Ask the decode thread to stop and wait up to ``join_timeout`` seconds (a blocked network read ends at
        the latest after ``stall_timeout``; the thread is a daemon and never keeps the process alive)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(join_timeout)

    @property
    def done(self) -> bool:
        """The decode thread has ended and no frame is waiting."""
        with self._cond:
            return self._done and self._slot is None

    def take(self) -> Captured | None:
        """The newest frame not yet taken, converted to RGB, or ``None`` (never blocks)."""
        with self._cond:
            slot, self._slot = self._slot, None
        if slot is None:
            return None
        image = frame_rgb(slot.raw, slot.matrix)
        self.counters.delivered += 1
        frame = Frame(image=image, ts=slot.ts, index=slot.index, camera_id=self.camera_id)
        return Captured(frame, slot.wall, slot.segment)

    def latest(self, timeout: float) -> Captured | None:
        """Wait up to ``timeout`` seconds for a frame; returns early (with ``None``) when a state change is pending
        or the source is done."""
        with self._cond:
            self._cond.wait_for(lambda: self._slot is not None or self._pending or self._done, timeout)
        return self.take()

    def poll_states(self) -> list[StateChange]:
        """State changes since the last call, oldest first."""
        with self._cond:
            out, self._pending = self._pending, []
        return out

    def frames(self, on_state: Callable[[StateChange], None] | None = None) -> Iterator[Frame]:
        """Start, then yield the newest frame whenever the caller is ready, until the source stops.

        Sets :attr:`segment` to the yielded frame's connection number before yielding it.

        Raises:
            SourceError: the source never delivered a frame and is down (only with ``keep_trying=False``).
            SourceBroken: the source was live, then went down.
        """
        self.start()

        def flush() -> None:
            for change in self.poll_states():
                if on_state is not None:
                    on_state(change)

        try:
            while True:
                cap = self.latest(0.5)
                flush()
                if cap is not None:
                    self.segment = cap.segment
                    yield cap.frame
                elif self.done:
                    break
        finally:
            self.stop()
            flush()
        if self.error is not None:
            raise self.error

    # -- decode thread ----------------------------------------------------------------------------------------
    def _set_state(self, state: CameraState, reason: str, attempt: int) -> None:
        if state == self.state:
            return
        reason = self.redact(reason)
        change = StateChange(self.camera_id, state, self.state, reason, attempt, time.time())
        self.state = state
        level = (
            logging.INFO if state in (CameraState.LIVE, CameraState.STARTING, CameraState.STOPPED) else logging.WARNING
        )
        log.log(level, "camera %s: %s (%s)", self.camera_id, state, reason)
        with self._cond:
            self._pending.append(change)
            self._cond.notify_all()
        if self.wake is not None:
            self.wake.set()

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:
            log.error(
                "camera %s: decode thread failed: %s",
                self.camera_id,
                self.redact("".join(traceback.format_exception(exc))),
            )
            self.error = SourceError(self.redact(f"camera {self.camera_id}: decode thread failed: {exc!r}"))
            self._set_state(CameraState.DOWN, f"internal error: {exc!r}", 0)
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()
            if self.wake is not None:
                self.wake.set()

    def _loop(self) -> None:
        """Connect, read, and reconnect with back-off until stopped, the video ends, or the camera gives up."""
        line = _Timeline(1.0 / self.analysis_fps if self.analysis_fps else 0.0)
        attempt = 0
        self._set_state(CameraState.STARTING, f"connecting to {self.target}", 0)
        while not self._stop.is_set():
            if attempt > 0 and self._stop.wait(self.backoff.delay(attempt)):
                break
            conn = _Connection()
            reason, finished = self._read_connection(line, conn, attempt)
            if finished or self._stop.is_set():
                if finished:
                    return
                break
            next_attempt = self._after_connection(line, conn, reason, attempt)
            if next_attempt is None:
                return
            attempt = next_attempt
        self._set_state(CameraState.STOPPED, "stopped", 0)

    def _read_connection(self, line: _Timeline, conn: _Connection, attempt: int) -> tuple[str, bool]:
        """Open the source and offer its frames until it ends, fails or the source is stopped: ``(why it ended,
        whether the source is finished)`` (a video file that ended: state STOPPED set)."""
        try:
            session = self.opener()
        except SourceError as exc:
            return self.redact(str(exc)), False
        reason = ""
        base = (self.counters.codec_skipped, self.counters.decode_seconds)
        shown = 0  # frames the decoder skipped that the index already counts
        try:
            orientation = Orientation()  # every decoded frame, skipped or dropped ones too
            for raw in session.frames():
                self._count_decoder(session.stats, base)
                skipped, shown = session.stats.shown_skipped - shown, session.stats.shown_skipped
                self._take(raw, orientation.update(raw), line, conn, attempt, skipped)
                if self._stop.is_set():
                    break
            else:
                reason = "the stream ended"
                if not self.reconnect_on_end:
                    if conn.started is None:
                        self.error = SourceError(f"{self.target}: no decodable frames")
                    self._set_state(CameraState.STOPPED, "end of the video", 0)
                    return reason, True
        except SourceStalled as exc:
            self.counters.stalls += 1
            reason = self.redact(str(exc))
        except (SourceError, av.error.FFmpegError, OSError) as exc:
            reason = self.redact(f"{self.target}: {exc}")
        finally:
            session.close()
            self._count_decoder(session.stats, base)
        return reason, False

    def _count_decoder(self, stats: DecodeStats, base: tuple[int, float]) -> None:
        """The counters of the connection's decoder on top of those of earlier connections (``base``)."""
        self.counters.codec_skipped = base[0] + stats.codec_skipped
        self.counters.decode_seconds = base[1] + stats.decode_seconds
        self.counters.decoder = stats.decoder

    def _take(
        self, raw: RawFrame, matrix: Matrix | None, line: _Timeline, conn: _Connection, attempt: int, skipped: int = 0
    ) -> None:
        """Count, stamp and (unless the analysis rate skips it) offer one decoded frame; ``skipped``: frames the
        decoder left out just before it (display order; counted in the index)."""
        now_wall = time.time()
        self.counters.decoded += 1
        self.counters.last_frame_wall = now_wall
        line.index += 1 + skipped
        if conn.started is None:  # first frame of this connection
            conn.started = time.monotonic()
            if line.ever_live:
                self.segment += 1
            conn.offset = 0.0 if line.last_ts < 0 else line.last_ts + max(0.0, now_wall - line.last_wall)
            conn.t0 = None
            line.ever_live = True
            self._set_state(CameraState.LIVE, f"receiving frames from {self.target}", attempt)
        ts = self._stamp(raw.time, line, conn, now_wall, conn.started)
        line.last_ts, line.last_wall = ts, now_wall
        if line.min_gap and ts + 1e-6 < line.next_ts:
            self.counters.skipped += 1
        else:
            line.next_ts = ts + line.min_gap if line.next_ts < 0 else max(line.next_ts + line.min_gap, ts)
            self._offer(_Slot(raw, ts, line.index, now_wall, self.segment, matrix))

    def _stamp(self, pts: Any, line: _Timeline, conn: _Connection, now_wall: float, started: float) -> float:
        """A frame's media time on the source's one timeline: its timestamp from the connection's first (re-anchored
        on the wall clock when the camera's clock jumps), or the time since the connection began; never earlier
        than the previous frame's."""
        if pts is not None:
            if conn.t0 is None:
                conn.t0 = float(pts)
            raw_ts = conn.offset + float(pts) - conn.t0
            if (
                self.reconnect_on_end
                and line.last_ts >= 0
                and self._jumped(raw_ts, line.last_ts, now_wall - line.last_wall)
            ):
                # the camera's clock jumped (it restarted, or wrapped): re-anchor on the wall clock
                log.warning(
                    "camera %s: stream timestamps jumped by %.1f s; re-anchored", self.camera_id, raw_ts - line.last_ts
                )
                conn.offset, conn.t0 = line.last_ts + max(0.0, now_wall - line.last_wall), float(pts)
                raw_ts = conn.offset
            ts = max(conn.offset, raw_ts)
        else:
            ts = conn.offset + (time.monotonic() - started)
        return max(ts, line.last_ts) if line.last_ts >= 0 else ts

    def _after_connection(self, line: _Timeline, conn: _Connection, reason: str, attempt: int) -> int | None:
        """The number of the next attempt after a connection ended with ``reason`` (state changes and counters
        updated), or None when the source gives up (a file that broke part-way, a camera down for good; ``error``
        set)."""
        if conn.started is not None and not self.reconnect_on_end:  # a file broke part-way: no replay
            self.error = SourceBroken(f"{self.target}: video broke off: {reason}", self.counters.decoded)
            self._set_state(CameraState.STOPPED, reason, 0)
            return None
        if conn.started is not None:  # it was live: a drop
            self.counters.reconnects += 1
            stable = time.monotonic() - conn.started >= self.stable_seconds
            attempt = 1 if stable else attempt + 1
            self._set_state(CameraState.RECONNECTING, reason, attempt)
            return attempt
        attempt += 1
        self.counters.failed_attempts += 1
        if attempt >= self.down_after:
            self._set_state(CameraState.DOWN, f"{attempt} attempts failed; last: {reason}", attempt)
            if not self.keep_trying:
                msg = f"camera {self.camera_id} is down after {attempt} failed attempts: {reason}"
                self.error = SourceBroken(msg, self.counters.decoded) if line.ever_live else SourceError(msg)
                return None
        elif line.ever_live:
            self._set_state(CameraState.RECONNECTING, reason, attempt)
        else:
            log.info("camera %s: attempt %d failed: %s", self.camera_id, attempt, reason)
        return attempt

    def _jumped(self, ts: float, last_ts: float, wall_gap: float) -> bool:
        """Whether media time moved implausibly: backwards by more than a second, or ahead of the wall clock by
        more than ``max(5 s, 2 × stall_timeout)`` (start-up bursts stay well inside that)."""
        return ts < last_ts - 1.0 or ts - last_ts > max(0.0, wall_gap) + max(5.0, 2.0 * self.stall_timeout)

    def _offer(self, slot: _Slot) -> None:
        with self._cond:
            if self._slot is not None:
                self.counters.dropped += 1
            self._slot = slot
            self._cond.notify_all()
        if self.wake is not None:
            self.wake.set()
