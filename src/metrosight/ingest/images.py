"""Still photos: reading an image file into an RGB array, with clear errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}
MAX_IMAGE_BYTES = 40 * 1024 * 1024


class ImageError(Exception):
    """A photo cannot be used; the message names the file and the reason."""


def load_image(path: Path) -> tuple[np.ndarray, str]:
    """Read a photo.

    Returns:
        ``(image, sha256)``: ``(H, W, 3)`` uint8 RGB (EXIF orientation applied) and the hex SHA-256 of the file.

    Raises:
        ImageError: missing, unreadable, too large, or not an image.
    """
    import cv2

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not a photo (use --from-dir for a folder per person)") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"{path}: file is {len(data) / 1e6:.0f} MB, larger than the {MAX_IMAGE_BYTES // 2**20} MiB limit")
    if not data:
        raise ImageError(f"{path}: file is empty")
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise ImageError(f"{path}: not an image (supported: JPEG, PNG, BMP, WebP, TIFF, PNM)")
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), hashlib.sha256(data).hexdigest()


def photos_in(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
