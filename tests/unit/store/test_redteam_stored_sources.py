"""Red team: camera addresses stored with their credentials by an earlier version are rewritten at upgrade
(migration 0011): runs' source and error, camera-state events' reason. Before, an upgraded installation kept them
(and served the events' reasons)."""

from __future__ import annotations

import json

from sqlalchemy import create_engine, text

from metrosight.store.db import alembic_config, open_engine

OLD = [
    ("rtsp://admin:P@ssw0rd@127.0.0.1:8554/stream1", "rtsp://***@127.0.0.1:8554/stream1"),
    ("rtsp://:OnlyPassword9@127.0.0.1:8554/stream2", "rtsp://***@127.0.0.1:8554/stream2"),
    ("http://127.0.0.1/cam.mjpg?token=Tok3nSecret", "http://127.0.0.1/cam.mjpg?token=***"),
    ("rtsp:/admin:Typo5ecret@127.0.0.1/x", "(unreadable source)"),  # a mistyped address once taken for a file
    ("/videos/platform.mp4", "/videos/platform.mp4"),
]
SECRETS = ("P@ssw0rd", "OnlyPassword9", "Tok3nSecret", "Typo5ecret")


def old_database(url: str) -> None:
    from alembic import command

    engine = create_engine(url)
    with engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0010")
        for i, (source, _) in enumerate(OLD, start=1):
            conn.execute(
                text(
                    "INSERT INTO runs (id, camera_id, source, status, started_at, frames, faces, tracks, alerts, error)"
                    " VALUES (:i, :c, :s, 'failed', '2026-01-01', 0, 0, 0, 0, :e)"
                ),
                {
                    "i": i,
                    "c": f"cam-{i}",
                    "s": source,
                    "e": f"cannot open {source}: [Errno 111] Connection refused: '{source}'",
                },
            )
            data = {"state": "down", "reason": f"2 attempts failed; last: {source}: refused", "attempt": 2}
            conn.execute(
                text(
                    "INSERT INTO events (event_id, camera_id, kind, start_ts, data, run_id, created_at)"
                    " VALUES (:e, :c, 'camera_state', 0, :d, :r, '2026-01-01')"
                ),
                {"e": f"cam-{i}:state:{i}", "c": f"cam-{i}", "d": json.dumps(data), "r": i},
            )
    engine.dispose()


def check_upgraded(url: str) -> None:
    engine = open_engine(url)  # upgrades to head
    with engine.connect() as c:
        runs = c.execute(text("SELECT id, source, error FROM runs ORDER BY id")).all()
        events = c.execute(text("SELECT run_id, data FROM events ORDER BY run_id")).all()
        everything = repr(runs) + repr(events)
    engine.dispose()
    assert [r.source for r in runs] == [shown for _, shown in OLD]
    for secret in SECRETS:
        assert secret not in everything, secret
    assert "Connection refused" in runs[0].error and "rtsp://***@127.0.0.1:8554/stream1" in runs[0].error
    assert len(events) == len(OLD)  # rewritten, not deleted


def test_upgrade_removes_stored_credentials_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old_database(url)
    check_upgraded(url)
