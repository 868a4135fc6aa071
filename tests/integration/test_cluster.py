"""Scale-out with the real servers: 3 workers and 1 consumer as separate processes on Redis and PostgreSQL.

Three cameras watch the same video (the Hamilton clip looped; Lin-Manuel Miranda enrolled and approved), so the
cameras that run undisturbed give the reference: the camera whose worker is killed (or that lives through a
Redis crash) must end with exactly the same alerts — same birth frames, nothing lost, nothing twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from metrosight.bus.leases import Leases
from metrosight.bus.redis_streams import connect
from metrosight.store.models import AlertRecord, Run
from metrosight.store.repo import Store
from tests.conftest import missing_system, require_data
from tests.integration.helpers import bootstrap, cli, enrol_active

pytestmark = [pytest.mark.integration, pytest.mark.slow]

METROSIGHT = str(Path(sys.executable).with_name("metrosight"))
CAMERAS = ("cam-a", "cam-b", "cam-c")
LEASE = 3.0


class Cluster:
    """A home, a config, a PostgreSQL database, a Redis; processes started with :meth:`spawn`."""

    def __init__(self, root: Path, pg_url: str, redis_url: str, loops: int, monkeypatch: pytest.MonkeyPatch) -> None:
        ex = require_data("face_recognition_examples", "examples")
        from tests.integration.rtsp import looped_video

        self.root = root
        self.home = root / "home"
        self.home.mkdir()
        self.redis_url = redis_url
        self.db = pg_url
        video = looped_video(ex / "short_hamilton_clip.mp4", root / f"hamilton_x{loops}.mp4", loops)
        self.config = root / "cluster.yaml"
        cams = "\n".join(f"  - {{id: {c}, source: '{video}'}}" for c in CAMERAS)
        self.config.write_text(
            f"ingest: {{analysis_fps: 5}}\nprivacy: {{policy_refresh_seconds: 0.5}}\n"
            # one alert per track: these tests follow each track's alert through resumption (episodes: elsewhere)
            "alerts: {episode_window_s: 0, group_window_s: 0}\n"
            f"cameras:\n{cams}\n"
        )
        # every process of the deployment: the same database and the same master key
        monkeypatch.setenv("METROSIGHT__STORAGE__DATABASE_URL", pg_url)
        monkeypatch.setenv("METROSIGHT_MASTER_KEY", Fernet.generate_key().decode())
        self.env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.logs: dict[str, Path] = {}
        bootstrap(self.home)
        assert cli(self.home, "--as", "ada", "watchlist", "create", "wl", "--category", "wanted")[0] == 0
        code, out, err = enrol_active(self.home, "wl", "-s", "Lin-Manuel Miranda", ex / "lin-manuel-miranda.png")
        assert code == 0 and "enrolled 1 photo" in out, out + err
        assert not (self.home / "metrosight.db").exists()  # everything went to PostgreSQL

    def cli(self, *args: str) -> tuple[int, str, str]:
        return cli(self.home, "--config", str(self.config), *args)

    def spawn(self, name: str, *args: str) -> subprocess.Popen[str]:
        log = self.root / f"{name}.log"
        self.logs[name] = log
        p = subprocess.Popen(
            [METROSIGHT, "--home", str(self.home), "--config", str(self.config), *args],
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
            env=self.env,
        )
        self.procs[name] = p
        return p

    def worker(self, name: str) -> subprocess.Popen[str]:
        return self.spawn(
            name,
            "worker",
            "--bus",
            self.redis_url,
            "--name",
            name,
            "--lease-seconds",
            str(LEASE),
            "--realtime",
            "--until-done",
            "--json",
        )

    def consumer(self) -> subprocess.Popen[str]:
        return self.spawn("consumer", "consume", "--bus", self.redis_url, "--claim-idle", "2")

    def leases(self) -> Leases:
        return Leases(connect(self.redis_url), "test", LEASE)

    def wait_for(self, what, timeout: float, every: float = 0.2):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = what()
            if value:
                return value
            time.sleep(every)
        raise AssertionError(f"timed out after {timeout:.0f} s; logs: {self.tail()}")

    def tail(self) -> str:
        return "\n".join(f"--- {n}\n{p.read_text()[-1500:]}" for n, p in self.logs.items() if p.exists())

    def finish(self, workers: list[str], timeout: float = 240) -> dict[str, list[dict]]:
        """Wait for the workers to exit (--until-done), then for the consumer to drain; stop it."""
        lines: dict[str, list[dict]] = {}
        for w in workers:
            p = self.procs[w]
            try:
                out, _ = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                raise AssertionError(f"worker {w} did not finish: {self.tail()}") from None
            lines[w] = [json.loads(x) for x in (out or "").splitlines() if x.startswith("{")]
            assert p.returncode == 0, self.tail()
        c = connect(self.redis_url)

        def drained() -> bool:
            for topic in ("alerts", "alert-updates"):
                key = f"metrosight:stream:{topic}"
                if not c.exists(key):
                    continue
                groups = c.xinfo_groups(key)
                if not groups or groups[0]["pending"] or groups[0].get("lag"):
                    return False
            return True

        self.wait_for(drained, 60)
        time.sleep(0.5)
        self.procs["consumer"].send_signal(signal.SIGTERM)
        self.procs["consumer"].communicate(timeout=30)
        return lines

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)

    def alerts(self) -> dict[str, list[AlertRecord]]:
        store = Store.for_home(self.home, self.db)
        by_cam: dict[str, list[AlertRecord]] = {c: [] for c in CAMERAS}
        for a in store.alerts.all():
            by_cam[a.camera_id].append(a)
        return by_cam


def birth_keys(alerts: list[AlertRecord]) -> list[str]:
    """The camera-independent part of the event ids: birth frame and rank."""
    return sorted(a.event_id.rsplit(":", 1)[1] for a in alerts)


def assert_same_alerts_everywhere(cluster: Cluster) -> dict[str, list[AlertRecord]]:
    by_cam = cluster.alerts()
    reference = birth_keys(by_cam["cam-c"])
    assert len(reference) >= 2, f"Lin-Manuel Miranda should be alerted in each loop: {reference}"
    for cam, rows in by_cam.items():
        assert birth_keys(rows) == reference, f"{cam}: {birth_keys(rows)} != {reference}"
        assert {r.subject_name for r in rows} == {"Lin-Manuel Miranda"}
        assert all(r.crop_path and Path(r.crop_path).is_file() for r in rows)
    # the final last-seen times agree too (alert updates reached the store once the tracks ended)
    for key in reference:
        seen = {round(r.last_seen, 2) for rows in by_cam.values() for r in rows if r.event_id.endswith(":" + key)}
        assert len(seen) == 1, (key, seen)
    return by_cam


@pytest.fixture()
def cluster(tmp_path, pg_url, durable_redis, monkeypatch, request):
    c = Cluster(tmp_path, pg_url, durable_redis.url, getattr(request, "param", 2), monkeypatch)
    c.redis = durable_redis  # type: ignore[attr-defined]
    yield c
    c.stop_all()


def test_a_killed_workers_camera_resumes_elsewhere_with_no_alert_lost_or_duplicated(cluster):
    cluster.consumer()
    workers = ["w1", "w2", "w3"]
    for w in workers:
        cluster.worker(w)
    leases = cluster.leases()
    holders = cluster.wait_for(lambda: (h := {c: leases.holder(c) for c in CAMERAS}) and all(h.values()) and h, 120)
    assert set(holders.values()) == set(workers), f"one camera per worker: {holders}"
    victim_cam = "cam-a"
    victim = holders[victim_cam]
    # mid-video: after its first alert (the checkpoint is behind it: Lin is on screen), before the second loop
    cluster.wait_for(lambda: (p := leases.progress(victim_cam)) is not None and p.frame >= 30, 60)
    before = leases.progress(victim_cam)
    cluster.procs[victim].send_signal(signal.SIGKILL)
    cluster.procs[victim].wait(10)
    killed_at = time.monotonic()
    new_holder = cluster.wait_for(lambda: (h := leases.holder(victim_cam)) not in (None, victim) and h, 3 * LEASE + 10)
    took = time.monotonic() - killed_at
    assert new_holder in workers and new_holder != victim
    assert took <= LEASE + 2.5, f"camera moved after {took:.1f} s (lease {LEASE} s)"
    lines = cluster.finish([w for w in workers if w != victim])
    by_cam = assert_same_alerts_everywhere(cluster)
    after = leases.progress(victim_cam)
    assert after is not None and after.done and after.token == before.token  # same scope: same event ids
    # the resumed camera re-raised at least one alert the dead worker had already published (deduplicated)
    resumed = {x["event_id"] for x in lines[new_holder] if x.get("camera") == victim_cam}
    assert resumed and resumed <= {r.event_id for r in by_cam[victim_cam]}
    store = Store.for_home(cluster.home, cluster.db)
    runs = store.uow.read().query(Run).filter(Run.camera_id == victim_cam).all()
    assert {r.status for r in runs} == {"running", "finished"}  # the dead worker's run never closed
    assert store.audit.verify().ok


def test_redis_killed_and_restarted_mid_video_loses_and_duplicates_nothing(cluster):
    cluster.consumer()
    workers = ["w1", "w2", "w3"]
    for w in workers:
        cluster.worker(w)
    leases = cluster.leases()
    cluster.wait_for(lambda: all((p := leases.progress(c)) is not None and p.frame >= 25 for c in CAMERAS), 150)
    cluster.redis.kill()  # type: ignore[attr-defined]
    time.sleep(LEASE + 1)  # longer than a lease: every lease lapses while Redis is down
    cluster.redis.start()  # type: ignore[attr-defined]
    cluster.finish(workers)
    assert_same_alerts_everywhere(cluster)
    assert all(leases.progress(c).done for c in CAMERAS)


@pytest.mark.parametrize("cluster", [3], indirect=True)
def test_a_revoked_entry_stops_matching_on_every_worker_within_a_second(cluster):
    cluster.consumer()
    workers = ["w1", "w2", "w3"]
    for w in workers:
        cluster.worker(w)
    store = Store.for_home(cluster.home, cluster.db)
    cluster.wait_for(lambda: {a.camera_id for a in store.alerts.all()} == set(CAMERAS), 150)
    code, out, err = cluster.cli(
        "--as", "bob", "watchlist", "revoke", "wl", "Lin-Manuel Miranda", "--reason", "order withdrawn"
    )
    revoked_at = time.time()
    assert code == 0, out + err
    lines = cluster.finish(workers)
    published = [x for w in workers for x in lines[w] if x["type"] == "alert"]
    late = [x for x in published if x["wall"] > revoked_at + 1.0]
    assert late == [], f"alerts after the revocation: {late}"
    # the cameras went on seeing Lin-Manuel Miranda: each loop of the video alerted him before the revocation
    summaries = {x["worker"]: x for w in workers for x in lines[w] if x["type"] == "summary"}
    assert sorted(c for s in summaries.values() for c in s["finished"]) == sorted(CAMERAS)
    by_cam = cluster.alerts()
    assert all(rows and max(r.first_seen for r in rows) < 10.0 for rows in by_cam.values()), by_cam
    assert store.count(AlertRecord) == len({x["event_id"] for x in published})


def test_a_live_camera_of_a_killed_worker_resumes_on_another_at_the_live_edge(
    tmp_path, pg_url, durable_redis, monkeypatch
):
    """Two RTSP cameras, two workers: SIGKILL the worker of one after its first alert; the other worker takes the
    camera within the lease and alerts on it again (a new scope: live media time restarts with the connection)."""
    from tests.integration.rtsp import RtspServer, rtsp_missing

    why = rtsp_missing()
    if why:
        missing_system(why)
    c = Cluster(tmp_path, pg_url, durable_redis.url, 6, monkeypatch)
    video = next(tmp_path.glob("hamilton_x6.mp4"))
    try:
        with RtspServer({"a": video, "b": video}) as rtsp:
            c.config.write_text(
                "ingest: {analysis_fps: 5, stall_timeout_seconds: 3, open_timeout_seconds: 5}\n"
                "privacy: {policy_refresh_seconds: 0.5}\n"
                "alerts: {episode_window_s: 0, group_window_s: 0}\n"
                f"cameras:\n  - {{id: live-a, source: '{rtsp.url('a')}'}}\n"
                f"  - {{id: live-b, source: '{rtsp.url('b')}'}}\n"
            )
            c.consumer()
            for w in ("w1", "w2"):
                c.spawn(w, "worker", "--bus", c.redis_url, "--name", w, "--lease-seconds", str(LEASE), "--json")
            store = Store.for_home(c.home, c.db)
            leases = c.leases()

            def alerts_of(cam: str) -> list[AlertRecord]:
                return [a for a in store.alerts.all() if a.camera_id == cam]

            first = c.wait_for(lambda: alerts_of("live-a"), 150)
            victim = leases.holder("live-a")
            assert victim in ("w1", "w2")
            c.procs[victim].send_signal(signal.SIGKILL)
            c.procs[victim].wait(10)
            killed_at = time.monotonic()
            survivor = c.wait_for(lambda: (h := leases.holder("live-a")) not in (None, victim) and h, 3 * LEASE + 10)
            assert time.monotonic() - killed_at <= LEASE + 2.5
            scope = first[0].event_id.split(":")[1]
            again = c.wait_for(lambda: [a for a in alerts_of("live-a") if a.event_id.split(":")[1] != scope], 90)
            assert again and {a.subject_name for a in again} == {"Lin-Manuel Miranda"}
            assert alerts_of("live-b")  # the survivor's own camera went on
            c.procs[survivor].send_signal(signal.SIGTERM)
            out, _ = c.procs[survivor].communicate(timeout=60)
            assert c.procs[survivor].returncode == 0, c.tail()
            summary = next(json.loads(x) for x in out.splitlines() if x.startswith("{") and '"summary"' in x)
            assert summary["lost"] == []
    finally:
        c.stop_all()
