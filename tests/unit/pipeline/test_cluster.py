"""The scale-out worker's pure parts: fair shares, event-id scopes of files, policy reads through Redis."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from metrosight.pipeline.cluster import SharedPolicyReads, fair_share, file_scope


def test_fair_share_spreads_cameras_and_respects_the_cap():
    assert fair_share(3, 3, None) == 1
    assert fair_share(3, 2, None) == 2  # a worker died: the others take its camera
    assert fair_share(10, 0, None) == 10
    assert fair_share(10, 3, 2) == 2


def test_file_scope_is_stable_per_camera_and_file_and_changes_with_the_file(tmp_path):
    f = tmp_path / "v.mp4"
    f.write_bytes(b"x" * 10)
    a = file_scope("cam-1", str(f))
    assert a == file_scope("cam-1", str(f)) and a != file_scope("cam-2", str(f))
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # the file was replaced
    assert file_scope("cam-1", str(f)) != a
    assert len(file_scope("cam-1", "rtsp://x")) == 12  # not a file: still an id


class FakeRedis:
    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.gets = 0

    def get(self, key: str) -> bytes | None:
        self.gets += 1
        return self.values.get(key)


class FakeStore:
    """The store's repositories the shared reads use: ``policy`` and ``windows``."""

    def __init__(self) -> None:
        self.version = 7
        self.calls = {"gallery_version": 0, "expire_due": 0, "windows": 0}
        self.window_list: list = []
        self.policy = SimpleNamespace(version=self._version, expire_due=self._expire_due)
        self.windows = SimpleNamespace(all=self._windows)

    def _version(self) -> int:
        self.calls["gallery_version"] += 1
        return self.version

    def _expire_due(self, now=None) -> int:
        self.calls["expire_due"] += 1
        return 0

    def _windows(self) -> list:
        self.calls["windows"] += 1
        return self.window_list


def window(camera: str) -> SimpleNamespace:
    now = datetime.now(UTC)
    return SimpleNamespace(
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
        scope={"cameras": [camera], "lines": []},
    )


def test_policy_reads_come_from_the_mirror_and_a_cache():
    redis, store = FakeRedis(), FakeStore()
    reads = SharedPolicyReads(store.policy, store.windows, redis, "ms", ttl=60.0)
    redis.values["ms:gallery-version"] = b"12"
    assert reads.version() == 12 and reads.version() == 12
    assert redis.gets == 1 and store.calls["gallery_version"] == 0  # cached; the database not asked
    assert reads.expire_due() == 0 and store.calls["expire_due"] == 0  # the mirror expires entries


def test_without_a_mirror_the_database_answers():
    redis, store = FakeRedis(), FakeStore()
    reads = SharedPolicyReads(store.policy, store.windows, redis, "ms", ttl=0.0)
    assert reads.version() == 7 and store.calls["gallery_version"] == 1
    reads.expire_due()
    assert store.calls["expire_due"] == 1


def test_windows_are_reread_only_when_the_version_changes():
    redis, store = FakeRedis(), FakeStore()
    reads = SharedPolicyReads(store.policy, store.windows, redis, "ms", ttl=0.0)
    redis.values["ms:gallery-version"] = b"1"
    assert reads.allows("cam-1", None) and reads.allows("cam-1", None)
    assert store.calls["windows"] == 1
    store.window_list = [window("cam-1")]  # a window is added: the version is bumped with it
    assert reads.allows("cam-1", None)  # same version: the cached (empty) list
    redis.values["ms:gallery-version"] = b"2"
    assert not reads.allows("cam-1", None) and reads.allows("cam-2", None)
    assert store.calls["windows"] == 2
