"""Recognising a photo format by content (the first bytes of a file), and naming what a non-photo file is.

Pure functions of bytes; the format names are those of :func:`metrosight.ingest.images.decode_photo`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

_HEIF_BRANDS: Final = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1", b"mif2"}
)


_AVIF_BRANDS: Final = frozenset({b"avif", b"avis"})


_VIDEO_BRANDS: Final = frozenset(
    {
        b"isom",
        b"iso2",
        b"iso4",
        b"iso5",
        b"iso6",
        b"mp41",
        b"mp42",
        b"qt  ",
        b"M4V ",
        b"3gp4",
        b"3gp5",
        b"3gp6",
        b"3g2a",
        b"dash",
        b"avc1",
        b"f4v ",
    }
)


def sniff(head: bytes) -> str | None:
    """The photo format of a file from its first bytes (at least 32 for ISO-BMFF brands), or None.

    Returns one of ``JPEG PNG GIF WEBP TIFF BMP PNM HEIF AVIF``."""
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[:2] == b"BM" and len(head) >= 14:
        return "BMP"
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"123456fF" and head[2:3] in b" \t\r\n":
        return "PNM"
    if head[4:8] == b"ftyp":
        brands = {head[8:12]} | {head[i : i + 4] for i in range(16, min(len(head), 64) - 3, 4)}
        if brands & _AVIF_BRANDS:
            return "AVIF"
        if brands & _HEIF_BRANDS:
            return "HEIF"
    return None


def what_else(head: bytes) -> str:
    """A guess at what a non-photo file is, for the refusal message ("" when there is none)."""
    if head[:5] == b"%PDF-":
        return "a PDF document"
    if head[4:8] == b"ftyp" and head[8:12] in _VIDEO_BRANDS or head[:4] == b"\x1aE\xdf\xa3":
        return "a video"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "a video"
    if head[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or head[:4] == b"\xff\x4f\xff\x51":
        return "a JPEG 2000 image"
    if head[:2] == b"\xff\x0a" or head[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        return "a JPEG XL image"
    if head[:4] == b"8BPS":
        return "a Photoshop document"
    if head[:4] in (b"PK\x03\x04",) or head[:6] == b"7z\xbc\xaf\x27\x1c" or head[:3] == b"\x1f\x8b\x08":
        return "an archive"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:5].lower() in (b"<?xml", b"<svg ") or text[:4].lower() == b"<svg":
        return "an SVG or XML file"
    if text and all(32 <= c < 127 or c in (9, 10, 13) for c in text[:64]):
        return "a text file"
    return ""


_FORMAT_WORDS: Final[Mapping[str, str]] = {"WEBP": "WebP", "HEIF": "HEIC/HEIF", "PNM": "PNM"}


def format_word(fmt: str) -> str:
    return _FORMAT_WORDS.get(fmt, fmt)
