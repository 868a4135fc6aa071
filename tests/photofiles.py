"""Photo files built for tests: every supported format, damaged copies, and small files with huge headers.

All are made here from arrays (no shared data needed), so unit tests, integration tests and the bench use the
same inputs.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np

#: format name -> (file suffix, Pillow save format, save options)
FORMATS: dict[str, tuple[str, str, dict]] = {
    "JPEG": (".jpg", "JPEG", {"quality": 92}),
    "PNG": (".png", "PNG", {}),
    "WEBP": (".webp", "WEBP", {"quality": 90}),
    "GIF": (".gif", "GIF", {}),
    "TIFF": (".tif", "TIFF", {}),
    "BMP": (".bmp", "BMP", {}),
    "PNM": (".ppm", "PPM", {}),
    "HEIF": (".heic", "HEIF", {"quality": 90}),
    "AVIF": (".avif", "AVIF", {"quality": 90}),
}


def pattern(width: int = 96, height: int = 64) -> np.ndarray:
    """A colourful ``(height, width, 3)`` uint8 test picture with detail everywhere (damage shows)."""
    y, x = np.mgrid[0:height, 0:width]
    r = (x * 255 // max(width - 1, 1)).astype(np.uint8)
    g = (y * 255 // max(height - 1, 1)).astype(np.uint8)
    b = (((x // 8 + y // 8) % 2) * 200 + 30).astype(np.uint8)
    return np.dstack([r, g, b])


def encode(rgb: np.ndarray, fmt: str, **extra: object) -> bytes:
    """``rgb`` saved in ``fmt`` (a key of :data:`FORMATS`)."""
    from PIL import Image

    if fmt == "HEIF":
        from pillow_heif import register_heif_opener

        register_heif_opener()
    _, pil_fmt, opts = FORMATS[fmt]
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=pil_fmt, **{**opts, **extra})
    return buf.getvalue()


def write(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_bytes(data)
    return p


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    """The first ``keep`` of the bytes: a download or copy cut short."""
    return data[: max(1, int(len(data) * keep))]


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A valid 1-bit grey PNG of ``width`` × ``height`` black pixels: ~110 KB on disk for 30000×30000 (900 MP)."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    chunks = []
    block = row * 256
    for _ in range(height // 256):
        chunks.append(comp.compress(block))
    chunks.append(comp.compress(row * (height % 256)))
    chunks.append(comp.flush())
    idat = b"".join(chunks)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_claiming(width: int = 65500, height: int = 65500) -> bytes:
    """A small real JPEG whose frame header (SOF) is rewritten to claim ``width`` × ``height`` pixels."""
    data = bytearray(encode(pattern(64, 48), "JPEG"))
    i = 2
    while i < len(data):
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[i + 5 : i + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        i += 2 + length
    raise AssertionError("no SOF marker")


def float_tiff(width: int = 40, height: int = 30) -> bytes:
    """A 32-bit float grey TIFF."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.linspace(0, 1, width * height, dtype=np.float32).reshape(height, width), "F").save(buf, "TIFF")
    return buf.getvalue()


# -- faces covered by a mask or a hand (drawn with a face's dlib 5-point landmarks) ---------------------------------
MASKS = {
    "white": (236, 238, 240),
    "light blue": (140, 185, 215),
    "black": (32, 32, 36),
    "pink": (230, 170, 190),
    "patterned": (90, 110, 150),
}


def geometry(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Eye centres, nose base and eye distance from dlib's 5 points."""
    a, b = lm[0:2].mean(axis=0), lm[2:4].mean(axis=0)
    return a, b, float(np.hypot(*(a - b))), lm[4]


def draw_mask(img: np.ndarray, lm: np.ndarray, colour: str, rng: np.random.Generator) -> np.ndarray:
    """A medical mask from the nose bridge to under the chin, cheek to cheek, with pleats and shading."""
    import cv2

    a, b, e, nose = geometry(lm)
    mid = (a + b) / 2
    up = np.array([-(b - a)[1], (b - a)[0]]) / max(e, 1e-6)  # perpendicular to the eye line, pointing down the face
    if up[1] < 0:
        up = -up
    side = (b - a) / max(e, 1e-6)
    top = mid + up * (0.45 * np.dot(nose - mid, up))
    pts = []
    for t in np.linspace(-1, 1, 21):  # top edge over the nose bridge
        pts.append(top + side * t * 1.0 * e - up * 0.12 * e * (1 - t * t))
    bottom = nose + up * 1.45 * e
    for t in np.linspace(1, -1, 21):  # rounded lower edge under the chin
        pts.append(bottom + side * t * 0.95 * e - up * 0.55 * e * t * t)
    poly = np.round(np.array(pts)).astype(np.int32)
    out = img.copy()
    layer = np.zeros_like(img)
    cv2.fillPoly(layer, [poly], MASKS[colour])
    inside = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(inside, [poly], 1)
    noise = rng.normal(0, 6, img.shape[:2])[..., None]
    shade = layer.astype(np.float32) * (0.85 + 0.15 * rng.random()) + noise
    if colour == "patterned":
        yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
        shade += (((xx // max(int(e / 6), 2) + yy // max(int(e / 6), 2)) % 2) * 60)[..., None]
    m = inside.astype(bool)
    out[m] = np.clip(shade[m], 0, 255).astype(np.uint8)
    for k in (0.3, 0.55, 0.8):  # pleats
        p1, p2 = top + up * k * 1.2 * e - side * 0.9 * e, top + up * k * 1.2 * e + side * 0.9 * e
        cv2.line(
            out,
            tuple(int(v) for v in p1),
            tuple(int(v) for v in p2),
            tuple(int(c * 0.75) for c in MASKS[colour]),
            max(1, int(e / 25)),
        )
    out[~m] = img[~m]
    return out


def draw_hand(img: np.ndarray, lm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A hand over mouth and chin: the person's own skin tone (from the forehead), four fingers with grooves."""
    import cv2

    a, b, e, nose = geometry(lm)
    mid = (a + b) / 2
    up = nose - mid
    up = up / max(float(np.hypot(*up)), 1e-6)
    side = np.array([up[1], -up[0]])
    fore = mid - up * 0.6 * e
    y0, x0 = int(np.clip(fore[1], 0, img.shape[0] - 1)), int(np.clip(fore[0], 0, img.shape[1] - 1))
    r = max(2, int(e / 6))
    skin = np.median(img[max(0, y0 - r) : y0 + r, max(0, x0 - r) : x0 + r].reshape(-1, 3), axis=0)
    skin = np.clip(skin * rng.uniform(0.9, 1.1, 3), 0, 255)
    out = img.copy().astype(np.float32)
    centre = nose + up * 0.6 * e
    angle = float(np.degrees(np.arctan2(side[1], side[0])))
    layer = np.zeros(img.shape[:2], np.uint8)
    for i in range(4):  # fingers across the lower face
        c = centre + up * (i - 1.5) * 0.3 * e
        cv2.ellipse(layer, (int(c[0]), int(c[1])), (int(0.95 * e), int(0.15 * e)), angle, 0, 360, 1, -1)
    m = layer.astype(bool)
    shade = rng.normal(0, 5, img.shape[:2])
    out[m] = np.clip(skin + shade[m][:, None], 0, 255)
    res = out.astype(np.uint8)
    for i in range(3):  # grooves between the fingers
        c = centre + up * (i - 1.0) * 0.3 * e
        p1, p2 = c - side * 0.9 * e, c + side * 0.9 * e
        cv2.line(
            res,
            tuple(int(v) for v in p1),
            tuple(int(v) for v in p2),
            tuple(int(v * 0.7) for v in skin),
            max(1, int(e / 30)),
        )
    return res
