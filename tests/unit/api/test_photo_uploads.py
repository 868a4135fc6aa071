"""Photo uploads: decoded in memory by the one loader, never written to disk; budget, damage and format refusals
as clear JSON (413 / 422), never a server path."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest

from metrosight.store.models import Template
from tests.photofiles import encode, jpeg_claiming, png_bomb, truncated
from tests.unit.api.conftest import SCRIPT, Api, paint_frame

AUTH = {"legal_basis": "Code art. 1", "authority": "District court", "reference": "R-7", "expires": "30d"}


def scripted(index: int = 1, size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """The picture the scripted detector finds ``SCRIPT[index]`` in (index painted into pixel (0, 0))."""
    return paint_frame(index, [("red", b) for b in SCRIPT[index]], size=size).image


def upload(api: Api, *files: tuple[str, bytes], subject: str = "Eve"):  # type: ignore[no-untyped-def]
    return api.as_(
        "ada",
        "POST",
        "/api/watchlists/wl/entries",
        data={"subject": subject, **AUTH},
        files=[("photos", (name, data, "application/octet-stream")) for name, data in files],
    )


@pytest.fixture()
def wl(api: Api) -> Api:
    assert api.as_("ada", "POST", "/api/watchlists", json={"name": "wl", "category": "wanted"}).status_code == 201
    return api


@pytest.mark.parametrize(
    ("fmt", "name", "opts"),
    [
        ("PNG", "IMG.PNG", {}),
        ("TIFF", "scan.tiff", {}),
        ("BMP", "x.bmp", {}),
        ("PNM", "x.ppm", {}),
        ("WEBP", "x.webp", {"lossless": True}),
        ("PNG", "no-suffix", {}),
        ("TIFF", "named.jpg", {}),
    ],
)
def test_each_format_is_enrolled_by_its_content(wl: Api, fmt: str, name: str, opts: dict):
    res = upload(wl, (name, encode(scripted(), fmt, **opts)))
    assert res.status_code == 201, res.json()
    assert res.json()["photos"] == [
        {
            "photo": name,
            "status": "enrolled",
            "reason": None,
            "quality": res.json()["photos"][0]["quality"],
            "faces": None,
        }
    ]


@pytest.mark.parametrize(("data", "what"), [(png_bomb(), "900 MP"), (jpeg_claiming(), "4290 MP")])
def test_a_photo_over_the_pixel_budget_is_413_with_a_clear_message(wl: Api, data: bytes, what: str):
    res = upload(wl, ("huge.png", data))
    assert res.status_code == 413
    p = res.json()["photos"][0]
    assert p["status"] == "refused" and what in p["reason"] and "photos.max_megapixels" in p["reason"]
    assert wl.rt.store.entries.all("wl") == [] and wl.rt.store.count(Template) == 0


def test_the_budget_is_the_configured_one(wl: Api):
    photos = wl.rt.settings.photos.model_copy(update={"max_megapixels": 0.1})
    wl.rt.installation.settings = wl.rt.settings.model_copy(update={"photos": photos})
    res = upload(wl, ("p.png", encode(scripted(), "PNG")))  # 640×480 = 0.3 MP
    assert res.status_code == 413 and "640×480 pixels" in res.json()["photos"][0]["reason"]


@pytest.mark.parametrize(
    ("fmt", "word"),
    [
        ("JPEG", "JPEG"),
        ("PNG", "PNG"),
        ("WEBP", "WebP"),
        ("GIF", "GIF"),
        ("TIFF", "TIFF"),
        ("HEIF", "HEIC/HEIF"),
        ("AVIF", "AVIF"),
    ],
)
def test_damaged_uploads_are_named_by_format_without_a_server_path(wl: Api, fmt: str, word: str):
    res = upload(wl, ("cut.bin", truncated(encode(scripted(), fmt), 0.5)))
    assert res.status_code == 422
    p = res.json()["photos"][0]
    assert p == {
        "photo": "cut.bin",
        "status": "refused",
        "reason": f"truncated or damaged {word}",
        "quality": None,
        "faces": None,
    }
    assert tempfile.gettempdir() not in res.text and "metrosight-enrol" not in res.text  # no server path anywhere


def test_one_damaged_photo_does_not_lose_the_good_one(wl: Api):
    res = upload(wl, ("bad.jpg", truncated(encode(scripted(), "JPEG"), 0.4)), ("good.png", encode(scripted(), "PNG")))
    assert res.status_code == 201
    assert [(p["photo"], p["status"]) for p in res.json()["photos"]] == [
        ("bad.jpg", "refused"),
        ("good.png", "enrolled"),
    ]


def test_uploads_are_never_written_to_disk(wl: Api, monkeypatch: pytest.MonkeyPatch):
    """A 3 MB photo (Starlette would spool anything over 1 MiB to a temporary file) is enrolled while every way of
    creating a file in the system's temporary folder raises (files the store writes beside itself, such as the
    audit anchor, are not uploads and stay allowed)."""
    rng = np.random.default_rng(0)
    img = scripted(size=(1000, 1400))
    img[600:] = rng.integers(0, 255, size=(400, 1400, 3), dtype=np.uint8)  # noise: the PNG stays large
    img[0, 0] = (1, 0, 0)
    data = encode(img, "PNG")
    assert len(data) > 1_500_000

    def no_disk(*_a: object, **_k: object):  # type: ignore[no-untyped-def]
        raise AssertionError("an upload was about to be written to disk")

    def only_beside(original):  # type: ignore[no-untyped-def]
        def make(*a: object, dir: object = None, **k: object):  # type: ignore[no-untyped-def]
            if dir is None:
                no_disk()
            return original(*a, dir=dir, **k)

        return make

    monkeypatch.setattr(tempfile, "TemporaryFile", no_disk)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", no_disk)
    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover", no_disk)
    monkeypatch.setattr(tempfile, "mkstemp", only_beside(tempfile.mkstemp))
    monkeypatch.setattr(tempfile, "mkdtemp", only_beside(tempfile.mkdtemp))
    res = upload(wl, ("big.png", data))
    assert res.status_code == 201, res.text
    assert res.json()["photos"][0]["status"] == "enrolled"


def test_the_stored_source_is_the_uploaded_name(wl: Api):
    res = upload(wl, ("../../etc/IMG 1.HEIC", encode(scripted(), "PNG")))
    assert res.status_code == 201 and res.json()["photos"][0]["photo"] == "IMG 1.HEIC"


# -- /api/identify reads uploads the same way ------------------------------------------------------------------------
def identify(api: Api, *files: tuple[str, bytes]):  # type: ignore[no-untyped-def]
    return api.as_(
        "carol",
        "POST",
        "/api/identify",
        files=[("photos", (name, data, "application/octet-stream")) for name, data in files],
    )


def test_identify_reads_a_large_phone_photo_by_content(wl: Api):
    """A 3 MB upload is a photo, not an oversized request body (the upload limit applies, not the 1 MiB one)."""
    rng = np.random.default_rng(1)
    img = scripted(size=(1000, 1400))
    img[600:] = rng.integers(0, 255, size=(400, 1400, 3), dtype=np.uint8)
    img[0, 0] = (1, 0, 0)
    data = encode(img, "PNG")
    assert len(data) > 2_000_000
    res = identify(wl, ("IMG_0001", data))
    assert res.status_code == 200, res.text
    assert res.json()[0]["error"] is None and len(res.json()[0]["faces"]) == 1


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (png_bomb(), 413, "photo declares 900 MP"),
        (truncated(encode(scripted(), "WEBP"), 0.5), 422, "truncated or damaged WebP"),
        (b"%PDF-1.4", 422, "not an image (a PDF document"),
    ],
)
def test_identify_refuses_unreadable_photos_with_the_reason(wl: Api, data: bytes, status: int, reason: str):
    res = identify(wl, ("x.bin", data))
    assert res.status_code == status and res.json()[0]["error"].startswith(reason)
    # one readable photo among them: 200, each photo with its own answer
    res = identify(wl, ("x.bin", data), ("ok.png", encode(scripted(), "PNG")))
    assert res.status_code == 200 and res.json()[0]["error"].startswith(reason) and res.json()[1]["error"] is None
