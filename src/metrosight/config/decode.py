"""The ``ingest.decode`` section: which frames the decoder may skip, hardware decoding, decoder threads."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from metrosight.config.common import Section


class DecodeConfig(Section):
    """How video is decoded (every source: files, cameras, replayed files).

    ``skip``: ``auto`` lets the decoder leave out non-reference frames (most B-frames) that the analysis rate does
    not need — only where the frames still decoded leave no gap longer than one analysis interval, so the
    analysis gets as many frames a second as with every frame decoded; nothing is skipped without an analysis rate
    or on a stream without non-reference frames (most IP cameras send none). ``nonref`` skips every non-reference
    frame whatever the rate (it may lower the analysed rate); ``off`` decodes every frame.

    ``hwaccel``: ``none`` decodes on the CPU; ``cuda`` (NVDEC) or ``vaapi`` decode on that device and refuse to start
    without it; ``auto`` uses one of them where present and the CPU otherwise (one log line says which).
    """

    skip: Literal["auto", "off", "nonref"] = Field(
        "auto", description="skip non-reference frames the analysis rate does not need: auto, off or nonref"
    )
    hwaccel: Literal["none", "auto", "cuda", "vaapi"] = Field(
        "none", description="hardware decoding through FFmpeg: none, auto (where present), cuda (NVDEC) or vaapi"
    )
    hwaccel_device: str | None = Field(
        None,
        max_length=200,
        description="the device: a CUDA device index (0) or a VAAPI render node (/dev/dri/renderD128); None: default",
    )
    threads: int = Field(
        1,
        ge=0,
        le=64,
        description="decoder threads per source; 1 decodes on the source's own thread (its CPU time is the camera's "
        "decode cost in the metrics); 0: FFmpeg's choice (frame threading on every core: a frame of latency per "
        "thread, and its CPU time is not counted per camera)",
    )

    @field_validator("skip", mode="before")
    @classmethod
    def _yaml_off(cls, v: Any) -> Any:
        """YAML reads an unquoted ``off`` as false (and ``on`` as true): take them as the words they were."""
        if v is False:
            return "off"
        if v is True:
            return "auto"
        return v
