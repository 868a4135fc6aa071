"""Runs: one row per camera run (which host and process ran it, what it saw, how it ended)."""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select, update

from metrosight.policy.rules import aware
from metrosight.store.models import Run
from metrosight.store.uow import UnitOfWork

log = logging.getLogger(__name__)


def process_alive(pid: int, started_at: datetime | None) -> bool:
    """Whether process ``pid`` of this host exists, is not a zombie, and is the one that started at
    ``started_at`` (not a later process that reused the number)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):
            return False
        btime = next(int(x.split()[1]) for x in Path("/proc/stat").read_text().splitlines() if x.startswith("btime"))
        began = btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return True  # no /proc: the process exists, assume it is the same
    return started_at is None or began <= started_at.timestamp() + 2.0


class RunRepository:
    """Camera runs (``store.runs``)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def start(self, camera_id: str, source: str) -> int:
        """A new ``running`` run row, recording this host and process (see :meth:`close_dead`)."""
        with self.uow.write() as s:
            run = Run(camera_id=camera_id, source=source, host=socket.gethostname(), pid=os.getpid())
            s.add(run)
            s.flush()
            return run.id

    def finish(
        self, run_id: int, status: str, frames: int, faces: int, tracks: int, alerts: int, error: str | None = None
    ) -> None:
        with self.uow.write() as s:
            s.execute(
                update(Run)
                .where(Run.id == run_id)
                .values(
                    status=status,
                    finished_at=datetime.now(UTC),
                    frames=frames,
                    faces=faces,
                    tracks=tracks,
                    alerts=alerts,
                    error=error,
                )
            )

    def close_dead(self) -> int:
        """Close as ``crashed`` the runs left ``running`` on this host by a process that no longer exists (killed,
        or the machine went down); called whenever metrosight starts. Runs of other hosts are left alone.
        Returns how many were closed."""
        host = socket.gethostname()
        with self.uow.read() as s:
            rows = list(
                s.execute(
                    select(Run.id, Run.pid, Run.started_at).where(
                        Run.status == "running", Run.host == host, Run.pid.is_not(None)
                    )
                )
            )
        dead = [(rid, pid) for rid, pid, started in rows if pid is not None and not process_alive(pid, aware(started))]
        if not dead:
            return 0
        with self.uow.write() as s:
            for rid, pid in dead:
                s.execute(
                    update(Run)
                    .where(Run.id == rid, Run.status == "running")
                    .values(
                        status="crashed",
                        finished_at=datetime.now(UTC),
                        error=f"process {pid} on {host} ended without closing the run (killed or crashed)",
                    )
                )
        log.warning("closed %d run(s) left running by processes that died", len(dead))
        return len(dead)

    def tracks_since(self, since: datetime) -> tuple[int, datetime | None]:
        """Face tracks (one watchlist search each) of the runs finished since ``since``, and the earliest start of
        those runs (``None`` when there were none)."""
        with self.uow.read() as s:
            n, first = s.execute(
                select(func.coalesce(func.sum(Run.tracks), 0), func.min(Run.started_at)).where(
                    Run.finished_at.is_not(None), Run.finished_at >= since
                )
            ).one()
        return int(n), aware(first) if first is not None else None
