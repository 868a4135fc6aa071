"""The same clip through every host gives the same alerts and the same stored source.

A camera runs three ways — the single process (``metrosight run``), a node (the supervisor and its worker
processes) and a cluster worker (leases and streams on a real Redis, a store consumer writing them down) — all
around one frame loop (:mod:`metrosight.pipeline.loop`). This test is the one that would have caught the copies
drifting apart (the cluster once stored a camera's password in the runs table): the bundled Hamilton clip, with
Lin-Manuel Miranda enrolled from a still of its first shot, goes through each host on its own copy of one
installation, and each must store

- the same alerts: the same subjects, first and last seen within one analysed frame of the single process's;
- the same source in the runs table for the clip, and, for a camera whose address carries a user and a password
  (nothing listens there), the address without them — on the hosts that take a configured camera list (node and
  cluster); ``run`` refuses that source before storing anything.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from metrosight.bus.leases import Leases
from metrosight.bus.redis_streams import RedisStreamsBus, connect
from metrosight.config.home import Home
from metrosight.config.model import Settings
from metrosight.ingest.source import SourceError
from metrosight.pipeline.cluster import ClusterOptions, ClusterWorker
from metrosight.pipeline.consumer import StoreConsumer
from metrosight.pipeline.runtime import Runtime
from metrosight.pipeline.supervisor import Supervisor
from metrosight.store.models import Run
from metrosight.store.repo import Store
from tests.integration.helpers import bootstrap, cli, enrol_active
from tests.integration.procs import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "metrosight" / "sample"
LEAD_IN = 3.0  # seconds of black before the clip: a node plays files as live cameras, and drops the frames that
# arrive while its first frame warms the models up (about a second here); the hosts must differ in nothing else
FPS = 2.0  # analysed frames a second: a node replays the file in real time, this leaves each frame 500 ms
SECRET = "s3cr3t-pw"


def settings_for(cameras: list[dict]) -> Settings:
    return Settings.model_validate(
        {
            "ingest": {
                "analysis_fps": FPS,
                "open_timeout_seconds": 1.0,
                "stall_timeout_seconds": 1.0,
                "reconnect_initial_seconds": 0.05,
                "reconnect_max_seconds": 0.2,
                "down_after_attempts": 2,
            },
            "alerts": {"episode_window_s": 0, "group_window_s": 0},  # one alert per track: compared one by one
            "node": {"workers": 1, "pin_cores": False, "shutdown_timeout_seconds": 30},
            "cameras": cameras,
        }
    )


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("one-loop") / "home"
    bootstrap(home)
    assert cli(home, "--as", "ada", "watchlist", "create", "wl", "--category", "wanted")[0] == 0
    code, out, err = enrol_active(home, "wl", "-s", "Lin-Manuel Miranda", SAMPLE / "lin-manuel-miranda-still.png")
    assert code == 0 and "enrolled 1 photo" in out, out + err
    return home


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled Hamilton clip after ``LEAD_IN`` seconds of black, at its own size and rate."""
    out = tmp_path_factory.mktemp("clip") / "hamilton_after_black.mp4"
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(SAMPLE / "short_hamilton_clip.mp4")]
    cmd += ["-vf", f"tpad=start_duration={LEAD_IN}:color=black", "-an", "-pix_fmt", "yuv420p", "-preset", "veryfast"]
    cmd.append(str(out))
    subprocess.run(cmd, check=True, timeout=300)
    return out


def copy_of(installation: Path, where: Path) -> Path:
    home = where / "home"
    shutil.copytree(installation, home, ignore=shutil.ignore_patterns("cache"), symlinks=True)
    (home / "cache").symlink_to(installation / "cache")  # the models, downloaded once
    return home


def stored(home: Path) -> tuple[list[tuple[str, float, float]], dict[str, list[str]]]:
    """The alerts (subject, first seen, last seen) in order of first seen, and each camera's stored sources."""
    store = Store.for_home(home)
    alerts = sorted((a.subject_name, a.first_seen, a.last_seen) for a in store.alerts.all())
    sources: dict[str, list[str]] = {}
    for r in runs(store):
        sources.setdefault(r.camera_id, []).append(r.source)
    store.engine.dispose()
    return sorted(alerts, key=lambda a: a[1]), sources


def runs(store: Store) -> list[Run]:
    with Session(store.engine) as s:
        return list(s.scalars(select(Run).order_by(Run.id)))


def run_single(home: Path, clip: Path, dead: str) -> None:
    rt = Runtime.open(Home(home), settings_for([]))
    report = rt.run(str(clip), "clip")
    assert report.status == "finished", report
    with pytest.raises(SourceError) as err:  # a source that cannot be opened: refused, nothing stored
        rt.run(dead, "door")
    assert SECRET not in str(err.value)


def run_node(home: Path, clip: Path, dead: str) -> None:
    cams = [{"id": "clip", "source": str(clip)}, {"id": "door", "source": dead}]
    rt = Runtime.open(Home(home), settings_for(cams))
    sup = Supervisor(rt.services)

    def tick() -> None:  # the clip ended: stop the node (the dead camera would keep retrying)
        if any(r.camera_id == "clip" and r.status != "running" for r in runs(rt.store)):
            sup.request_stop()

    sup.run(duration=300, tick=tick)


def run_cluster(home: Path, clip: Path, dead: str, redis_url: str) -> None:
    cams = [{"id": "clip", "source": str(clip)}, {"id": "door", "source": dead}]
    settings = settings_for(cams)
    consumer_rt = Runtime.open(Home(home), settings)
    consumer = StoreConsumer(consumer_rt.store, consumer_rt.home.media, RedisStreamsBus(redis_url, group="store"))
    halt = consumer.start()
    rt = Runtime.open(Home(home), settings)
    worker = ClusterWorker(
        rt,
        RedisStreamsBus(redis_url, group="worker"),
        Leases(connect(redis_url), "metrosight", 3.0),
        options=ClusterOptions(lease_seconds=3.0, settle_seconds=0.1),
    )
    stop = threading.Event()
    t = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    t.start()
    deadline = time.monotonic() + 300
    while "clip" not in worker.report.finished and time.monotonic() < deadline and t.is_alive():
        time.sleep(0.2)
    stop.set()
    t.join(30)
    assert "clip" in worker.report.finished, worker.report
    deadline = time.monotonic() + 60  # the consumer stores what the worker published
    c = connect(redis_url)
    while time.monotonic() < deadline:
        groups = [c.xinfo_groups(f"metrosight:stream:{t}") for t in ("alerts", "alert-updates")]
        if all(g and not g[0]["pending"] and not g[0].get("lag") for g in groups if g is not None):
            break
        time.sleep(0.2)
    halt()


def test_every_host_stores_the_same_alerts_and_source(installation, clip, tmp_path, redis_server):
    dead = f"rtsp://operator:{SECRET}@127.0.0.1:{free_port()}/live/door"
    homes = {name: copy_of(installation, tmp_path / name) for name in ("run", "node", "cluster")}
    run_single(homes["run"], clip, dead)
    run_node(homes["node"], clip, dead)
    run_cluster(homes["cluster"], clip, dead, redis_server.url)

    results = {name: stored(home) for name, home in homes.items()}
    ref_alerts, ref_sources = results["run"]
    assert ref_alerts and {a[0] for a in ref_alerts} == {"Lin-Manuel Miranda"}, ref_alerts
    assert ref_sources == {"clip": [str(clip)]}  # the refused source stored nothing
    frame = 1.0 / FPS + 1e-3
    assert results["node"][1]["door"][0] == results["cluster"][1]["door"][0]
    assert "operator" not in results["node"][1]["door"][0]
    for name in ("node", "cluster"):
        alerts, sources = results[name]
        assert [a[0] for a in alerts] == [a[0] for a in ref_alerts], (name, alerts, ref_alerts)
        for got, ref in zip(alerts, ref_alerts, strict=True):
            assert abs(got[1] - ref[1]) <= frame and abs(got[2] - ref[2]) <= frame, (name, got, ref)
        assert sources["clip"] == ref_sources["clip"], (name, sources)
        assert sources["door"] and len(set(sources["door"])) == 1, (name, sources)
        assert not any(SECRET in s for ss in sources.values() for s in ss), (name, sources)
