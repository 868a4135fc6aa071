"""Still photos: the one place where a photo's bytes become an RGB array, with clear errors.

Every host reads photos here: the CLI (`enroll`, `--from-dir`, `identify`), the API's uploads (decoded from the
request's bytes in memory, never written to disk), and the evaluation tools.

A photo is recognised by its content (magic bytes), never by its file name's extension, and decoded by Pillow (with
pillow-heif for HEIC/HEIF; AVIF is Pillow's own). Before any pixel is decoded its header is read and the declared
size checked against the pixel budget (``photos.max_megapixels``), so a small file that declares a huge image is
refused in milliseconds with bounded memory; photos larger than ``photos.max_side`` are decoded at a reduced size
(JPEG: the decoder's own 1/2, 1/4, 1/8 scaling) and scaled down, so memory stays bounded for every allowed photo.
A damaged file is refused by its format's name ("truncated or damaged JPEG"); decoder warnings never reach the
terminal (Pillow's decoders are quiet, OpenCV's libjpeg is not used here).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final

import numpy as np

if TYPE_CHECKING:  # Pillow itself is loaded at first use (ingest.pillow.pil)
    from PIL.Image import Image as PILImage

from metrosight.config.model import PhotosConfig
from metrosight.ingest.formats import format_word, sniff, what_else
from metrosight.ingest.pillow import exif_orientation, heif_available, pil, reduced, to_rgb

#: formats read, in the words used in messages
SUPPORTED = "JPEG, PNG, HEIC/HEIF, AVIF, WebP, GIF, TIFF, BMP, PNM"
MAX_IMAGE_BYTES = 40_000_000
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_SIDE = 4096

#: Pillow plugins allowed to open a photo (nothing else is tried: no PSD, EPS, ICO … parsers on user input);
#: "JPEG" also opens multi-picture (MPO) JPEGs from phones
_PIL_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "PPM", "AVIF", "HEIF")
#: OS bookkeeping files that sit in photo folders and are skipped without a word
OS_FILES: Final = frozenset({"thumbs.db", "desktop.ini", "icon\r", ".ds_store"})


class ImageError(Exception):
    """A photo cannot be used; the message names the photo (its label) and the reason.

    Attributes:
        label: what the photo is called in messages (a path on the CLI, the uploaded file's name in the API).
        reason: why it cannot be used, without the label.
    """

    def __init__(self, label: str, reason: str) -> None:
        super().__init__(f"{label}: {reason}")
        self.label = label
        self.reason = reason


class PhotoTooLarge(ImageError):
    """The photo declares more pixels than the budget, or the file is larger than the byte limit (API: 413)."""


@dataclass(frozen=True, slots=True)
class PhotoLimits:
    """What a photo may cost.

    Attributes:
        max_pixels: declared width × height above which a photo is refused before decoding.
        max_side: photos whose longer side is larger are decoded at reduced size and scaled down to it, pixels.
        max_bytes: file size above which a photo is refused before reading, bytes.
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_side: int = DEFAULT_MAX_SIDE
    max_bytes: int = MAX_IMAGE_BYTES

    @classmethod
    def of(cls, cfg: PhotosConfig) -> PhotoLimits:
        """From the ``photos`` section of the configuration."""
        return cls(
            max_pixels=int(round(cfg.max_megapixels * 1_000_000)),
            max_side=int(cfg.max_side),
            max_bytes=int(round(cfg.max_file_mb * 1_000_000)),
        )


@dataclass(frozen=True, slots=True)
class Photo:
    """A decoded photo.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB, EXIF orientation applied, longer side at most ``max_side``.
        sha256: hex SHA-256 of the file's bytes (the photo's identity for re-enrolment and the audit log).
        label: what the photo is called in messages (a path, or an uploaded file's name).
        name: the file name stored with a template (no folders).
        format: the format found in its content (``"JPEG"``, ``"HEIF"``, …).
        size: ``(width, height)`` as stored in the file, pixels.
    """

    image: np.ndarray
    sha256: str
    label: str
    name: str
    format: str
    size: tuple[int, int]

    @property
    def scale(self) -> float:
        """Decoded size / stored size (1.0 unless the photo was larger than ``max_side``)."""
        return max(self.image.shape[:2]) / max(self.size) if max(self.size) else 1.0


def decode_photo(data: bytes, label: str, limits: PhotoLimits | None = None, name: str | None = None) -> Photo:
    """Decode a photo from its bytes (in memory; nothing is written anywhere).

    Args:
        data: the file's bytes.
        label: what to call the photo in messages.
        limits: pixel budget and working size (default :class:`PhotoLimits`).
        name: the file name to store (default: the last part of ``label``).

    Raises:
        PhotoTooLarge: the file exceeds ``max_bytes`` or its header declares more than ``max_pixels`` pixels.
        ImageError: empty, not a photo (what it looks like instead), a damaged file of a named format, or a
            format variant that is not supported (e.g. 32-bit float TIFF).
    """
    limits = limits or PhotoLimits()
    name = name if name is not None else Path(label).name
    if not data:
        raise ImageError(label, "file is empty")
    if len(data) > limits.max_bytes:
        raise PhotoTooLarge(label, _bytes_message(len(data), limits.max_bytes))
    head = data[:64]
    fmt = sniff(head)
    if fmt is None:
        what = what_else(head)
        raise ImageError(label, f"not an image ({what + '; ' if what else ''}supported: {SUPPORTED})")
    if fmt == "JPEG":
        jpeg = _decode_jpeg(data, label, name, limits)
        if jpeg is not None:
            return jpeg
    Image = pil()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DecompressionBombWarning, EXIF and palette warnings: we judge ourselves
        try:
            im = Image.open(io.BytesIO(data), formats=_PIL_FORMATS)
        except Image.DecompressionBombError as exc:
            found = re.search(r"\((\d+) pixels\)", str(exc))
            pixels = int(found.group(1)) if found else None
            raise PhotoTooLarge(label, _budget_message(None, pixels, limits.max_pixels)) from None
        except Exception:  # noqa: BLE001 - any parser failure means the header is unreadable
            if fmt == "HEIF" and not heif_available():
                raise ImageError(
                    label, "HEIC/HEIF photos need the pillow-heif package (pip install pillow-heif)"
                ) from None
            raise ImageError(label, f"truncated or damaged {format_word(fmt)}") from None
        try:
            return _decode_opened(im, data, label, name, fmt, limits)
        finally:
            im.close()


#: libjpeg messages that mean the file is damaged (anything else but these is refused as damaged too, except below)
_JPEG_HARMLESS = ("extraneous bytes before marker",)  # padding some cameras write; the picture is whole
#: EXIF orientation -> the numpy operation that shows the picture upright
_ORIENT: Final[Mapping[int, Callable[[np.ndarray], np.ndarray]]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def _decode_jpeg(data: bytes, label: str, name: str, limits: PhotoLimits) -> Photo | None:
    """A JPEG through libjpeg-turbo (simplejpeg) in strict mode: a file cut short or with damaged data is refused
    instead of decoded with grey or smeared rows, and the decoder's own 1/2 … 1/8 scaling decodes large photos
    small. None for CMYK/YCCK JPEGs (Pillow converts those)."""
    import simplejpeg  # simplejpeg: native decoder, loaded on first use

    try:
        h, w, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        raise ImageError(label, "truncated or damaged JPEG") from None
    if w <= 0 or h <= 0:
        raise ImageError(label, f"truncated or damaged JPEG (it declares a {w}×{h} image)")
    if w * h > limits.max_pixels:
        raise PhotoTooLarge(label, _budget_message((w, h), None, limits.max_pixels))
    if colorspace in ("CMYK", "YCCK"):
        return None
    # the smallest of libjpeg's 1/1 … 1/8 scalings that keeps the longer side at least half of max_side (then
    # scaled down to max_side): a 48 MP photo is decoded at 1/2, never at full size
    f = min(1.0, 0.5 * limits.max_side / max(w, h))
    size = {"min_width": int(np.ceil(w * f)), "min_height": int(np.ceil(h * f))}
    try:
        rgb = simplejpeg.decode_jpeg(data, "RGB", strict=True, **size)
    except ValueError as exc:
        if not any(m in str(exc) for m in _JPEG_HARMLESS):
            raise ImageError(label, "truncated or damaged JPEG") from None
        try:
            rgb = simplejpeg.decode_jpeg(data, "RGB", strict=False, **size)
        except ValueError:
            raise ImageError(label, "truncated or damaged JPEG") from None
    rgb = _ORIENT.get(_jpeg_orientation(data), lambda a: a)(rgb)
    rgb = _fit(rgb, limits.max_side)
    return Photo(np.ascontiguousarray(rgb), hashlib.sha256(data).hexdigest(), label, name, "JPEG", (w, h))


def _jpeg_orientation(data: bytes) -> int:
    """The EXIF orientation tag of a JPEG (1 when absent or unreadable); reads the header only."""
    Image = pil()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=["JPEG"]) as im:
                return int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - no usable EXIF: as stored
        return 1


def _fit(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """``rgb`` scaled down (area averaging) so that its longer side is at most ``max_side``."""
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    import cv2  # OpenCV: heavy, loaded on first use

    f = max_side / max(h, w)
    return cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def _budget_message(size: tuple[int, int] | None, pixels: int | None, budget: int) -> str:
    what = (
        f"{size[0]}×{size[1]} pixels ({size[0] * size[1] / 1e6:.0f} MP)"
        if size
        else (f"{pixels / 1e6:.0f} MP" if pixels else "too many pixels")
    )
    return f"photo declares {what}, above the {budget / 1e6:g} MP budget (photos.max_megapixels); send a smaller photo"


def _bytes_message(n: int, limit: int) -> str:
    return f"file is {n / 1e6:.0f} MB, larger than the {limit / 1e6:g} MB limit (photos.max_file_mb)"


def _decode_opened(im: PILImage, data: bytes, label: str, name: str, fmt: str, limits: PhotoLimits) -> Photo:
    from PIL import Image  # Pillow: heavy, loaded on first use

    w, h = im.size
    if w <= 0 or h <= 0:
        raise ImageError(label, f"truncated or damaged {format_word(fmt)} (it declares a {w}×{h} image)")
    if w * h > limits.max_pixels:
        raise PhotoTooLarge(label, _budget_message((w, h), None, limits.max_pixels))
    mode = im.mode
    if mode == "F":
        raise ImageError(label, f"32-bit float {format_word(fmt)} is not supported; save it as 8-bit")
    if mode in ("I", "I;32", "I;32B", "I;32L") and fmt == "TIFF":
        raise ImageError(label, f"32-bit integer {format_word(fmt)} is not supported; save it as 8-bit")
    if fmt == "JPEG" and max(w, h) > limits.max_side:  # CMYK JPEGs: the decoder's own 1/2 … 1/8 scaling
        f = limits.max_side / max(w, h)
        im.draft(im.mode, (max(1, int(w * f)), max(1, int(h * f))))
    try:
        im.load()
    except Image.DecompressionBombError:
        raise PhotoTooLarge(label, _budget_message((w, h), None, limits.max_pixels)) from None
    except MemoryError:
        raise PhotoTooLarge(label, _budget_message((w, h), None, limits.max_pixels)) from None
    except Exception:  # noqa: BLE001 - truncated data, broken streams, bad tables: all mean the same to a user
        raise ImageError(label, f"truncated or damaged {format_word(fmt)}") from None
    orientation = exif_orientation(im)
    # reduced in Pillow before any conversion, rotation or copy: one full-size image is held, not four (a 49 MP
    # 16-bit grey PNG of 110 KB took 1.3 GB as float64 copies; now the decoded image and its reduction)
    im = reduced(im, limits.max_side)
    arr = _fit(np.asarray(to_rgb(im), dtype=np.uint8), limits.max_side)
    arr = _ORIENT.get(orientation, lambda a: a)(arr)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.size == 0:
        raise ImageError(label, f"truncated or damaged {format_word(fmt)}")
    return Photo(np.ascontiguousarray(arr), hashlib.sha256(data).hexdigest(), label, name, fmt, (w, h))


def read_photo(path: Path, limits: PhotoLimits | None = None, label: str | None = None) -> Photo:
    """Read and decode a photo file (see :func:`decode_photo`); the size is checked before the file is read.

    Raises:
        ImageError: missing, a folder, unreadable, too large, not a photo, or damaged (the message names it).
    """
    limits = limits or PhotoLimits()
    path = Path(path)
    label = label if label is not None else str(path)
    try:
        if path.is_dir():
            raise ImageError(label, "is a folder, not a photo (use --from-dir for a folder per person)")
        # opened without blocking (a FIFO would wait for a writer) and judged by what was opened: only a regular
        # file is read, and never more than the byte limit (/dev/zero declares 0 bytes and never ends)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb", buffering=0) as fh:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ImageError(label, f"not a regular file ({_file_kind(st.st_mode)}); give a photo file")
            if st.st_size > limits.max_bytes:
                raise PhotoTooLarge(label, _bytes_message(st.st_size, limits.max_bytes))
            data = _read_at_most(fh, limits.max_bytes + 1)
        if len(data) > limits.max_bytes:  # it grew while being read
            raise PhotoTooLarge(label, _bytes_message(len(data), limits.max_bytes))
    except FileNotFoundError:
        raise ImageError(label, "file not found") from None
    except PermissionError:
        raise ImageError(label, "cannot read: permission denied") from None
    except OSError as exc:
        raise ImageError(label, f"cannot read: {exc.strerror or exc}") from None
    return decode_photo(data, label, limits, name=path.name)


def _file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"


def _read_at_most(fh: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes of an open file (fewer at its end)."""
    chunks, left = [], n
    while left > 0:
        chunk = fh.read(min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def photo_or_error(path: Path, limits: PhotoLimits | None = None) -> Photo | ImageError:
    """:func:`read_photo`, with a refusal returned instead of raised (for lazy per-photo pipelines)."""
    try:
        return read_photo(path, limits)
    except ImageError as exc:
        return exc


def load_image(path: Path, limits: PhotoLimits | None = None) -> tuple[np.ndarray, str]:
    """Read a photo: ``(image, sha256)``, ``(H, W, 3)`` uint8 RGB. See :func:`read_photo`."""
    photo = read_photo(path, limits)
    return photo.image, photo.sha256


def is_hidden(path: Path) -> bool:
    """OS bookkeeping files and hidden entries (``.DS_Store``, ``._IMG.jpg``, ``Thumbs.db`` …): skipped silently."""
    return path.name.startswith(".") or path.name.lower() in OS_FILES


def folder_entries(folder: Path) -> list[Path]:
    """Every entry directly in ``folder`` except hidden ones, sorted by name: each is either used or refused with
    its reason by the caller (nothing is dropped silently)."""
    return sorted((p for p in Path(folder).iterdir() if not is_hidden(p)), key=lambda p: p.name)


def is_photo_file(path: Path) -> bool:
    """Whether ``path`` is a file whose first bytes are those of a supported photo format (content, not name)."""
    try:
        with Path(path).open("rb") as fh:
            return sniff(fh.read(64)) is not None
    except OSError:
        return False


#: names that claim to be photos: such a file is listed even when its content is not a photo (then refused by
#: :func:`read_photo` with the reason, not skipped)
PHOTO_SUFFIXES: Final = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".png",
        ".webp",
        ".gif",
        ".tif",
        ".tiff",
        ".bmp",
        ".dib",
        ".pbm",
        ".pgm",
        ".ppm",
        ".pnm",
        ".heic",
        ".heif",
        ".hif",
        ".avif",
    }
)


def photos_in(folder: Path) -> list[Path]:
    """Files directly in ``folder`` that are photos by content, or claim to be by their name (any case), sorted by
    name. For evaluation sets; enrolment lists every file with :func:`folder_entries`, so none is skipped without a
    reason."""
    return [
        p for p in folder_entries(folder) if p.is_file() and (p.suffix.lower() in PHOTO_SUFFIXES or is_photo_file(p))
    ]


def iter_photos(paths: list[Path], limits: PhotoLimits | None = None) -> Iterator[Photo | ImageError]:
    """:func:`photo_or_error` over ``paths``, one at a time (only one decoded photo held at once)."""
    for p in paths:
        yield photo_or_error(p, limits)
