"""Helpers for integration tests: run the real CLI in-process on a fresh home."""

from __future__ import annotations

import json
import os
from pathlib import Path

from typer.testing import CliRunner

from metrosight.cli import app


def password_of(user: str) -> str:
    """The password every test user gets (deterministic, long, and unrelated to the user's name)."""
    import hashlib

    return "Tp-" + hashlib.sha256(f"metrosight test user {user}".encode()).hexdigest()[:20]


def cli(home: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> tuple[int, str, str]:
    """Run ``metrosight --home HOME ARGS…``; returns (exit code, stdout, stderr).

    Credentials are supplied as a user would: ``--as NAME`` gets NAME's :func:`password_of` through
    ``METROSIGHT_PASSWORD``, and ``user add NAME`` / ``user password NAME`` answer the new-password prompt with
    NAME's test password. ``env`` (e.g. ``{"METROSIGHT_TOKEN": …}`` or a wrong password) and ``input`` override.
    """
    argv = [str(a) for a in args]
    run_env: dict[str, str | None] = {"METROSIGHT_PASSWORD": None, "METROSIGHT_TOKEN": None}
    if "--as" in argv[:-1]:
        run_env["METROSIGHT_PASSWORD"] = password_of(argv[argv.index("--as") + 1])
    for i in range(len(argv) - 2):
        if argv[i] == "user" and argv[i + 1] in ("add", "password") and input is None and "--no-password" not in argv:
            pw = password_of(argv[i + 2])
            input = f"{pw}\n{pw}\n"
    run_env.update(env or {})
    result = CliRunner().invoke(app, ["--home", str(home), *argv], env=run_env, input=input)
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


def bench_home(root: Path, ex: Path) -> Path:
    """A throwaway installation under ``root`` for the benches: watchlist ``bench`` (wanted) with the four
    face_recognition example portraits in ``ex`` enrolled and approved. Raises SystemExit if an enrolment fails."""
    # the bench's own throwaway installation: its admin and approver sign in with passwords alone (as in the tests)
    os.environ.setdefault("METROSIGHT__TOTP__REQUIRED_ROLES", "[]")
    home = root / "home"
    bootstrap(home)
    cli(home, "--as", "ada", "watchlist", "create", "bench", "--category", "wanted")
    for name, photo in (
        ("Lin-Manuel Miranda", "lin-manuel-miranda.png"),
        ("Alex Lacamoire", "alex-lacamoire.png"),
        ("Barack Obama", "obama.jpg"),
        ("Joe Biden", "biden.jpg"),
    ):
        code, out, _ = enrol_active(home, "bench", "-s", name, ex / photo)
        if code != 0:
            raise SystemExit(f"enrolment of {name} failed: {out}")
    return home
