"""Hardware decoding through FFmpeg (NVDEC over CUDA, VAAPI): which decoder a source gets.

``ingest.decode.hwaccel`` is ``none`` (the CPU), ``auto`` (CUDA, else VAAPI, else the CPU: one log line says which),
or ``cuda`` / ``vaapi``, which refuse to start without the device (:class:`HwaccelError`, one line saying what is
missing and what to do). A device is probed once per process by opening it for FFmpeg's H.264 decoder. Frames
decoded on the device are copied back to memory, so the rest of the pipeline is the same; FFmpeg decodes a codec
the device cannot (MJPEG on NVDEC, say) on the CPU.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Final, Literal

import av
from av.codec.hwaccel import HWAccel, hwdevices_available

log = logging.getLogger(__name__)

HwaccelKind = Literal["none", "auto", "cuda", "vaapi"]
DEVICES: Final[tuple[str, ...]] = ("cuda", "vaapi")  # the order ``auto`` tries them in

_FIX: Final = {
    "cuda": "install the NVIDIA driver (libcuda) and let the service use /dev/nvidia*",
    "vaapi": "install the VAAPI driver (intel-media-va-driver or mesa-va-drivers), let the service use "
    "/dev/dri/renderD128 (group render), and use a PyAV whose FFmpeg has VAAPI (pip install av --no-binary av "
    "against a system FFmpeg built with it)",
}


class HwaccelError(Exception):
    """The configured hardware decoder cannot be used; the message says what is missing and what to do."""


@dataclass(frozen=True, slots=True)
class Decoder:
    """The decoder a source gets.

    Attributes:
        kind: ``software``, ``cuda`` or ``vaapi``.
        device: the device (CUDA index, VAAPI render node); ``None``: the default one.
    """

    kind: str = "software"
    device: str | None = None

    def hwaccel(self) -> HWAccel | None:
        """A fresh PyAV setting for :func:`av.open` (``None`` for the CPU)."""
        if self.kind == "software":
            return None
        return HWAccel(self.kind, self.device, allow_software_fallback=True)


SOFTWARE: Final = Decoder()


@functools.cache
def device_problem(kind: str, device: str | None = None) -> str | None:
    """Why the ``kind`` device (``cuda``, ``vaapi``) cannot decode here, in words, or ``None`` when it can
    (probed once per process: FFmpeg opens the device for its H.264 decoder)."""
    have = hwdevices_available()
    if kind not in have:
        return f"this PyAV's FFmpeg has no {kind} support (it has {', '.join(have) or 'none'})"
    try:
        HWAccel(kind, device, allow_software_fallback=False).create(av.codec.Codec("h264", "r"))
    except NotImplementedError:
        return f"FFmpeg's H.264 decoder cannot use {kind} here"
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        where = f" {device}" if device else ""
        return f"no {kind} device{where} could be opened ({exc.strerror if isinstance(exc, OSError) else exc})"
    return None


def choose_decoder(kind: HwaccelKind, device: str | None = None) -> Decoder:
    """The decoder for ``ingest.decode.hwaccel`` = ``kind``.

    Raises:
        HwaccelError: ``cuda`` or ``vaapi`` was asked for and cannot be used (one line: what, why, what to do).
    """
    if kind == "none":
        return SOFTWARE
    if kind == "auto":
        return _auto(device)
    why = device_problem(kind, device)
    if why is not None:
        raise HwaccelError(
            f"ingest.decode.hwaccel is {kind} but {why}: {_FIX[kind]}, or set ingest.decode.hwaccel to auto or none"
        )
    return Decoder(kind, device)


@functools.cache
def _auto(device: str | None) -> Decoder:
    """The first usable device, else the CPU; logs the outcome once per process."""
    reasons = []
    for kind in DEVICES:
        why = device_problem(kind, device)
        if why is None:
            log.info("hardware decoding: %s", kind)
            return Decoder(kind, device)
        reasons.append(why)
    log.warning("hardware decoding: none usable, decoding on the CPU (%s)", "; ".join(reasons))
    return SOFTWARE


def decoder_problem(kind: HwaccelKind, device: str | None = None) -> str | None:
    """:func:`choose_decoder`'s refusal as one line, or ``None`` (for start-up checks, ``config check``)."""
    try:
        choose_decoder(kind, device)
    except HwaccelError as exc:
        return str(exc)
    return None
