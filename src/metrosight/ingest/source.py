"""Video sources: a file, an RTSP stream or a webcam, decoded with PyAV into :class:`Frame` values.

Timestamps are media time from the stream (``frame.time``), falling back to ``index / fps``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from metrosight.core.types import Frame

log = logging.getLogger(__name__)


_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/@\s:'\"]+):[^/@\s'\"]*@")


def redact_credentials(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***`` (``rtsp://user:***@host/…``): camera
    addresses carry credentials, which must not reach logs, events, the database or error messages."""
    return _CREDENTIALS.sub(r"\1:***@", text)


class SourceError(Exception):
    """A source cannot be opened or decoded; the message says which and what to do."""


class SourceBroken(SourceError):
    """A source that was decoding stopped with an error before its end (truncated file, dropped stream)."""

    def __init__(self, message: str, frames_read: int) -> None:
        super().__init__(message)
        self.frames_read = frames_read


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """Where frames come from: ``kind`` is ``file``, ``rtsp`` or ``webcam``."""

    kind: str
    target: str

    @property
    def display(self) -> str:
        """The target as it may be shown or stored: without the password of a URL."""
        return redact_credentials(self.target)

    @classmethod
    def parse(cls, text: str) -> SourceSpec:
        """Parse ``PATH``, ``rtsp://…``/``rtsps://…`` or ``webcam:N``.

        Raises:
            SourceError: empty text, a bad webcam index, or a file that does not exist.
        """
        text = text.strip()
        if not text:
            raise SourceError("empty source: give a video file path, an rtsp:// URL or webcam:N")
        lower = text.lower()
        if lower.startswith(("rtsp://", "rtsps://")):
            return cls("rtsp", text)
        if lower.startswith("webcam:"):
            index = text.split(":", 1)[1]
            if not index.isdigit():
                raise SourceError(
                    f"bad webcam source {text!r}: use webcam:N with N a device number, e.g. webcam:0"
                )
            return cls("webcam", f"/dev/video{int(index)}")
        path = Path(text)
        if not path.exists():
            raise SourceError(f"video file not found: {text}")
        if not path.is_file():
            raise SourceError(f"not a file: {text}")
        return cls("file", str(path))


def open_container(
    spec: SourceSpec, open_timeout: float = 10.0, read_timeout: float | None = None
) -> av.container.InputContainer:
    """Open ``spec`` with PyAV (RTSP over TCP).

    Args:
        spec: what to open.
        open_timeout: seconds a network stream may take to open.
        read_timeout: seconds a network read may block (no packet) before it fails; defaults to ``open_timeout``.

    Raises:
        SourceError: the source cannot be opened; the message names it and says what to check.
    """
    options: dict[str, str] = {}
    kwargs: dict[str, object] = {}
    if spec.kind == "rtsp":
        options = {"rtsp_transport": "tcp"}
        kwargs["timeout"] = (open_timeout, read_timeout if read_timeout is not None else open_timeout)
    elif spec.kind == "webcam":
        kwargs["format"] = "v4l2"
    try:
        return av.open(spec.target, options=options, **kwargs)  # type: ignore[call-overload,no-any-return]
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        what = {"file": "video file", "rtsp": "RTSP stream", "webcam": "webcam"}[spec.kind]
        hint = {
            "file": "check that it is a video FFmpeg can read",
            "rtsp": "check the address, that the camera is reachable and the credentials",
            "webcam": "check that the device exists and is not in use",
        }[spec.kind]
        raise SourceError(
            f"cannot open {what} {spec.display}: {redact_credentials(str(exc))}; {hint}"
        ) from None


class VideoSource:
    """Decodes one source into frames.

    Args:
        spec: what to open.
        camera_id: stamped on every frame.
        analysis_fps: if set, skip frames so that at most this many a second (media time) are yielded.
        open_timeout: seconds to wait for a network stream to open or deliver a packet.
    """

    def __init__(
        self,
        spec: SourceSpec,
        camera_id: str = "cam0",
        analysis_fps: float | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        self.spec = spec
        self.camera_id = camera_id
        self.analysis_fps = analysis_fps
        self.open_timeout = open_timeout
        self.frames_decoded = 0
        self.fps: float | None = None
        self.segment = 0  # connection number; a file is read in one go (see LiveSource for streams)

    def _open(self) -> av.container.InputContainer:
        return open_container(self.spec, self.open_timeout)

    def frames(self) -> Iterator[Frame]:
        """Yield decoded frames in order.

        Raises:
            SourceError: the source cannot be opened or has no video stream.
            SourceBroken: decoding failed part-way (frames before the break were yielded).
        """
        container = self._open()
        try:
            if not container.streams.video:
                raise SourceError(f"{self.spec.display}: no video stream found")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else None
            min_gap = 1.0 / self.analysis_fps if self.analysis_fps else 0.0
            next_ts = -1.0
            index = -1
            # media time counts from the first frame (0.0), as a player shows it; files often start at pts > 0
            t0: float | None = None
            try:
                for av_frame in container.decode(stream):
                    index += 1
                    self.frames_decoded += 1
                    if av_frame.time is not None:
                        if t0 is None:
                            t0 = float(av_frame.time)
                        ts = max(0.0, float(av_frame.time) - t0)
                    else:
                        ts = index / (self.fps or 25.0)
                    if min_gap and ts + 1e-6 < next_ts:
                        continue
                    next_ts = ts + min_gap if next_ts < 0 else max(next_ts + min_gap, ts)
                    image = av_frame.to_ndarray(format="rgb24")
                    yield Frame(
                        image=np.ascontiguousarray(image), ts=ts, index=index, camera_id=self.camera_id
                    )
            except av.error.FFmpegError as exc:
                raise SourceBroken(
                    f"{self.spec.target}: video broke off after {self.frames_decoded} frames: {exc}",
                    self.frames_decoded,
                ) from None
            if self.spec.kind == "file" and index < 0:
                raise SourceError(f"{self.spec.target}: the video has no decodable frames")
            expected = int(stream.frames or 0)
            if (
                self.spec.kind == "file"
                and expected > 0
                and self.frames_decoded < expected - max(2, expected // 100)
            ):
                raise SourceBroken(
                    f"{self.spec.target}: video ended early, after {self.frames_decoded} of its {expected} frames "
                    "(the file looks truncated or damaged)",
                    self.frames_decoded,
                )
        finally:
            container.close()
