"""Which frames the decoder may leave undecoded: non-reference frames the analysis rate does not need.

A frame that no other frame refers to (a *non-reference* frame: most B-frames of H.264 and H.265, the "disposable"
frames of some cameras' temporal layers) can be left undecoded without harming any other frame; FFmpeg does so for
the packets sent while ``skip_frame`` is ``NONREF``. This module reads, from a packet's first bytes, whether it
holds such a frame (:func:`is_reference`) and decides packet by packet whether to skip it (:class:`SkipPlanner`):
only when the frames that are decoded still leave no gap longer than one analysis interval, so the analysis gets
as many frames a second as it would with every frame decoded (it may take a neighbouring frame instead of the one it
would have taken: one source frame away where every other frame is a reference, as with x264's B-pyramid; less
than one analysis interval away in any case). Pure: no decoder, no I/O.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Final, Literal

SkipMode = Literal["auto", "off", "nonref"]
SKIPPABLE: Final[tuple[str, ...]] = ("h264", "hevc")  # FFmpeg codec names whose packets :func:`is_reference` reads

#: how far into an Annex B packet (bytes) the first picture's NAL unit is looked for; parameter sets and SEI
#: messages come first and are far smaller
_SCAN_BYTES: Final = 65536
_H264_VCL: Final = range(1, 6)  # coded slices (1-4) and IDR slices (5)
_HEVC_VCL: Final = range(0, 32)
_HEVC_SUBLAYER_NONREF: Final = frozenset(range(0, 15, 2))  # TRAIL_N, TSA_N, STSA_N, RADL_N, RASL_N, RSV_VCL_N10..14
_TOLERANCE: Final = 1e-3  # seconds: timestamps are rounded to their time base


def nal_length_size(codec: str, extradata: bytes | None) -> int:
    """How many bytes prefix each NAL unit of a packet: 1, 2 or 4 for length-prefixed ("AVCC"/"HVCC", as in MP4
    and Matroska) streams, read from the codec's ``extradata``; 0 for Annex B (start codes: RTSP, MPEG-TS, raw
    files, and anything without such an ``extradata``)."""
    if not extradata or extradata[0] != 1:
        return 0
    if codec == "h264" and len(extradata) >= 5:
        return (extradata[4] & 3) + 1
    if codec == "hevc" and len(extradata) >= 22:
        return (extradata[21] & 3) + 1
    return 0


def _nal_headers(data: memoryview, length_size: int) -> list[int]:
    """The first byte of each NAL unit in ``data`` up to the first picture's (length-prefixed or Annex B)."""
    out: list[int] = []
    if length_size:
        pos, n = 0, len(data)
        while pos + length_size < n and len(out) < 64:
            size = int.from_bytes(data[pos : pos + length_size], "big")
            out.append(data[pos + length_size])
            pos += length_size + size
        return out
    head = bytes(data[:_SCAN_BYTES])
    pos = head.find(b"\x00\x00\x01")
    while 0 <= pos < len(head) - 3 and len(out) < 64:
        out.append(head[pos + 3])
        pos = head.find(b"\x00\x00\x01", pos + 3)
    return out


def is_reference(data: memoryview | bytes, codec: str, length_size: int) -> bool | None:
    """Whether the picture in the packet ``data`` may be referred to by other pictures.

    H.264: a slice with ``nal_ref_idc`` other than 0 (every slice of a picture has the same); H.265: a picture
    whose NAL unit type is not a sub-layer non-reference one. These are exactly the pictures FFmpeg still decodes
    when ``skip_frame`` is ``NONREF``.

    Args:
        data: the packet's bytes.
        codec: FFmpeg's codec name (``h264``, ``hevc``; any other gives ``None``).
        length_size: from :func:`nal_length_size`.

    Returns:
        True or False, or ``None`` when it cannot be told (another codec, no picture found in the packet).
    """
    view = memoryview(data)
    for header in _nal_headers(view, length_size):
        if codec == "h264" and (header & 0x1F) in _H264_VCL:
            return (header >> 5) & 3 != 0
        if codec == "hevc" and ((header >> 1) & 0x3F) in _HEVC_VCL:
            return ((header >> 1) & 0x3F) not in _HEVC_SUBLAYER_NONREF
    return None


@dataclass(slots=True)
class SkipPlanner:
    """Decides, packet by packet in decode order, whether the decoder may skip the packet's frame.

    ``off`` never skips. ``nonref`` skips every non-reference frame. ``auto`` skips a non-reference frame only
    when ``analysis_gap`` is set and the decoded frames around it stay within one analysis interval of each other:
    the nearest decoded frame before it (display order) and the next one — already known for a B-frame, whose
    later reference comes first in decode order; otherwise assumed one ``frame_interval`` after it — are at most
    ``analysis_gap`` apart. A packet without a timestamp or whose kind is unknown is decoded.

    Args:
        mode: ``auto``, ``off`` or ``nonref``.
        analysis_gap: seconds between analysed frames (1 / analysis_fps); 0: every frame is analysed.
        frame_interval: the source's seconds per frame (1 / its frame rate); ``None``: unknown (``auto`` then
            skips only B-frames, whose next decoded frame is known).
        horizon: seconds of decoded timestamps kept.
    """

    mode: SkipMode
    analysis_gap: float = 0.0
    frame_interval: float | None = None
    horizon: float = 10.0
    _decoded: list[float] = field(default_factory=list)  # timestamps of decoded frames (sorted, seconds)

    @property
    def active(self) -> bool:
        """Whether the planner can skip anything at all (the decoder may stay in its default mode otherwise)."""
        return self.mode == "nonref" or (self.mode == "auto" and self.analysis_gap > 0)

    def skip(self, ts: float | None, reference: bool | None) -> bool:
        """Whether to skip the next packet (media time ``ts``, seconds; ``reference`` from :func:`is_reference`);
        call once per packet, in decode order."""
        if self.mode == "off" or reference is not False:
            self._remember(ts)
            return False
        if self.mode == "nonref":
            return True
        if ts is None or self.analysis_gap <= 0 or not self._fits(ts):
            self._remember(ts)
            return False
        return True

    def _fits(self, ts: float) -> bool:
        """Whether leaving the frame at ``ts`` undecoded keeps decoded frames within one analysis interval."""
        d = self._decoded
        i = bisect.bisect_left(d, ts)
        if i == 0:
            return False  # nothing decoded before it (the start, or a jump back): decode it
        before = d[i - 1]
        after = d[i] if i < len(d) and d[i] > ts else None
        if after is None:
            if self.frame_interval is None:
                return False
            after = ts + self.frame_interval
        return after - before <= self.analysis_gap + _TOLERANCE

    def _remember(self, ts: float | None) -> None:
        if ts is None:
            return
        d = self._decoded
        if d and ts < d[-1] - self.horizon:  # time went back (a new clock): start over
            d.clear()
        bisect.insort(d, ts)
        while d[0] < d[-1] - self.horizon:
            d.pop(0)
