"""Helpers for integration tests: run the real CLI in-process on a fresh home."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from metrosight.cli import app


def cli(home: Path, *args: str) -> tuple[int, str, str]:
    """Run ``metrosight --home HOME ARGS…``; returns (exit code, stdout, stderr)."""
    result = CliRunner().invoke(app, ["--home", str(home), *map(str, args)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


AUTH = ["--legal-basis", "test order", "--authority", "test court", "--reference", "T-1", "--expires", "30d"]


def bootstrap(home: Path) -> None:
    """Users: ada (admin, approver, operator, auditor) records; bob (approver, operator) approves and reviews."""
    assert cli(home, "user", "add", "ada", "-r", "admin", "-r", "approver", "-r", "operator", "-r", "auditor")[0] == 0
    assert cli(home, "--as", "ada", "user", "add", "bob", "-r", "approver", "-r", "operator")[0] == 0


def enrol_active(home: Path, watchlist: str, *args: object) -> tuple[int, str, str]:
    """Enrol as ada with a test authorisation, then approve every pending entry as bob."""
    res = cli(home, "--as", "ada", "enroll", "-w", watchlist, *AUTH, *args)
    cli(home, "--as", "bob", "watchlist", "approve", watchlist, "--all-pending")
    return res


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def make_truncated_video(src: Path, dst: Path) -> Path:
    """A copy of ``src`` remuxed with its index first (faststart), then cut in half: it opens, then breaks."""
    import av

    tmp = dst.with_suffix(".full.mp4")
    with av.open(str(src)) as inp, av.open(str(tmp), "w", options={"movflags": "faststart"}) as out:
        s = inp.streams.video[0]
        o = out.add_stream_from_template(s)
        for packet in inp.demux(s):
            if packet.dts is None:
                continue
            packet.stream = o
            out.mux(packet)
    data = tmp.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst
