"""One connection to a live source: :class:`PyAvSession` decodes a camera (or a file replayed as one) with the
stall watchdog; :class:`Session` is what :class:`~metrosight.ingest.live.LiveSource` needs of a connection."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import av

from metrosight.ingest.decode import DecodeOptions, decode_frames
from metrosight.ingest.source import SourceError, SourceSpec, open_container
from metrosight.ingest.state import DecodeStats

log = logging.getLogger(__name__)


class SourceStalled(SourceError):
    """No frame was decoded for the watchdog's timeout although the connection was open."""


class RawFrame(Protocol):
    """A decoded frame before conversion (``av.VideoFrame`` satisfies this)."""

    @property
    def time(self) -> float | None: ...

    def to_ndarray(self, *args: Any, **kwargs: Any) -> Any: ...


class Session(Protocol):
    """One connection to a source; ``stats`` counts what its decoder did (frames skipped, CPU time, decoder)."""

    stats: DecodeStats

    def frames(self) -> Iterator[RawFrame]:
        """Decoded frames until the source ends; raises ``SourceError`` or ``av.error.FFmpegError`` on failure."""
        ...

    def close(self) -> None: ...


Opener = Callable[[], Session]


class PyAvSession:
    """A PyAV connection with the stall watchdog: a read that blocks longer than ``stall_timeout`` fails (PyAV's
    interrupt callback), and packets that decode to no frame for ``stall_timeout`` seconds raise
    :class:`SourceStalled` (a stream of garbage, or a camera that sends only broken packets).

    Args:
        spec: what to open.
        open_timeout: seconds the connection may take to open.
        stall_timeout: seconds without a decoded frame before the watchdog fires.
        pace: play a file at its own frame rate (a replayed camera) instead of as fast as it decodes.
        stop: an event that interrupts pacing sleeps.
        decode: frames the decoder may skip, the decoder and its threads (default: every frame, on the CPU).
    """

    def __init__(
        self,
        spec: SourceSpec,
        open_timeout: float,
        stall_timeout: float,
        pace: bool = False,
        stop: threading.Event | None = None,
        decode: DecodeOptions | None = None,
    ) -> None:
        self.spec = spec
        self.stall_timeout = stall_timeout
        self.pace = pace
        self.decode = decode or DecodeOptions()
        self.stats = DecodeStats(decoder=self.decode.decoder.kind)
        self._stop = stop or threading.Event()
        self._last_frame = time.monotonic()
        self.container = open_container(spec, open_timeout, stall_timeout, self.decode.decoder)
        if not self.container.streams.video:
            self.container.close()
            raise SourceError(f"{spec.display}: no video stream found")

    def frames(self) -> Iterator[RawFrame]:
        stream = self.container.streams.video[0]
        self._last_frame = time.monotonic()
        wall0: float | None = None
        t0 = 0.0
        try:
            for frame in decode_frames(self.container, stream, self.decode, self.stats, self._watchdog):
                now = time.monotonic()
                self._last_frame = now
                if self.pace and frame.time is not None:
                    if wall0 is None:
                        wall0, t0 = now, float(frame.time)
                    ahead = (float(frame.time) - t0) - (now - wall0)
                    if ahead > 0 and self._stop.wait(ahead):
                        return
                yield frame
        except av.error.ExitError:
            raise SourceStalled(f"{self.spec.display}: no data for {self.stall_timeout:g} s") from None

    def _watchdog(self) -> None:
        """After each packet: packets keep coming but none decoded to a frame for ``stall_timeout``."""
        if time.monotonic() - self._last_frame > self.stall_timeout:
            raise SourceStalled(
                f"{self.spec.display}: no frame decoded for {self.stall_timeout:g} s although packets arrive"
            )

    def close(self) -> None:
        try:
            self.container.close()
        except (av.error.FFmpegError, OSError) as exc:  # closing a dead connection may fail; nothing to keep
            log.debug("closing %s: %s", self.spec.display, self.spec.redact(str(exc)))


def pyav_opener(
    spec: SourceSpec,
    open_timeout: float,
    stall_timeout: float,
    stop: threading.Event | None = None,
    decode: DecodeOptions | None = None,
) -> Opener:
    """An :data:`Opener` for ``spec``: files are paced at their frame rate (replayed cameras)."""
    return lambda: PyAvSession(spec, open_timeout, stall_timeout, pace=spec.kind == "file", stop=stop, decode=decode)
