"""Issue 15, finding 7 (on failure): a run whose process is SIGKILLed is closed as crashed at the next start; a
full disk (a real, small tmpfs) gives one clear error, keeps the alerts already produced and stores them when space
returns, and closes the run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from metrosight.store.models import AlertRecord, Run, Sighting
from metrosight.store.repo import Store
from tests.conftest import REPO_ROOT, missing_system
from tests.integration.helpers import bootstrap, cli, enrol_active, json_lines
from tests.integration.rtsp import looped_video

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SAMPLE = REPO_ROOT / "src" / "metrosight" / "sample"


def spawn_run(home: Path, source: Path, *extra: str, url: str | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "METROSIGHT_HOME": str(home)}
    if url:
        env["METROSIGHT__STORAGE__DATABASE_URL"] = url
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from metrosight.cli import entrypoint; entrypoint()",
            "run",
            "--source",
            str(source),
            "--json",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )


def running_now(home: Path, url: str | None = None) -> bool:
    """Whether a run row is ``running`` (read-only: the process under test may be migrating the database)."""
    import sqlite3

    if url:
        from sqlalchemy import create_engine, text

        from metrosight.store.db import normalize_url

        engine = create_engine(normalize_url(url))
        try:
            with engine.connect() as c:
                return bool(c.execute(text("SELECT count(*) FROM runs WHERE status = 'running'")).scalar())
        except Exception:  # noqa: BLE001 - not migrated yet
            return False
        finally:
            engine.dispose()
    try:
        with sqlite3.connect(f"file:{home / 'metrosight.db'}?mode=ro", uri=True, timeout=1) as c:
            return bool(c.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()[0])
    except sqlite3.Error:
        return False


def runs(home: Path, url: str | None = None) -> list[Run]:
    st = Store.for_home(home, url)
    with st.uow.read() as s:
        out = list(s.scalars(select(Run).order_by(Run.id)))
    st.engine.dispose()
    return out


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_run_of_a_killed_process_is_closed_as_crashed_at_the_next_start(tmp_path, request, backend):
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    home = tmp_path / "home"
    video = looped_video(SAMPLE / "short_hamilton_clip.mp4", tmp_path / "long.mp4", 20)
    proc = spawn_run(home, video, url=url)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if running_now(home, url):
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.3)
        else:
            pytest.fail("the run never started")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    [r] = runs(home, url)
    assert r.status == "running" and r.pid == proc.pid  # left behind by the killed process
    env = {"METROSIGHT__STORAGE__DATABASE_URL": url} if url else None
    code, _, err = cli(home, "audit", "verify", env=env)  # any start of metrosight
    assert code == 0, err
    [r] = runs(home, url)
    assert r.status == "crashed" and r.finished_at is not None and str(proc.pid) in r.error


@pytest.fixture()
def small_disk(tmp_path):
    """A 48 MiB tmpfs (needs root: mount -t tmpfs)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        msg = f"cannot mount a tmpfs to fill ({res.stderr.strip()}): run as root"
        missing_system(msg)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path) -> None:
    """Write until the file system is full."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        except OSError:
            pass


def installation_on(disk: Path, tmp_path: Path) -> Path:
    home = disk / "home"
    home.mkdir()
    (tmp_path / "cache").mkdir()
    (home / "cache").symlink_to(tmp_path / "cache")  # the model cache lives elsewhere: only the store fills up
    bootstrap(home)
    assert cli(home, "--as", "ada", "watchlist", "create", "wl", "--category", "wanted")[0] == 0
    code, out, err = enrol_active(home, "wl", "-s", "Lin-Manuel Miranda", SAMPLE / "lin-manuel-miranda-still.png")
    assert code == 0, out + err
    return home


def test_a_full_disk_holds_the_alerts_stores_them_when_space_returns_and_closes_the_run(small_disk, tmp_path):
    home = installation_on(small_disk, tmp_path)
    video = looped_video(SAMPLE / "short_hamilton_clip.mp4", tmp_path / "loop.mp4", 4)
    filler = small_disk / "filler"
    proc = spawn_run(home, video)
    printed: list[str] = []
    full_at: list[int] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            printed.append(line)
            if '"type": "alert"' in line and not full_at:
                fill(filler)  # the disk fills up after the first alert
                full_at.append(len(printed))

    t = threading.Thread(target=read, daemon=True)
    t.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and sum('"type": "alert"' in x for x in printed) < 2 and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(2.0)  # a second alert came while the disk was full: it is held
    filler.unlink()  # space returns
    proc.wait(300)
    t.join(10)
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "the disk is full" in err  # said once, clearly
    assert err.count("the disk is full") == 1
    alerts = [x for x in json_lines("".join(printed)) if x.get("type") == "alert"]
    assert len(alerts) >= 2 and full_at
    store = Store.for_home(home)
    with store.uow.read() as s:
        stored = {a.event_id: a for a in s.scalars(select(AlertRecord))}
        sightings = {x.event_id: x for x in s.scalars(select(Sighting))}
    # every printed alert is stored as a sighting of its episode, held ones included, each with its crop
    assert {a["event_id"] for a in alerts} <= set(sightings)
    assert {sightings[a["event_id"]].alert_id for a in alerts} <= {r.id for r in stored.values()}
    # a sighting printed while held has no alert id yet; the others name the alert they were stored in
    assert all(a["alert_id"] in (None, sightings[a["event_id"]].alert_id) for a in alerts)
    assert all(x.crop_path and Path(x.crop_path).exists() for x in sightings.values())
    [r] = runs(home)
    assert r.status == "finished" and r.alerts == len(alerts)
    assert store.audit.verify().ok


def test_a_disk_full_from_the_start_gives_one_clear_error(small_disk, tmp_path):
    home = installation_on(small_disk, tmp_path)
    fill(small_disk / "filler")
    proc = spawn_run(home, SAMPLE / "short_hamilton_clip.mp4")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "Traceback" not in err, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert any(x.startswith("error:") and "disk is full" in x for x in lines), err
    (small_disk / "filler").unlink()
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)
    assert [r.status for r in runs(home)] in ([], ["crashed"], ["storage-full"])  # nothing left running
