"""A small file that declares a huge photo: peak memory and time of `metrosight identify` and of an API upload.

    python bench/photo_bomb.py [--repeat 3]

Inputs (built here): a valid 1-bit PNG of 30000×30000 pixels (~110 KB, 900 MP: 2.7 GB as RGB) and a JPEG whose
header claims 65500×65500 pixels; for reference, an ordinary 0.6 MP photo and a 48 MP JPEG (8000×6000, allowed:
decoded at reduced size). Each goes through

- the CLI: ``metrosight identify PHOTO`` in its own process (one active watchlist entry, so the models are used);
  peak RSS of that process (``wait4`` rusage) and its wall time, start to exit, and the time from the process
  start to the refusal line;
- the API: ``metrosight serve`` in its own process, ``POST /api/watchlists/…/entries`` with the photo; the
  server's peak RSS (``VmHWM``) before and after, and the request's round trip.

Goal (issue 16): under 300 MB and refused in under 1 s. Prints a table and writes ``bench/results/photo_bomb.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.photofiles import encode, jpeg_claiming, png_bomb  # noqa: E402

PASSWORD = "bench-Photo-bomb-7f3a9c"
DATA = ROOT.parent / "shared" / "data"
CLI = "from metrosight.cli import entrypoint; entrypoint()"


TOKEN: dict[str, str] = {}


def env() -> dict[str, str]:
    """The CLI's environment: authenticated by an API token (a password would be checked with Argon2id, whose
    deliberate memory cost, ~0.5 GB, would hide the photo's)."""
    e = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "METROSIGHT_TOKEN": TOKEN.get("token", "")}
    e.pop("METROSIGHT_PASSWORD", None)
    return e


def loader_only(path: Path) -> dict[str, float]:
    """The loader alone in a fresh process: seconds of ``read_photo`` and the process's peak RSS (MB), next to a
    process that only imports it."""
    code = (
        "import sys, time; from metrosight.ingest.images import read_photo, ImageError\n"
        "t = time.perf_counter()\n"
        "try: read_photo(sys.argv[1])\n"
        "except ImageError as e: pass\n"
        "print(time.perf_counter() - t)"
    )
    out: dict[str, float] = {}
    for key, argv in (("photo", [str(path)]), ("import_only", None)):
        cmd = [
            sys.executable,
            "-c",
            code if argv else "import metrosight.ingest.images, PIL.Image, pillow_heif, simplejpeg",
        ]
        r = measured(cmd + (argv or []))
        out[f"{key}_rss_mb"] = r["rss_mb"]  # type: ignore[assignment]
        if argv:
            out["seconds"] = float(str(r["stdout"]) or "nan")
    return out


#: A small process started first that runs each measured command and reports its peak RSS from ``wait4``. A child's
#: peak RSS counts from its parent's *peak* at fork (Linux copies the high-water mark with the address space), so
#: the measured commands must not be children of this bench once it has built large test photos.
LAUNCHER = r"""
import json, os, subprocess, sys, time
for line in sys.stdin:
    req = json.loads(line)
    t0 = time.perf_counter()
    p = subprocess.Popen(req["cmd"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=req["env"])
    out = p.stdout.read().decode(); err = p.stderr.read().decode()
    _, status, usage = os.wait4(p.pid, 0)
    print(json.dumps({"seconds": time.perf_counter() - t0, "rss_mb": usage.ru_maxrss / 1024,
                      "cpu_seconds": usage.ru_utime + usage.ru_stime,
                      "code": os.waitstatus_to_exitcode(status), "stdout": out.strip(), "stderr": err.strip()}),
          flush=True)
"""
_launcher: list[subprocess.Popen[str]] = []


def measured(cmd: list[str]) -> dict[str, object]:
    """Run ``cmd`` from the launcher: wall seconds, peak RSS (MB), exit code, stdout, stderr."""
    if not _launcher:
        _launcher.append(
            subprocess.Popen([sys.executable, "-c", LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        )
    lp = _launcher[0]
    lp.stdin.write(json.dumps({"cmd": cmd, "env": env()}) + "\n")  # type: ignore[union-attr]
    lp.stdin.flush()  # type: ignore[union-attr]
    return json.loads(lp.stdout.readline())  # type: ignore[union-attr,no-any-return]


def run_cli_measured(home: Path, *args: str) -> dict[str, object]:
    """One CLI process, as a user runs it."""
    return measured([sys.executable, "-c", CLI, "--home", str(home), *args])


def setup_home(home: Path, face: Path) -> str:
    """A home with an admin/approver/operator user, a watchlist with one active entry; returns an API token."""
    from metrosight.config.home import Home
    from metrosight.config.model import Settings
    from metrosight.ingest.images import photo_or_error
    from metrosight.policy.passwords import hash_password
    from metrosight.services.suite import Services

    rt = Services.open(Home(home), Settings())
    rt.store.users.add("chief", ["admin", "approver", "operator"], None, hash_password(PASSWORD))
    chief = rt.store.users.actor("chief")
    rt.store.users.add("second", ["approver", "operator"], chief, hash_password(PASSWORD))
    from datetime import UTC, datetime, timedelta

    from metrosight.core.types import Category
    from metrosight.policy.rules import Authorisation

    rt.store.watchlists.create("wl", Category.WANTED, chief)
    auth = Authorisation("bench", "bench", "B-1", datetime.now(UTC) + timedelta(days=7))
    res = rt.enrolment.enroll("wl", [("Joe Biden", photo_or_error(face))], chief, auth)
    assert res[0].status == "enrolled", res
    rt.store.entries.approve("wl", "Joe Biden", rt.store.users.actor("second"))
    token = rt.store.accounts.create_token("chief", "bench", chief)[1]
    rt.store.engine.dispose()
    return token


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vm_hwm(pid: int) -> float:
    """Peak resident set size of a process, MB (``VmHWM`` of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def multipart(fields: dict[str, str], name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; filename="{name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def upload(
    port: int, token: str, name: str, data: bytes, path: str = "/api/watchlists/wl/entries"
) -> tuple[int, float, str]:
    fields = (
        {"subject": "Someone", "legal_basis": "bench", "authority": "bench", "reference": "B-2", "expires": "7d"}
        if path.endswith("/entries")
        else {}
    )
    body, ctype = multipart(fields, name, data)
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": ctype},
    )
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            code, text = r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        code, text = exc.code, exc.read().decode()
    return code, time.perf_counter() - t0, text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each CLI measurement (the median is shown)")
    ap.add_argument("--setup", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.setup:
        print(setup_home(args.setup, DATA / "face_recognition_examples" / "examples" / "biden.jpg"))
        return
    measured([sys.executable, "-c", "pass"])  # start the launcher while this process is small
    import cv2
    import numpy as np

    from metrosight.ingest.images import read_photo

    face = DATA / "face_recognition_examples" / "examples" / "biden.jpg"
    with tempfile.TemporaryDirectory(prefix="metrosight-photo-bomb-") as tmp_s:
        tmp = Path(tmp_s)
        home = tmp / "home"
        # in its own process: this one must stay small, because a child's peak RSS (rusage) starts from its
        # parent's resident size at fork, and enrolment loads the models and hashes passwords (Argon2id)
        token = TOKEN["token"] = (
            subprocess.run([sys.executable, __file__, "--setup", str(home)], capture_output=True, text=True, check=True)
            .stdout.strip()
            .splitlines()[-1]
        )
        biden = read_photo(face).image
        inputs = {
            "PNG declaring 30000×30000 (900 MP)": ("bomb.png", png_bomb()),
            "JPEG header claiming 65500×65500": ("claim.jpg", jpeg_claiming()),
            "ordinary photo 970×2204 (2.1 MP)": ("biden.jpg", face.read_bytes()),
            "JPEG 8000×6000 (48 MP, allowed)": (
                "big.jpg",
                encode(cv2.resize(np.pad(biden, ((0, 0), (600, 600), (0, 0)), mode="edge"), (8000, 6000)), "JPEG"),
            ),
        }
        for name, data in inputs.values():
            (tmp / name).write_bytes(data)
        del biden
        rows = []
        import gc

        gc.collect()
        print(f"bench process resident: {resident_mb():.0f} MB (children's peak RSS cannot be lower)")
        for label, (name, data) in inputs.items():
            runs = [run_cli_measured(home, "identify", str(tmp / name)) for _ in range(args.repeat)]
            runs.sort(key=lambda r: r["seconds"])  # type: ignore[arg-type,return-value]
            med = runs[len(runs) // 2]
            rows.append(
                {
                    "host": "CLI identify",
                    "input": label,
                    "file_kb": round(len(data) / 1024, 1),
                    "seconds": round(med["seconds"], 3),
                    "cpu_seconds": round(med["cpu_seconds"], 3),  # type: ignore[arg-type]
                    "peak_rss_mb": round(med["rss_mb"], 1),  # type: ignore[arg-type]
                    "exit": med["code"],
                    "said": (med["stderr"] or med["stdout"]).splitlines()[-1][:160],
                }
            )  # type: ignore[union-attr]
        # the empty CLI: the floor of any `identify` process (interpreter, imports, store)
        floor = run_cli_measured(home, "watchlist", "list")
        for label, (name, _data) in inputs.items():
            lo = loader_only(tmp / name)
            rows.append(
                {
                    "host": "loader alone",
                    "input": label,
                    "file_kb": round(len(_data) / 1024, 1),
                    "seconds": round(lo["seconds"], 4),
                    "peak_rss_mb": round(lo["photo_rss_mb"], 1),
                    "peak_rss_growth_mb": round(lo["photo_rss_mb"] - lo["import_only_rss_mb"], 1),
                    "exit": "",
                    "said": "read_photo in a fresh process (growth: over a process that only imports)",
                }
            )
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-c", CLI, "--home", str(home), "serve", "--port", str(port), "--no-cameras"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env(),
        )
        try:
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.2)
            # warm the models with one ordinary upload, so that the figures below are the upload's own
            upload(port, token, "biden.jpg", face.read_bytes())
            for path, host in (("/api/watchlists/wl/entries", "API enrol"), ("/api/identify", "API identify")):
                for label, (name, data) in inputs.items():
                    before = vm_hwm(server.pid)
                    code, seconds, text = upload(port, token, name, data, path)
                    after = vm_hwm(server.pid)
                    try:
                        got = json.loads(text)
                        said = got["photos"][0] if isinstance(got, dict) else got[0]
                        said = said.get("reason") or said.get("error") or said.get("status") or str(said)[:160]
                    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                        said = text[:160]
                    rows.append(
                        {
                            "host": host,
                            "input": label,
                            "file_kb": round(len(data) / 1024, 1),
                            "seconds": round(seconds, 3),
                            "peak_rss_mb": round(after, 1),
                            "peak_rss_growth_mb": round(after - before, 1),
                            "exit": code,
                            "said": str(said)[:160],
                        }
                    )
        finally:
            server.terminate()
            server.wait(timeout=30)

    print(
        f"CLI floor (`watchlist list` process): {floor['seconds']:.2f} s wall, {floor['cpu_seconds']:.2f} s CPU, "
        f"peak RSS {floor['rss_mb']:.0f} MB"
    )
    print(f"{'host':13} {'input':38} {'KB':>7} {'s':>6} {'CPU s':>6} {'peak MB':>8} {'growth':>7} {'exit':>5}  said")
    for r in rows:
        growth = f"{r['peak_rss_growth_mb']:.0f}" if "peak_rss_growth_mb" in r else ""
        cpu = f"{r['cpu_seconds']:.2f}" if "cpu_seconds" in r else ""
        print(
            f"{r['host']:13} {r['input']:38} {r['file_kb']:>7} {r['seconds']:>6.2f} {cpu:>6} {r['peak_rss_mb']:>8.0f} "
            f"{growth:>7} {r['exit']:>5}  {r['said']}"
        )
    out = ROOT / "bench" / "results" / "photo_bomb.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "goal": {"peak_rss_mb": 300, "seconds": 1.0},
                "cli_floor": {
                    "seconds": round(floor["seconds"], 3),  # type: ignore[arg-type]
                    "cpu_seconds": round(floor["cpu_seconds"], 3),  # type: ignore[arg-type]
                    "peak_rss_mb": round(floor["rss_mb"], 1),
                },  # type: ignore[arg-type]
                "rows": rows,
            },
            indent=1,
        )
    )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
