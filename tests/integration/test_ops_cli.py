"""`metrosight backup`, `restore` and `doctor` as an operator runs them.

Backup → delete the home → restore: the same alerts, the crop decrypts, the entry matches again in a run, and
`audit verify` is OK. `doctor` on a healthy home, a wrong key, a missing decoder, an unreachable camera and a full
disk: one clear line each and a non-zero exit on failure; credentials never printed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.conftest import missing_system, require_data
from tests.integration.helpers import bootstrap, cli, enrol_active, json_lines

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "metrosight" / "sample"
PASSPHRASE = "velvet compass harbour"


def _enrolled(home: Path) -> None:
    ex = require_data("face_recognition_examples", "examples")
    bootstrap(home)
    assert cli(home, "--as", "ada", "watchlist", "create", "wl", "--category", "wanted")[0] == 0
    assert enrol_active(home, "wl", "-s", "Lin-Manuel Miranda", ex / "lin-manuel-miranda.png")[0] == 0


def _alerts(home: Path) -> list[tuple]:
    code, out, err = cli(home, "--as", "bob", "alert", "list", "--json")
    assert code == 0, err
    rows = json.loads(out) if out.strip().startswith("[") else json_lines(out)
    return sorted((r["subject"], r["camera"], r["sightings"]) for r in rows)


@pytest.mark.slow
def test_backup_delete_restore_then_the_same_alerts_crops_matches_and_audit(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _enrolled(home)
    clip = SAMPLE / "short_hamilton_clip.mp4"
    code, out, err = cli(home, "run", "--source", clip, "--camera", "stage")
    assert code == 0, err
    before = _alerts(home)
    assert before and before[0][0] == "Lin-Manuel Miranda"
    phrase = tmp_path / "phrase"
    phrase.write_text(PASSPHRASE + "\n")
    code, out, err = cli(
        home, "--as", "ada", "backup", "--out", tmp_path / "b", "--keys-out", tmp_path / "k",
        "--passphrase-file", phrase,
    )  # fmt: skip
    assert code == 0, err
    data, keys = next((tmp_path / "b").glob("*.backup")), next((tmp_path / "k").glob("*.keys"))
    code, _, err = cli(home, "--as", "bob", "backup", "--out", tmp_path / "c", "--passphrase-file", phrase)
    assert code != 0 and "admin" in err  # an operator cannot take the whole installation away

    shutil.rmtree(home)  # the home is lost
    code, out, err = cli(home, "restore", data, keys, "--passphrase-file", phrase)
    assert code == 0, err
    assert "audit chain verified" in out
    assert _alerts(home) == before
    code, _, err = cli(home, "--as", "bob", "alert", "crop", "1", "--out", tmp_path / "crop.jpg")
    assert code == 0, err
    assert (tmp_path / "crop.jpg").read_bytes()[:2] == b"\xff\xd8"  # a JPEG: decrypted with the restored key
    code, out, err = cli(home, "audit", "verify")
    assert code == 0, out + err
    code, out, err = cli(home, "run", "--source", clip, "--camera", "stage-2", "--json")
    assert code == 0, err
    assert any(r.get("subject") == "Lin-Manuel Miranda" for r in json_lines(out))  # the entry matches again

    # bad input: one line, nothing changed
    code, _, err = cli(tmp_path / "other", "restore", data, keys, env={"METROSIGHT_BACKUP_PASSPHRASE": "wrong " * 3})
    assert code == 1 and "wrong passphrase" in err and "Traceback" not in err
    assert not (tmp_path / "other").exists()
    code, _, err = cli(home, "restore", data, keys, "--passphrase-file", phrase)
    assert code == 1 and "is not empty" in err
    code, _, err = cli(tmp_path / "x", "restore", tmp_path / "missing.backup", keys, "--passphrase-file", phrase)
    assert code == 1 and "not found" in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _lines(out: str) -> dict[str, str]:
    return {ln.split("] ", 1)[1].split(":", 1)[0]: ln for ln in out.splitlines() if ln.startswith("[")}


def test_doctor_healthy_then_each_fault_is_one_clear_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    bootstrap(home)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"cameras:\n  - {{id: cam-file, source: '{SAMPLE / 'short_hamilton_clip.mp4'}'}}\n")
    code, out, err = cli(home, "doctor", "--config", cfg)
    lines = _lines(out)
    assert code == 0, out + err
    for name in ("python", "packages", "ffmpeg", "detector", "embedder", "home", "disk", "migrations", "keys"):
        assert lines[name].startswith("[ok]"), lines[name]
    assert "640×360" in lines["camera cam-file"] and "29.97 fps" in lines["camera cam-file"]
    code, out, _ = cli(home, "doctor", "--config", cfg, "--json", "--no-models")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] and {c["name"] for c in doc["checks"]} >= {"keys", "camera cam-file"}

    # a missing decoder
    code, out, _ = cli(home, "doctor", "--no-models", "--codec", "no-such-codec")
    assert code == 1 and _lines(out)["ffmpeg"].startswith("[fail]") and "no-such-codec" in _lines(out)["ffmpeg"]

    # an unreachable camera, with credentials in its URL: named, never printed
    bad = tmp_path / "bad.yaml"
    port = _free_port()
    bad.write_text(
        f"ingest: {{open_timeout_seconds: 2}}\ncameras:\n  - {{id: cam-gone, source: 'rtsp://op:S3cretPw@127.0.0.1:{port}/s'}}\n"
    )
    code, out, err = cli(home, "doctor", "--config", bad, "--no-models")
    line = _lines(out)["camera cam-gone"]
    assert code == 1 and line.startswith("[fail]") and "S3cretPw" not in out + err and "op:" not in out
    assert "127.0.0.1" in line and "—" in line

    # a wrong master key: a valid key, but not the one that wrapped the watchlist keys
    cli(home, "--as", "ada", "watchlist", "create", "wl2", "--category", "wanted")
    key = home / "master.key"
    key.write_bytes(Fernet.generate_key())
    code, out, _ = cli(home, "doctor", "--no-models", "--no-cameras")
    assert code == 1 and _lines(out)["keys"].startswith("[fail]") and "not this installation's key" in out


def test_doctor_on_a_full_disk(tmp_path: Path) -> None:
    if os.geteuid() != 0 or not shutil.which("mount"):
        missing_system("needs root to mount a small tmpfs")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
    try:
        home = mnt / "home"
        bootstrap(home)
        # fill the disk
        with (mnt / "filler").open("wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
            except OSError:
                pass
        code, out, err = cli(home, "doctor", "--no-models", "--no-cameras")
        line = _lines(out)["disk"]
        assert code == 1 and line.startswith("[fail]") and "full" in line and "—" in line, out + err
    finally:
        import gc

        from metrosight.store.repo import Store

        for st in [o for o in gc.get_objects() if isinstance(o, Store)]:  # the commands ran in this process:
            st.engine.dispose()  # close their database files
        if subprocess.run(["umount", str(mnt)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_doctor_reports_a_live_rtsp_camera_with_its_transport_and_no_credentials(tmp_path: Path) -> None:
    from tests.integration.rtsp import RtspServer, rtsp_missing

    why = rtsp_missing()
    if why:
        missing_system(why)
    home = tmp_path / "home"
    bootstrap(home)
    clip = SAMPLE / "short_hamilton_clip.mp4"
    with RtspServer({"cam": clip}, protocols="udp", user="op:S3cret-pw") as server:
        cfg = tmp_path / "cfg.yaml"
        url = server.url("cam").replace("rtsp://", "rtsp://op:S3cret-pw@")
        cfg.write_text(f"ingest: {{open_timeout_seconds: 5}}\ncameras:\n  - {{id: platform-1, source: '{url}'}}\n")
        code, out, err = cli(home, "doctor", "--config", cfg, "--no-models")
    line = _lines(out)["camera platform-1"]
    assert code == 0, out + err
    assert line.startswith("[ok]") and "640×360" in line and "over UDP" in line, line  # TCP refused, UDP taken
    assert "S3cret-pw" not in out + err and "op:" not in out + err


def test_doctor_checks_postgresql_migrations_and_redis(tmp_path: Path, pg_url: str, redis_server) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    cfg = tmp_path / "cfg.yaml"
    secret_url = pg_url.replace("postgres@", "postgres:Pg-S3cret@")  # trust auth: the password is ignored, not shown
    cfg.write_text(f"storage: {{database_url: '{secret_url}'}}\n")
    code, out, err = cli(home, "doctor", "--config", cfg, "--no-models", "--bus", redis_server.url)
    lines = _lines(out)
    assert code == 1 and lines["migrations"].startswith("[fail]") and "metrosight db upgrade" in lines["migrations"]
    assert lines["redis"].startswith("[ok]") and "Redis" in lines["redis"]
    assert "Pg-S3cret" not in out + err
    assert cli(home, "db", "upgrade", "--db", pg_url)[0] == 0
    code, out, err = cli(home, "doctor", "--config", cfg, "--no-models", "--bus", redis_server.url)
    assert code == 0, out + err
    assert _lines(out)["migrations"].startswith("[ok]") and "postgresql" in _lines(out)["migrations"]
    dead = f"redis://:R-S3cret@127.0.0.1:{_free_port()}/0"
    code, out, err = cli(home, "doctor", "--config", cfg, "--no-models", "--bus", dead)
    assert code == 1 and _lines(out)["redis"].startswith("[fail]") and "R-S3cret" not in out + err
