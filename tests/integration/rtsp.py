"""Real RTSP servers on loopback for tests and benchmarks.

:class:`RtspServer` runs ``rtsp_server.py`` (GStreamer's RTSP server, under the system Python) as a child process
that can be killed and restarted on the same port; :class:`GarbageServer` accepts TCP connections and writes random
bytes. :func:`looped_video` makes a long H.264 MP4 (no audio) from a short clip with ffmpeg, stream-copied.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Self

from tests.integration.procs import free_port, kill_process, stop_process

SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"


class RtspUnavailable(RuntimeError):
    """The RTSP server's requirements (ffmpeg, GStreamer RTSP server) are not installed."""


def rtsp_missing() -> str | None:
    """Why a loopback RTSP server cannot run here, or ``None`` when it can."""
    if shutil.which("ffmpeg") is None:
        return "ffmpeg is not installed (apt-get install ffmpeg)"
    probe = (
        subprocess.run(
            [
                SYSTEM_PYTHON,
                "-c",
                (
                    "import gi; gi.require_version('GstRtspServer', '1.0'); "
                    "from gi.repository import GstRtspServer, Gst; Gst.init(None); "
                    "assert Gst.ElementFactory.find('qtdemux') and Gst.ElementFactory.find('rtph264pay')"
                ),
            ],
            capture_output=True,
            check=False,
        )
        if Path(SYSTEM_PYTHON).exists()
        else None
    )
    if probe is None or probe.returncode != 0:
        return (
            "GStreamer RTSP server missing (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 "
            "gstreamer1.0-plugins-good)"
        )
    return None


def looped_video(src: Path, dst: Path, loops: int) -> Path:
    """``src`` repeated ``loops`` times into ``dst`` (video only, stream copy, continuous timestamps)."""
    if dst.exists():
        return dst
    tmp = dst.with_suffix(".part.mp4")
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-stream_loop",
            str(loops - 1),
            "-i",
            str(src),
            "-map",
            "0:v:0",
            "-c",
            "copy",
            "-an",
            str(tmp),
        ],
        check=True,
    )
    os.replace(tmp, dst)
    return dst


class RtspServer:
    """GStreamer's RTSP server on ``127.0.0.1:port`` serving ``mounts`` (path → MP4 file)."""

    def __init__(
        self, mounts: dict[str, Path], port: int | None = None, protocols: str = "all", user: str | None = None
    ) -> None:
        self.mounts = mounts
        self.port = port or free_port()
        self.protocols = protocols  # "all", "tcp" or "udp": the RTP transports the server accepts
        self.user = user  # "NAME:PASSWORD": basic authentication required
        self.proc: subprocess.Popen[str] | None = None

    def url(self, mount: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{mount}"

    def start(self, timeout: float = 15.0) -> RtspServer:
        args = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port)]
        for path, file in self.mounts.items():
            args += ["--mount", f"{path}={file}"]
        args += ["--protocols", self.protocols] + (["--user", self.user] if self.user else [])
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "READY":
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.proc.kill()
            raise RtspUnavailable(f"RTSP server did not start: {line!r} {err}")
        while time.monotonic() < deadline:  # listening?
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RtspUnavailable(f"RTSP server not listening on {self.port}")

    def kill(self) -> None:
        """Kill it at once (SIGKILL): connections drop without a goodbye."""
        kill_process(self.proc)
        self.proc = None

    def stop(self) -> None:
        stop_process(self.proc, grace=5)
        self.proc = None

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (Linux /proc)."""
        if self.proc is None:
            return 0.0
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class GarbageServer:
    """Accepts TCP connections on loopback and answers each with random bytes, then closes it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with conn, contextlib.suppress(OSError):
                conn.sendall(os.urandom(64 * 1024))

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(2)


def listening(port: int, or_serving: bool = False) -> bool:
    """Whether a TCP socket listens on ``port`` (Linux ``/proc/net/tcp``; no connection is made); with
    ``or_serving``, a connection accepted on it counts too (a one-client server stops listening once it has one)."""
    states = ("0A", "01") if or_serving else ("0A",)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] in states and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


class MjpegHttpServer:
    """An MJPEG-over-HTTP camera on ``127.0.0.1:port`` (``ffmpeg -re -i FILE -c copy -f mpjpeg -listen 1 URL``):
    a ``multipart/x-mixed-replace`` stream of JPEG frames at the file's own rate, looped, as IP cameras serve
    ``/video.mjpg``. ffmpeg serves one client a life; :meth:`kill` and :meth:`start` again to restart it."""

    def __init__(self, file: Path, port: int | None = None, path: str = "cam.mjpg") -> None:
        self.file = file
        self.port = port or free_port()
        self.path = path
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, userinfo: str = "", query: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.port}/{self.path}{query}"

    def start(self, timeout: float = 10.0) -> MjpegHttpServer:
        self.proc = subprocess.Popen(
            [
                "ffmpeg",
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-stream_loop",
                "-1",
                "-i",
                str(self.file),
                "-c",
                "copy",
                "-f",
                "mpjpeg",
                "-listen",
                "1",
                self.url(),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # listening? (a probe connection would be ffmpeg's one client)
            if listening(self.port, or_serving=True):  # a reconnecting camera may have taken it at once
                return self
            time.sleep(0.05)
        self.kill()
        raise RtspUnavailable(f"ffmpeg did not listen on {self.port}")

    def kill(self) -> None:
        kill_process(self.proc)
        self.proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
