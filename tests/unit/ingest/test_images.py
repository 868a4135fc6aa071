"""The one photo loader: formats by content, pixel budget before decoding, damaged files named by format."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from metrosight.ingest.images import (
    ImageError,
    PhotoLimits,
    PhotoTooLarge,
    decode_photo,
    folder_entries,
    photos_in,
    read_photo,
    sniff,
)
from tests.conftest import REPO_ROOT
from tests.photofiles import FORMATS, encode, float_tiff, jpeg_claiming, pattern, png_bomb, truncated

WORDS = {"WEBP": "WebP", "HEIF": "HEIC/HEIF", "PNM": "PNM"}
LOSSY = {"JPEG", "WEBP", "HEIF", "AVIF", "GIF"}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_supported_format_is_read_by_its_content(tmp_path, fmt):
    img = pattern(120, 80)
    data = encode(img, fmt)
    assert sniff(data[:64]) == fmt
    # the file's name says nothing: upper case, a foreign suffix, no suffix at all
    for name in (f"PHOTO{FORMATS[fmt][0].upper()}", "photo.dat", "photo"):
        (tmp_path / name).write_bytes(data)
        photo = read_photo(tmp_path / name)
        assert photo.format == fmt and photo.image.shape == (80, 120, 3) and photo.image.dtype == np.uint8
        err = np.abs(photo.image.astype(int) - img.astype(int)).mean()
        assert err < (20 if fmt in LOSSY else 1), err
        assert photo.name == name and photo.size == (120, 80)


def test_jfif_and_a_png_named_jpg(tmp_path):
    (tmp_path / "a.jfif").write_bytes(encode(pattern(), "JPEG"))
    (tmp_path / "b.jpg").write_bytes(encode(pattern(), "PNG"))
    assert read_photo(tmp_path / "a.jfif").format == "JPEG"
    assert read_photo(tmp_path / "b.jpg").format == "PNG"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_truncated_files_are_named_by_format(fmt, keep):
    data = truncated(encode(pattern(200, 150), fmt), keep)
    with pytest.raises(ImageError) as e:
        decode_photo(data, "cut" + FORMATS[fmt][0])
    assert e.value.reason == f"truncated or damaged {WORDS.get(fmt, fmt)}"
    assert str(e.value).startswith("cut" + FORMATS[fmt][0] + ": ")


def test_progressive_jpeg_cut_short():
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pattern(300, 200)).save(buf, "JPEG", progressive=True, quality=90)
    with pytest.raises(ImageError, match="truncated or damaged JPEG"):
        decode_photo(truncated(buf.getvalue(), 0.4), "p.jpg")


def test_jpeg_with_damaged_middle():
    data = bytearray(encode(pattern(300, 200), "JPEG"))
    data[len(data) // 2 : len(data) // 2 + 400] = b"\xff\xd9" * 200  # end-of-image markers in the scan
    with pytest.raises(ImageError, match="truncated or damaged JPEG"):
        decode_photo(bytes(data), "d.jpg")


def test_float_tiff_is_not_supported_by_name():
    with pytest.raises(ImageError) as e:
        decode_photo(float_tiff(), "f.tif")
    assert "32-bit float TIFF is not supported" in e.value.reason and not isinstance(e.value, PhotoTooLarge)


def test_png_declaring_30000_squared_is_refused_before_decoding():
    data = png_bomb()
    assert len(data) < 200_000
    with pytest.raises(PhotoTooLarge) as e:
        decode_photo(data, "bomb.png")
    assert "900 MP" in e.value.reason and "50 MP budget" in e.value.reason and "photos.max_megapixels" in e.value.reason


def test_jpeg_header_claiming_65500_squared_is_refused():
    with pytest.raises(PhotoTooLarge, match="4290 MP"):
        decode_photo(jpeg_claiming(), "claim.jpg")


def test_budget_is_configurable_and_names_the_size():
    limits = PhotoLimits(max_pixels=10_000)
    with pytest.raises(PhotoTooLarge, match="200×150 pixels"):
        decode_photo(encode(pattern(200, 150), "PNG"), "p.png", limits)
    assert decode_photo(encode(pattern(100, 100), "PNG"), "p.png", limits).image.shape == (100, 100, 3)


def test_file_size_limit_before_reading(tmp_path):
    p = tmp_path / "big.png"
    p.write_bytes(encode(pattern(), "PNG") + b"\0" * 5000)
    with pytest.raises(PhotoTooLarge, match="photos.max_file_mb"):
        read_photo(p, PhotoLimits(max_bytes=1000))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_large_allowed_photos_are_decoded_at_reduced_size(fmt):
    img = np.kron(pattern(300, 200), np.ones((10, 10, 1), np.uint8))  # 3000×2000
    photo = decode_photo(encode(img, fmt), "big", PhotoLimits(max_side=700))
    assert max(photo.image.shape[:2]) <= 700 and photo.size == (3000, 2000)
    assert photo.image.shape[1] / photo.image.shape[0] == pytest.approx(1.5, abs=0.01)
    assert photo.scale == pytest.approx(max(photo.image.shape[:2]) / 3000)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "PNG", "AVIF", "HEIF", "TIFF"])
def test_exif_orientation_is_applied(fmt):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90° clockwise
    img = pattern(200, 150)
    photo = decode_photo(encode(img, fmt, exif=exif.tobytes()), "o")
    want = np.rot90(img, -1)
    assert photo.image.shape == want.shape
    assert np.abs(photo.image.astype(int) - want.astype(int)).mean() < 20


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientations_match_pillows(orientation):
    from PIL import Image, ImageOps

    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(np.kron(pattern(30, 20), np.ones((4, 4, 1), np.uint8))).save(buf, "JPEG", exif=exif.tobytes())
    want = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))).convert("RGB"))
    got = decode_photo(buf.getvalue(), "o.jpg").image
    assert got.shape == want.shape and np.abs(got.astype(int) - want.astype(int)).mean() < 3


def test_animated_gif_gives_its_first_frame():
    from PIL import Image

    frames = [Image.fromarray(np.full((40, 60, 3), c, np.uint8)) for c in (10, 200)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert decode_photo(buf.getvalue(), "a.gif").image.mean() < 30


def test_transparency_grey16_and_cmyk_become_rgb():
    from PIL import Image

    rgba = np.zeros((20, 30, 4), np.uint8)  # fully transparent: flattened onto white
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    assert decode_photo(buf.getvalue(), "t.png").image.min() == 255
    grey16 = np.full((20, 30), 40000, np.uint16)
    buf = io.BytesIO()
    Image.fromarray(grey16).save(buf, "PNG")
    assert abs(int(decode_photo(buf.getvalue(), "g.png").image.mean()) - 155) <= 2
    buf = io.BytesIO()
    Image.fromarray(pattern()).convert("CMYK").save(buf, "JPEG")
    assert decode_photo(buf.getvalue(), "c.jpg").image.shape == (64, 96, 3)


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"%PDF-1.4 a document", "a PDF document"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "a video"),
        (b"hello, I am a note\n", "a text file"),
        (b"\x00\x01\x02\x03\x04", None),
    ],
)
def test_non_photos_say_what_they_look_like(data, what):
    with pytest.raises(ImageError) as e:
        decode_photo(data, "x.jpg")
    assert e.value.reason.startswith("not an image (")
    assert "supported: JPEG, PNG, HEIC/HEIF, AVIF, WebP, GIF, TIFF, BMP, PNM" in e.value.reason
    if what:
        assert what in e.value.reason


def test_empty_missing_and_folder(tmp_path):
    with pytest.raises(ImageError, match="file is empty"):
        decode_photo(b"", "e.jpg")
    with pytest.raises(ImageError, match="file not found"):
        read_photo(tmp_path / "none.jpg")
    with pytest.raises(ImageError, match="is a folder"):
        read_photo(tmp_path)


def test_folder_listing_skips_only_hidden_files(tmp_path):
    for name in (".DS_Store", "._IMG_1.HEIC", "Thumbs.db", "desktop.ini"):
        (tmp_path / name).write_bytes(b"junk")
    (tmp_path / "IMG_1.HEIC").write_bytes(encode(pattern(), "HEIF"))
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "scan").write_bytes(encode(pattern(), "PNG"))  # a photo by content, whatever its name
    (tmp_path / "broken.JPG").write_bytes(b"x")  # claims to be one: listed, then refused by the loader
    (tmp_path / "sub").mkdir()
    assert [p.name for p in folder_entries(tmp_path)] == ["IMG_1.HEIC", "broken.JPG", "notes.txt", "scan", "sub"]
    assert [p.name for p in photos_in(tmp_path)] == ["IMG_1.HEIC", "broken.JPG", "scan"]


def test_decoder_warnings_never_reach_stderr(tmp_path):
    """Damaged files of every format decoded in a fresh process: refused, and nothing printed by any decoder."""
    for fmt, (suffix, _, _) in FORMATS.items():
        data = encode(pattern(200, 150), fmt)
        for keep in (0.5, 0.9):
            (tmp_path / f"{fmt}-{keep}{suffix}").write_bytes(truncated(data, keep))
    (tmp_path / "float.tif").write_bytes(float_tiff())
    (tmp_path / "bomb.png").write_bytes(png_bomb(4000, 30000))
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from metrosight.ingest.images import ImageError, PhotoLimits, read_photo
        for p in sorted(Path({str(tmp_path)!r}).iterdir()):
            try:
                read_photo(p, PhotoLimits())
                print("DECODED", p.name)
            except ImageError as exc:
                print("refused", exc)
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": f"{REPO_ROOT / 'src'}", "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert "DECODED" not in res.stdout and res.stdout.count("refused") == 2 * len(FORMATS) + 2
