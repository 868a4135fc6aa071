"""Pillow, as :mod:`metrosight.ingest.images` uses it: loaded at first use with the HEIF opener registered and
libtiff quiet, and the conversions of an opened image to the 8-bit RGB array the pipeline takes.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Final

import numpy as np

if TYPE_CHECKING:  # Pillow itself is loaded at first use (pil())
    from PIL import Image

_PIL_LOCK: Final = threading.Lock()


def pil() -> ModuleType:
    """Pillow with the HEIF opener registered (once, at first use: nothing happens at import time)."""
    with _PIL_LOCK:
        return _pil_registered()


@functools.cache
def _pil_registered() -> ModuleType:
    from PIL import Image  # Pillow: heavy, loaded on first use

    try:
        from pillow_heif import register_heif_opener  # pillow-heif: native HEIF decoder, loaded on first use

        register_heif_opener()
    except ImportError:  # HEIC is then refused by name (images.decode_photo)
        pass
    _quiet_libtiff()
    return Image


def _quiet_libtiff() -> None:
    """Clear libtiff's process-wide warning and error handlers, which print on stderr by themselves (a damaged
    TIFF gave "ZIPDecode: Decoding error at scanline 0, incorrect data check." or "tempfile.tif: Using code not yet
    in table." above the one-line refusal, in the CLI and in the server's log). The decoder's return code still
    tells that the file is damaged. Linux: the library Pillow loaded is found in /proc/self/maps (elsewhere the
    handlers are left as they are)."""
    try:
        from PIL import _imaging  # noqa: F401 - loads Pillow's libtiff

        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            paths = {
                part
                for part in (line.split()[-1] for line in fh if line.strip())
                if part.startswith("/") and Path(part).name.startswith("libtiff")
            }
        for path in paths:
            lib = ctypes.CDLL(path)
            for fn in (
                "TIFFSetErrorHandler",
                "TIFFSetErrorHandlerExt",
                "TIFFSetWarningHandler",
                "TIFFSetWarningHandlerExt",
            ):
                set_handler = getattr(lib, fn, None)
                if set_handler is not None:
                    set_handler.restype = ctypes.c_void_p
                    set_handler.argtypes = [ctypes.c_void_p]
                    set_handler(None)
    except (OSError, ImportError):  # no /proc, or no libtiff: Pillow's own messages stay as they are
        pass


def heif_available() -> bool:
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        return False
    return True


def exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation of an opened photo (1 when absent or unreadable; HEIF: pillow-heif applies it)."""
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - an unreadable EXIF block: the pixels as stored
        return 1


def reduced(im: Image.Image, max_side: int) -> Image.Image:
    """A loaded image whose longer side exceeds ``max_side`` reduced by the smallest integer factor that brings it
    within (box averaging, in Pillow's own mode; palette and 1-bit images are expanded first, 16-bit grey is
    averaged as 16-bit), so conversions and copies run on the small image."""
    from PIL import Image  # Pillow: heavy, loaded on first use

    w, h = im.size
    k = -(-max(w, h) // max_side)
    if k <= 1:
        return im
    if im.mode in ("1", "P", "PA"):
        im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else ("L" if im.mode == "1" else "RGB"))
    if im.mode.startswith("I;16"):
        import cv2  # OpenCV: heavy, loaded on first use

        a = np.asarray(im).astype(np.uint16, copy=False)
        small = cv2.resize(a, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
        return Image.fromarray(np.ascontiguousarray(small))
    return im.reduce(k)


def to_rgb(im: Image.Image) -> Image.Image:
    """``im`` as an 8-bit RGB image: 16-bit grey scaled (not clipped), transparency flattened onto white."""
    from PIL import Image  # Pillow: heavy, loaded on first use

    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if a.max(initial=0) > 255 else 255.0
        im = Image.fromarray(np.clip(a * (255.0 / top), 0, 255).astype(np.uint8), "L")
        mode = "L"
    if mode == "P" and "transparency" in im.info or mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB") if mode != "RGB" else im
