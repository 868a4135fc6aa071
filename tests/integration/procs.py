"""Process and port helpers shared by the throwaway test servers (Redis, PostgreSQL, RTSP)."""

from __future__ import annotations

import socket
import subprocess


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kill_process(proc: subprocess.Popen | None) -> None:
    """SIGKILL ``proc`` if it still runs (a crash: connections drop without a goodbye) and reap it."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(10)


def stop_process(proc: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM ``proc`` if it still runs; SIGKILL it when it has not exited after ``grace`` seconds."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace)
