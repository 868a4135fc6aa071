"""Red team of photo loading (issue 16 item 2): a large-but-allowed photo in a format other than JPEG is decoded
with bounded memory. A 110 KB 16-bit grey PNG of 7000×7000 (49 MP, under the 50 MP budget) took 1.3 GB in a fresh
process (float64 copies of the full image, then the EXIF rotation and conversion copies of it); an RGB PNG of that
size 690 MB. Now the image is reduced in Pillow right after decoding, before any conversion or copy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration

PROBE = """
import json, sys
from metrosight.ingest.images import read_photo
p = read_photo(sys.argv[1])
a = p.image
# the peak of this process's own memory (VmHWM is reset at exec; ru_maxrss keeps the forking parent's peak, which is
# the whole pytest process when it forked us)
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"shape": list(a.shape), "size": list(p.size), "corner": a[0, 0].tolist(),
                  "centre": a[a.shape[0] // 2, a.shape[1] // 2].tolist(), "rss_mb": hwm / 1024}))
"""


def decode_in_fresh_process(path: Path) -> dict:
    src = str(Path(__file__).resolve().parents[2] / "src")
    res = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["grey16", "rgba", "palette"])
def test_a_49_megapixel_png_is_decoded_small_with_bounded_memory(tmp_path: Path, kind: str):
    from PIL import Image

    n = 7000
    if kind == "grey16":
        im = Image.fromarray(np.full((n, n), 40000, np.uint16))
        want = [155, 155, 155]  # 40000 of 65535, scaled (not clipped) to 8 bits
    elif kind == "rgba":
        im = Image.new("RGBA", (n, n), (0, 0, 0, 0))  # fully transparent: flattened onto white
        want = [255, 255, 255]
    else:
        im = Image.new("P", (n, n), 3)
        im.putpalette([0, 0, 0] * 3 + [10, 200, 30] + [0, 0, 0] * 252)
        want = [10, 200, 30]
    # EXIF orientation 6 (rotate 90° clockwise) on a landscape image: the result is portrait
    im = im.crop((0, 0, n, n // 2))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / f"{kind}.png"
    im.save(path, exif=exif.tobytes())
    got = decode_in_fresh_process(path)
    h, w, _ = got["shape"]
    assert got["size"] == [n, n // 2] and h > w and max(h, w) <= 4096, got  # upright, within max_side
    assert got["corner"] == want and got["centre"] == want, got
    assert got["rss_mb"] < 600, got  # it was 1346 MB (grey16), 1159 MB (rgba) before


@pytest.fixture()
def api(tmp_path: Path):  # type: ignore[no-untyped-def]
    import warnings

    from fastapi.testclient import TestClient

    from metrosight.api.app import create_app
    from metrosight.config.home import Home
    from metrosight.config.model import Settings
    from metrosight.services.suite import Services
    from tests.integration.helpers import bootstrap

    warnings.filterwarnings("ignore", message=".*httpx.*")
    home = tmp_path / "h"
    bootstrap(home)
    rt = Services.open(Home(home), Settings())
    token = rt.store.accounts.create_token("ada", "tests", rt.store.users.actor("ada"))[1]
    client = TestClient(create_app(rt))
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def png_bomb(n: int = 30000) -> bytes:
    import struct
    import zlib

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    raw = zlib.compress(b"\0" * (n * 3 + 1) * 64, 9)
    ihdr = struct.pack(">IIBBBBB", n, n, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def test_api_identify_refuses_a_request_whose_every_photo_is_refused(api):  # type: ignore[no-untyped-def]
    """POST /api/identify answered 200 to a decompression bomb and to damaged files, as if they had been searched
    and nobody found; like the enrolment upload it now says 413 (a photo over the budget) or 422, listing why."""
    from tests.conftest import require_data

    res = api.post("/api/identify", files=[("photos", ("bomb.png", png_bomb(), "image/png"))])
    assert res.status_code == 413 and "900 MP" in res.json()[0]["error"], res.text
    res = api.post(
        "/api/identify",
        files=[
            ("photos", ("cut.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg")),
            ("photos", ("notes.jpg", b"hello world", "image/jpeg")),
        ],
    )
    assert res.status_code == 422, res.text
    assert [p["error"].split(" (")[0] for p in res.json()] == ["truncated or damaged JPEG", "not an image"]
    # one readable photo among refused ones: searched, 200, each photo's outcome listed
    biden = require_data("face_recognition_examples", "examples", "biden.jpg").read_bytes()
    res = api.post(
        "/api/identify",
        files=[("photos", ("bomb.png", png_bomb(), "image/png")), ("photos", ("b.jpg", biden, "image/jpeg"))],
    )
    assert res.status_code == 200 and res.json()[0]["error"] and res.json()[1]["error"] is None, res.text
    assert len(res.json()[1]["faces"]) == 1


def test_from_dir_and_identify_refuse_devices_and_fifos_without_reading_them(tmp_path: Path):
    """A person folder holding `zero.jpg -> /dev/zero` made `enroll --from-dir` read without end until the kernel
    killed it (the size check saw 0 bytes); a FIFO named `pipe.jpg` blocked it forever. Only regular files are
    read: anything else is refused with what it is, and the other people are still enrolled. The CLI runs in its
    own process under a 3 GB address-space limit and a timeout, so a regression fails instead of eating the
    machine."""
    import os
    import resource

    from tests.conftest import require_data
    from tests.integration.helpers import AUTH, bootstrap, cli, password_of

    home = tmp_path / "h"
    bootstrap(home)
    assert cli(home, "--as", "ada", "watchlist", "create", "wl", "--category", "wanted")[0] == 0
    root = tmp_path / "people"
    for name in ("Zero", "Pipe", "Joe_Biden"):
        (root / name).mkdir(parents=True)
    os.symlink("/dev/zero", root / "Zero" / "zero.jpg")
    os.mkfifo(root / "Pipe" / "pipe.jpg")
    (root / "Joe_Biden" / "b.jpg").write_bytes(
        require_data("face_recognition_examples", "examples", "biden.jpg").read_bytes()
    )

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src, "METROSIGHT_PASSWORD": password_of("ada")}
    env.pop("METROSIGHT_TOKEN", None)
    base = [
        sys.executable,
        "-c",
        "from metrosight.cli import entrypoint; entrypoint()",
        "--home",
        str(home),
        "--as",
        "ada",
    ]
    res = subprocess.run(
        [*base, "enroll", "-w", "wl", "--from-dir", str(root), *AUTH],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        preexec_fn=limited,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"refused {root / 'Zero' / 'zero.jpg'}: not a regular file (a device)" in res.stdout, res.stdout
    assert f"refused {root / 'Pipe' / 'pipe.jpg'}: not a regular file (a FIFO)" in res.stdout, res.stdout
    assert "enrolled 1 photo(s) of 1 person(s)" in res.stdout and "2 person(s) refused: Pipe, Zero" in res.stdout
    res = subprocess.run(
        [*base, "identify", "/dev/zero"], capture_output=True, text=True, timeout=240, env=env, preexec_fn=limited
    )
    assert res.returncode != 0 and "not a regular file (a device)" in res.stderr, res.stdout + res.stderr


def test_bit_rotted_tiffs_are_refused_without_libtiff_noise(tmp_path: Path):
    """A deflate or LZW TIFF whose compressed data is damaged (not cut short) was refused, but libtiff printed its
    own lines first ("ZIPDecode: Decoding error at scanline 0, incorrect data check.", "tempfile.tif: Using code
    not yet in table."): stderr holds only the one-line refusal per photo."""
    import os

    from PIL import Image

    from tests.integration.helpers import bootstrap, password_of

    home = tmp_path / "h"
    bootstrap(home)
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (300, 300, 3), dtype=np.uint8))
    paths = []
    for comp in ("tiff_deflate", "tiff_lzw"):
        path = tmp_path / f"{comp}.tif"
        img.save(path, compression=comp)
        data = bytearray(path.read_bytes())
        for i in range(2000, 2400):
            data[i] ^= 0x5A
        path.write_bytes(bytes(data))
        paths.append(path)
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
        "METROSIGHT_PASSWORD": password_of("ada"),
    }
    env.pop("METROSIGHT_TOKEN", None)
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            "from metrosight.cli import entrypoint; entrypoint()",
            "--home",
            str(home),
            "--as",
            "ada",
            "identify",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert res.returncode != 0
    assert res.stderr.splitlines() == [f"error: {p}: truncated or damaged TIFF" for p in paths], res.stderr
