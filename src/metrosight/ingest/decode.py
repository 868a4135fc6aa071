"""The decode loop every source shares: read packets, skip the frames the analysis does not need, decode, measure.

:func:`decode_frames` is used by :class:`~metrosight.ingest.source.VideoSource` (files in one go) and by
:class:`~metrosight.ingest.session.PyAvSession` (cameras and replayed files). Packet by packet it asks the
:class:`~metrosight.ingest.skip.SkipPlanner` whether the frame may be left undecoded (FFmpeg's ``skip_frame``
``NONREF`` for that packet), and counts what the decoder did in a :class:`~metrosight.ingest.state.DecodeStats`:
frames skipped, the decoding thread's CPU time (``time.thread_time``: reading and decoding, not the consumer's
work between frames), the decoder used.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from metrosight.config.decode import DecodeConfig
from metrosight.ingest.hwaccel import SOFTWARE, Decoder, choose_decoder
from metrosight.ingest.skip import SKIPPABLE, SkipMode, SkipPlanner, is_reference, nal_length_size
from metrosight.ingest.state import DecodeStats


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """How one source is decoded.

    Attributes:
        skip: ``auto``, ``off`` or ``nonref`` (see :class:`~metrosight.ingest.skip.SkipPlanner`).
        analysis_fps: the source's analysis rate, frames a second (``None``: every frame; nothing is skipped in
            ``auto``).
        decoder: the CPU or a hardware device (:func:`~metrosight.ingest.hwaccel.choose_decoder`).
        threads: decoder threads (1: on the calling thread; 0: FFmpeg's choice).
    """

    skip: SkipMode = "off"
    analysis_fps: float | None = None
    decoder: Decoder = SOFTWARE
    threads: int = 1

    @classmethod
    def from_config(cls, cfg: DecodeConfig, analysis_fps: float | None) -> DecodeOptions:
        """The options of the ``ingest.decode`` section for a source analysed at ``analysis_fps``.

        Raises:
            HwaccelError: an explicit ``cuda`` or ``vaapi`` decoder cannot be used here.
        """
        return cls(cfg.skip, analysis_fps, choose_decoder(cfg.hwaccel, cfg.hwaccel_device), cfg.threads)

    def planner(self, fps: float | None) -> SkipPlanner:
        """A fresh planner for a stream of ``fps`` frames a second (``None``: unknown)."""
        gap = 1.0 / self.analysis_fps if self.analysis_fps else 0.0
        return SkipPlanner(self.skip, gap, 1.0 / fps if fps else None)


def stream_fps(stream: Any) -> float | None:
    """The video stream's frame rate (average, else guessed), frames a second, or ``None``."""
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else None


def decode_frames(
    container: Any,
    stream: Any,
    opts: DecodeOptions,
    stats: DecodeStats,
    after_packet: Callable[[], None] | None = None,
) -> Iterator[Any]:
    """Decode ``stream`` of ``container`` (PyAV), leaving out the frames ``opts`` lets it skip; yields
    ``av.VideoFrame`` values in display order and updates ``stats`` before each. ``after_packet`` is called once
    each packet's frames were handed out (a watchdog may raise from it).

    Raises:
        av.error.FFmpegError: reading or decoding failed (the caller names the source).
    """
    ctx = stream.codec_context
    if not ctx.is_open:  # threads are set before the decoder opens (PyAV refuses later)
        if opts.threads == 1:
            ctx.thread_count = 1
        else:
            ctx.thread_type = "AUTO"
            ctx.thread_count = opts.threads
    planner = opts.planner(stream_fps(stream))
    codec, length_size = ctx.name, nal_length_size(ctx.name, ctx.extradata)
    plan = planner.active and codec in SKIPPABLE  # other codecs (MJPEG, MPEG-4) are decoded whole
    skipping = False
    skipped: list[int] = []  # presentation timestamps of skipped frames not yet passed by a decoded one
    started = time.thread_time()
    for packet in container.demux(stream):
        skip = False  # a packet without a timestamp, or the flush at the end, is decoded whole
        if plan and packet.size and packet.pts is not None:
            skip = planner.skip(
                float(packet.pts * packet.time_base), is_reference(memoryview(packet), codec, length_size)
            )
        if skip != skipping:
            ctx.skip_frame, skipping = ("NONREF" if skip else "DEFAULT"), skip
        if skip:
            stats.codec_skipped += 1
            heapq.heappush(skipped, packet.pts)
        for frame in packet.decode():
            if frame.pts is not None:
                while skipped and skipped[0] < frame.pts:
                    heapq.heappop(skipped)
                    stats.shown_skipped += 1
            stats.decoder = opts.decoder.kind if ctx.is_hwaccel else "software"
            stats.decode_seconds += time.thread_time() - started
            yield frame
            started = time.thread_time()
        if after_packet is not None:
            after_packet()
    stats.decode_seconds += time.thread_time() - started
