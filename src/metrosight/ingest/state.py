"""Camera states and ingest counters.

A camera is ``starting`` until its first frame, ``live`` while frames arrive, ``reconnecting`` after it dropped or
stalled, ``down`` after ``down_after_attempts`` failed attempts in a row (it is still retried, at the slowest
backoff, unless the caller gave up), and ``stopped`` once it was shut down or a file ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CameraState(StrEnum):
    STARTING = "starting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    DOWN = "down"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class StateChange:
    """One camera state transition.

    Attributes:
        camera_id: the camera.
        state: the new state.
        previous: the state before (``None`` for the first).
        reason: why, in words (the error of the failed attempt, ``no frame for 5.0 s``, …).
        attempt: consecutive failed attempts so far (0 when live).
        wall_time: Unix time of the change, seconds.
    """

    camera_id: str
    state: CameraState
    previous: CameraState | None
    reason: str
    attempt: int
    wall_time: float


@dataclass(slots=True)
class IngestCounters:
    """Counters of one source since it was created (monotonic; a metrics endpoint exports them as counters).

    Attributes:
        decoded: frames decoded.
        skipped: frames decoded but not due under the analysis rate (``analysis_fps``).
        dropped: frames due for analysis that a newer frame replaced before the analysis took them (load shedding).
        delivered: frames handed to the analysis.
        reconnects: times the source was re-opened after having been live.
        stalls: times the watchdog fired (no frame for ``stall_timeout`` seconds).
        failed_attempts: connection attempts that failed.
        last_frame_wall: Unix time of the latest decoded frame (0 before the first).
        codec_skipped: frames the decoder left undecoded (non-reference frames the analysis rate does not need).
        decode_seconds: CPU time spent reading and decoding, seconds (the decoding thread's own; see
            ``ingest.decode.threads``).
        decoder: ``software``, ``cuda`` or ``vaapi``: what decoded the latest frame.
    """

    decoded: int = 0
    skipped: int = 0
    dropped: int = 0
    delivered: int = 0
    reconnects: int = 0
    stalls: int = 0
    failed_attempts: int = 0
    last_frame_wall: float = 0.0
    codec_skipped: int = 0
    decode_seconds: float = 0.0
    decoder: str = "software"


@dataclass(slots=True)
class DecodeStats:
    """What one connection's decoder did so far (see :func:`metrosight.ingest.decode.decode_frames`).

    Attributes:
        codec_skipped: packets whose frame the decoder was told to skip.
        shown_skipped: skipped frames whose display time came before the latest frame handed out (a frame's index
            counts them, so indexes stay those of full decoding).
        decode_seconds: CPU time of the decoding thread spent reading and decoding, seconds.
        decoder: ``software``, ``cuda`` or ``vaapi``.
    """

    codec_skipped: int = 0
    shown_skipped: int = 0
    decode_seconds: float = 0.0
    decoder: str = "software"
