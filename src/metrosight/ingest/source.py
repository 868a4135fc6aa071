"""Video sources: a file, a network stream or a webcam, decoded with PyAV into :class:`Frame` values.

Sources are parsed once into :class:`~metrosight.core.source.SourceSpec` (credentials kept apart; only
``url_for_ffmpeg`` carries them, into the decoder). Timestamps are media time from the stream (``frame.time``),
falling back to ``index / fps``. Frames are turned and mirrored as the container's display matrix says.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import av
import numpy as np
from av.sidedata.sidedata import Type as _SideDataType

from metrosight.core.source import SUPPORTED, SourceSpec, SourceSyntaxError
from metrosight.core.types import Frame
from metrosight.ingest.decode import DecodeOptions, decode_frames, stream_fps
from metrosight.ingest.hwaccel import SOFTWARE, Decoder
from metrosight.ingest.state import DecodeStats

__all__ = ["SourceBroken", "SourceError", "SourceSpec", "VideoSource", "open_container", "parse_source"]
_DISPLAYMATRIX = _SideDataType.DISPLAYMATRIX

log = logging.getLogger(__name__)


class SourceError(Exception):
    """A source cannot be opened or decoded; the message says which and what to do."""


class SourceBroken(SourceError):
    """A source that was decoding stopped with an error before its end (truncated file, dropped stream)."""

    def __init__(self, message: str, frames_read: int) -> None:
        super().__init__(message)
        self.frames_read = frames_read


def parse_source(text: str, rtsp_transport: str = "auto") -> SourceSpec:
    """Parse ``text`` (see :class:`~metrosight.core.source.SourceSpec`) and check that a file source exists.

    Raises:
        SourceError: the source cannot be understood (the message never quotes credentials), or a file that
            does not exist or is not a file.
    """
    try:
        spec = SourceSpec.parse(text, rtsp_transport)
    except SourceSyntaxError as exc:
        raise SourceError(str(exc)) from None
    if spec.kind == "file":
        path = Path(spec.target)
        shown = spec.target if len(spec.target) <= 200 else spec.target[:120] + "…" + spec.target[-40:]
        try:
            exists, is_file = path.exists(), path.is_file()
        except OSError as exc:  # a name too long, a folder this user may not enter: not the store's fault
            raise SourceError(
                f"cannot use the video file {shown}: {exc.strerror or exc} (check the path and its permissions)"
            ) from None
        if not exists:
            raise SourceError(f"video file not found: {shown} (give {SUPPORTED})")
        if not is_file:
            raise SourceError(f"not a file: {shown}")
    return spec


_KIND_NAME: Final[Mapping[str, str]] = {
    "file": "video file",
    "webcam": "webcam",
    "rtsp": "RTSP stream",
    "http": "HTTP stream",
    "rtmp": "RTMP stream",
    "udp": "UDP stream",
}


def _why(spec: SourceSpec, exc: BaseException, open_timeout: float) -> tuple[str, str]:
    """What went wrong opening ``spec`` (redacted) and what to check, from the decoder's exception."""
    if isinstance(exc, av.error.ExitError):
        return f"no answer within {open_timeout:g} s", "check the address, the port and that the stream is running"
    text = spec.redact(str(exc))
    errno = getattr(exc, "errno", None)
    if spec.kind == "file":
        return text, "check that it is a video FFmpeg can read"
    if spec.kind == "webcam":
        return text, "check that the device exists and is not in use"
    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        return text, (
            "the camera refused the credentials: check the user name and password "
            "(percent-encode reserved characters, e.g. @ as %40)"
        )
    if isinstance(exc, ConnectionRefusedError):
        return text, "nothing accepts connections there: check the host and port, and that the camera is on"
    if errno == 93 or isinstance(exc, av.error.ProtocolNotFoundError):  # EPROTONOSUPPORT
        return text, "the camera does not offer this transport"
    if isinstance(exc, av.error.HTTPNotFoundError):
        return text, "the camera has no stream at this path: check the path"
    return text, "check the address, that the camera is reachable and the credentials"


def open_container(
    spec: SourceSpec, open_timeout: float = 10.0, read_timeout: float | None = None, decoder: Decoder = SOFTWARE
) -> av.container.InputContainer:
    """Open ``spec`` with PyAV. RTSP goes over ``spec.rtsp_transport``: ``auto`` tries TCP, then UDP.

    Args:
        spec: what to open.
        open_timeout: seconds a network stream may take to open.
        read_timeout: seconds a network read may block (no packet) before it fails; defaults to ``open_timeout``.
        decoder: the CPU or a hardware device (:func:`~metrosight.ingest.hwaccel.choose_decoder`).

    Raises:
        SourceError: the source cannot be opened; the message names it (without credentials), the transport for
            RTSP, and says what to check.
    """
    # PyAV's defaults (None) where a setting does not apply
    timeout = (open_timeout, read_timeout if read_timeout is not None else open_timeout) if spec.is_network else None
    fmt = "v4l2" if spec.kind == "webcam" and not spec.is_network else None
    what = _KIND_NAME.get(spec.kind, "stream")
    hw = decoder.hwaccel()
    extra: dict[str, Any] = {} if hw is None else {"hwaccel": hw}
    if spec.kind != "rtsp":
        try:
            return av.open(spec.url_for_ffmpeg, format=fmt, timeout=timeout, **extra)
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            reason, hint = _why(spec, exc, open_timeout)
            raise SourceError(f"cannot open {what} {spec.display}: {reason}; {hint}") from None
    transports = spec.transports
    failures: list[str] = []
    hint = ""
    for transport in transports:
        try:
            return av.open(
                spec.url_for_ffmpeg, format=fmt, options={"rtsp_transport": transport}, timeout=timeout, **extra
            )
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            reason, hint = _why(spec, exc, open_timeout)
            failures.append(f"over {transport.upper()}: {reason}")
            if isinstance(exc, av.error.HTTPUnauthorizedError | ConnectionRefusedError):
                break  # the other transport cannot help
    if spec.rtsp_transport != "auto" and hint == "the camera does not offer this transport":
        hint = f"the camera does not offer RTP over {spec.rtsp_transport.upper()}: set rtsp_transport to auto"
    elif hint == "the camera does not offer this transport":
        hint = "the camera offers neither RTP over TCP nor over UDP"
    raise SourceError(f"cannot open {what} {spec.display} {'; '.join(failures)}; {hint}")


Matrix = tuple[int, int, int, int]
_IDENTITY: Matrix = (1, 0, 0, 1)


def display_matrix(raw: object) -> Matrix | None:
    """The signs ``(a, b, c, d)`` of the 2×2 part of a decoded frame's display matrix (FFmpeg's
    ``AV_FRAME_DATA_DISPLAYMATRIX``: a display point is ``x' = a·x + c·y``, ``y' = b·x + d·y`` in pixels, y down),
    ``(1, 0, 0, 1)`` for an upright one, or ``None`` when the frame carries none. Only multiples of 90° (with
    mirroring) are represented; other angles read as upright."""
    side = getattr(raw, "side_data", None)
    if not side:
        return None
    try:
        sd = side.get(_DISPLAYMATRIX)
    except (KeyError, TypeError, ValueError):
        return None
    if sd is None:
        return None
    m = np.frombuffer(bytes(sd), dtype="<i4")
    if m.size < 9:
        return None
    a, b, c, d = (int(np.sign(round(float(v) / 65536.0, 3))) for v in (m[0], m[1], m[3], m[4]))
    axis_aligned = (a != 0 and d != 0 and b == 0 and c == 0) or (a == 0 and d == 0 and b != 0 and c != 0)
    return (a, b, c, d) if axis_aligned else _IDENTITY


class Orientation:
    """The display orientation of one decoded stream, followed frame by frame.

    A container's display matrix (a phone's ``rotate``) comes with every frame. A live H.264 stream says it
    in-band, in a display-orientation message on some frames only; as the standard has it, the orientation then
    holds until the stream says otherwise or a key frame without one starts a new sequence. The message of a new
    sequence may reach a later frame than its key frame, though: FFmpeg's ``h264_metadata`` (how a relay turns a
    stream) writes it after the key frame's picture, and with B-frames the picture it lands on is shown up to a
    few frames later. So after a key frame without a message the orientation holds for :attr:`GRACE` more frames,
    and ends only if none comes by then (a stream that really stopped saying it is turned is upright from there);
    otherwise every key frame of such a relay came out unturned among turned frames. Feed every decoded frame to
    :meth:`update`, in order (also frames the analysis skips); start a new one on each connection."""

    #: frames after a key frame without a message during which the orientation still holds (B-frame reordering
    #: puts the message's picture at most 16 frames after the key frame in H.264)
    GRACE = 16

    def __init__(self) -> None:
        self.matrix: Matrix | None = None
        self._since_key: int | None = None  # frames since a key frame that came without a message

    def update(self, raw: object) -> Matrix | None:
        """The orientation that applies to ``raw``; ``None``: upright."""
        found = display_matrix(raw)
        if found is not None:
            self.matrix = None if found == _IDENTITY else found
            self._since_key = None
        elif self.matrix is not None:
            if self._since_key is not None:
                self._since_key += 1
            elif getattr(raw, "key_frame", False):
                self._since_key = 0
            if self._since_key is not None and self._since_key >= self.GRACE:
                self.matrix, self._since_key = None, None
        return self.matrix


def upright(image: np.ndarray, matrix: Matrix | None) -> np.ndarray:
    """``image`` (H×W×C) as it is meant to be displayed under ``matrix`` (see :func:`display_matrix`):
    rotated by a multiple of 90° and/or mirrored; the same array when ``matrix`` is ``None``."""
    if matrix is None:
        return image
    a, b, c, d = matrix
    if a == 0:  # quarter turn: x' follows y and y' follows x
        out = image.swapaxes(0, 1)
        if b < 0:
            out = out[::-1]
        if c < 0:
            out = out[:, ::-1]
    else:
        out = image
        if a < 0:
            out = out[:, ::-1]
        if d < 0:
            out = out[::-1]
    return np.ascontiguousarray(out)


def frame_rgb(raw: Any, matrix: Matrix | None) -> np.ndarray:
    """A decoded frame as contiguous RGB pixels, turned and mirrored as ``matrix`` says (see
    :class:`Orientation`: phone videos and cameras mounted on their side record rotation as metadata)."""
    return np.ascontiguousarray(upright(raw.to_ndarray(format="rgb24"), matrix))


class VideoSource:
    """Decodes one source into frames.

    Args:
        spec: what to open.
        camera_id: stamped on every frame.
        analysis_fps: if set, skip frames so that at most this many a second (media time) are yielded.
        open_timeout: seconds to wait for a network stream to open or deliver a packet.
        decode: frames the decoder may skip, the decoder, its threads (default: every frame, on the CPU, on the
            calling thread); its ``analysis_fps`` is set to this source's.

    Attributes:
        frames_decoded: frames decoded so far.
        stats: what the decoder did (frames it skipped, its CPU time, which decoder).
    """

    def __init__(
        self,
        spec: SourceSpec,
        camera_id: str = "cam0",
        analysis_fps: float | None = None,
        open_timeout: float = 10.0,
        decode: DecodeOptions | None = None,
    ) -> None:
        self.spec = spec
        self.camera_id = camera_id
        self.analysis_fps = analysis_fps
        self.open_timeout = open_timeout
        self.decode = replace(decode or DecodeOptions(), analysis_fps=analysis_fps)
        self.frames_decoded = 0
        self.stats = DecodeStats()
        self.fps: float | None = None
        self.segment = 0  # connection number; a file is read in one go (see LiveSource for streams)

    def _open(self) -> av.container.InputContainer:
        return open_container(self.spec, self.open_timeout, decoder=self.decode.decoder)

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
            self.fps = stream_fps(stream)
            min_gap = 1.0 / self.analysis_fps if self.analysis_fps else 0.0
            next_ts = -1.0
            index = -1
            # media time counts from the first frame (0.0), as a player shows it; files often start at pts > 0
            t0: float | None = None
            orientation = Orientation()
            shown = 0  # frames the decoder skipped that index already counts
            try:
                for av_frame in decode_frames(container, stream, self.decode, self.stats):
                    matrix = orientation.update(av_frame)
                    index += 1 + self.stats.shown_skipped - shown
                    shown = self.stats.shown_skipped
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
                    yield Frame(image=frame_rgb(av_frame, matrix), ts=ts, index=index, camera_id=self.camera_id)
            except av.error.FFmpegError as exc:
                read = self.frames_decoded + self.stats.codec_skipped  # a frame the decoder skipped was read
                raise SourceBroken(
                    f"{self.spec.display}: video broke off after {read} frames: {self.spec.redact(str(exc))}", read
                ) from None
            if self.spec.kind == "file" and index < 0:
                raise SourceError(f"{self.spec.display}: the video has no decodable frames")
            expected = int(stream.frames or 0)
            seen = self.frames_decoded + self.stats.codec_skipped  # a skipped frame was read, not lost
            if self.spec.kind == "file" and expected > 0 and seen < expected - max(2, expected // 100):
                raise SourceBroken(
                    f"{self.spec.display}: video ended early, after {seen} of its {expected} frames "
                    "(the file looks truncated or damaged)",
                    self.frames_decoded,
                )
        finally:
            container.close()
