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
import json, resource, sys
from metrosight.ingest.images import read_photo
p = read_photo(sys.argv[1])
a = p.image
print(json.dumps({"shape": list(a.shape), "size": list(p.size), "corner": a[0, 0].tolist(), "centre": a[a.shape[0] // 2, a.shape[1] // 2].tolist(),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def decode_in_fresh_process(path: Path) -> dict:
    src = str(Path(__file__).resolve().parents[2] / "src")
    res = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"})
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
