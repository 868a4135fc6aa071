"""Building sources from the configuration."""

from __future__ import annotations

import threading

from metrosight.config.model import IngestConfig
from metrosight.ingest.backoff import Backoff
from metrosight.ingest.decode import DecodeOptions
from metrosight.ingest.hwaccel import HwaccelError
from metrosight.ingest.live import LiveSource
from metrosight.ingest.session import pyav_opener
from metrosight.ingest.source import SourceError, SourceSpec, VideoSource


def decode_options(cfg: IngestConfig, analysis_fps: float | None) -> DecodeOptions:
    """How a source analysed at ``analysis_fps`` frames a second is decoded (the ``ingest.decode`` section).

    Raises:
        SourceError: ``cfg.decode.hwaccel`` asks for a device that cannot be used here (one line: what to do).
    """
    try:
        return DecodeOptions.from_config(cfg.decode, analysis_fps)
    except HwaccelError as exc:
        raise SourceError(str(exc)) from None


def file_source(spec: SourceSpec, camera_id: str, cfg: IngestConfig, analysis_fps: float | None) -> VideoSource:
    """A :class:`VideoSource` decoding ``spec`` in one go at ``analysis_fps`` (``None``: every frame), with the
    ``ingest`` section's timeouts and decoding.

    Raises:
        SourceError: ``cfg.decode.hwaccel`` asks for a device that cannot be used here.
    """
    return VideoSource(spec, camera_id, analysis_fps, cfg.open_timeout_seconds, decode_options(cfg, analysis_fps))


def live_source(
    spec: SourceSpec,
    camera_id: str,
    cfg: IngestConfig,
    analysis_fps: float | None = None,
    keep_trying: bool = True,
    wake: threading.Event | None = None,
) -> LiveSource:
    """A :class:`LiveSource` for ``spec`` with the reconnect, watchdog and rate settings of ``cfg``.

    Args:
        spec: the source; a file is replayed once at its own frame rate (a simulated camera) and then stops.
        camera_id: the camera.
        cfg: the ``ingest`` section.
        analysis_fps: the camera's own rate (overrides ``cfg.analysis_fps``).
        keep_trying: keep retrying a camera that is down (a node) rather than giving up (a one-off run).
        wake: an event set whenever a frame or state change is ready.

    Raises:
        SourceError: ``cfg.decode.hwaccel`` asks for a device that cannot be used here.
    """
    stop = threading.Event()
    fps = analysis_fps if analysis_fps is not None else cfg.analysis_fps
    decode = decode_options(cfg, fps)
    src = LiveSource(
        camera_id,
        pyav_opener(spec, cfg.open_timeout_seconds, cfg.stall_timeout_seconds, stop, decode),
        target=spec.display,
        analysis_fps=fps,
        stall_timeout=cfg.stall_timeout_seconds,
        backoff=Backoff(
            cfg.reconnect_initial_seconds,
            max(cfg.reconnect_max_seconds, cfg.reconnect_initial_seconds),
            2.0,
            cfg.reconnect_jitter,
        ),
        down_after=cfg.down_after_attempts,
        keep_trying=keep_trying,
        reconnect_on_end=spec.kind != "file",
        wake=wake,
        stop_event=stop,
        redact=spec.redact,
    )
    return src
