"""Red-team findings on camera sources, through the CLI as a user runs it (``run``, ``config check``, ``node``).

- A password that is a word of the error message (``open``, ``refused``, ``Connection``) was told by masking that
  word: ``cannot *** RTSP stream``, ``Connection ***``. What is shown must not depend on the password.
- A stream address with a mistyped ``://`` was taken for a file: ``config check`` said OK, ``run`` answered
  ``video file not found: rtsp:/admin:<password>@…``, and ``/api/cameras`` would have shown it whole.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import missing_system
from tests.integration.helpers import cli
from tests.integration.procs import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

INGEST = {
    "open_timeout_seconds": 1.0,
    "stall_timeout_seconds": 1.0,
    "reconnect_initial_seconds": 0.05,
    "reconnect_max_seconds": 0.1,
    "down_after_attempts": 2,
}


def config(path: Path, cameras: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"ingest": INGEST, "node": {"workers": 1, "pin_cores": False}, "cameras": cameras}))
    return path


@pytest.mark.parametrize("word", ["open", "refused", "Connection"])
def test_run_output_does_not_depend_on_a_password_that_is_a_word_of_it(word, tmp_path):
    port = free_port()  # nothing listens: the camera goes down with the decoder's "Connection refused"
    cfg = config(tmp_path / "c.yaml", [])

    def shown(password: str) -> str:
        src = f"rtsp://admin:{password}@127.0.0.1:{port}/x?token={password}"
        code, out, err = cli(tmp_path / "home", "run", "--source", src, "--camera", "gate-1", "--config", cfg)
        assert code != 0 and "camera gate-1 is down" in err, err
        return err

    reference = shown("Zq" + "x" * (len(word) - 2))
    assert "***" in reference and "Connection refused" in reference
    assert shown(word) == reference


@pytest.mark.parametrize(
    "source", ["rtsp:/admin:Secret99@127.0.0.1/x", "RTSP:\\\\admin:Secret99@127.0.0.1\\x", "rtsp//admin:Secret99@h/x"]
)
def test_mistyped_address_refused_by_config_check_run_and_node(source, tmp_path):
    home = tmp_path / "home"
    code, out, err = cli(home, "run", "--source", source, "--camera", "gate-1")
    assert code != 0 and "mistyped '://'" in err and "Secret99" not in out + err
    cfg = config(tmp_path / "c.yaml", [{"id": "gate-1", "source": source}])
    for args in (["config", "check", cfg], ["node", "--config", cfg, "--duration", "1"]):
        code, out, err = cli(home, *args)
        assert code != 0 and "mistyped '://'" in err and "Secret99" not in out + err, (args, err)


def test_a_relayed_stream_turned_by_ffmpeg_comes_out_turned_on_every_frame(tmp_path):
    """``ffmpeg … -bsf:v h264_metadata=display_orientation=insert:rotate=90`` (how a relay turns a stream) puts
    the message after each key frame's picture. Before: each key frame came out unturned (160×96 among 96×160)."""
    import shutil
    import subprocess

    from metrosight.ingest.source import VideoSource, parse_source

    if shutil.which("ffmpeg") is None:
        missing_system("ffmpeg is not installed (apt-get install ffmpeg)")
    ts = tmp_path / "turned.ts"
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x96:rate=10",
            "-t",
            "3",
            "-c:v",
            "libx264",
            "-g",
            "5",
            "-pix_fmt",
            "yuv420p",
            "-bsf:v",
            "h264_metadata=display_orientation=insert:rotate=90",
            "-f",
            "mpegts",
            str(ts),
        ],
        check=True,
    )
    shapes = [f.image.shape[:2] for f in VideoSource(parse_source(str(ts))).frames()]
    assert len(shapes) == 30
    assert shapes[1:] == [(160, 96)] * 29, shapes  # the first frame precedes any message


def test_upgrade_removes_stored_credentials_postgres(pg_url):
    """Migration 0011 on PostgreSQL: runs and camera-state events stored by an earlier version lose their
    credentials (the same rows as the SQLite unit test)."""
    from tests.unit.store.test_redteam_stored_sources import check_upgraded, old_database

    old_database(pg_url)
    check_upgraded(pg_url)
