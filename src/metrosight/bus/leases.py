"""Camera leases, worker presence and file progress in Redis.

A worker *claims* a camera with ``SET <prefix>:lease:<camera> <owner> NX PX <lease ms>``, *renews* it (heartbeat)
every ``lease/3`` with a compare-and-extend script, and *releases* it with compare-and-delete. A worker that dies
stops renewing: its leases expire after at most ``lease_seconds`` and live workers claim the cameras. A worker
that cannot renew (Redis unreachable, or another worker holds the lease) stops those cameras at once, so two
workers run a camera together for at most the time it takes to notice (duplicates are harmless: event ids are
deterministic and the store keeps one copy).

Presence (the sorted set ``<prefix>:workers``, scored by expiry time) lets workers see how many of them are alive and
take a fair share of the cameras. Progress (``<prefix>:progress:<camera>``, a hash) records, for a file source, the
last frame at which the camera was quiescent (no live track) and every alert before it was on the bus, so another
worker resumes there; writes are fenced by the lease.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 2 or 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_SAVE_PROGRESS = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a file camera's processing stands.

    Attributes:
        source: the source it refers to (a changed source starts over).
        token: the event-id scope of this pass over the source (kept across failovers).
        checkpoint: index of the last frame after which the camera was quiescent with everything published
            (-1: none yet); a resuming worker analyses from the next frame.
        checkpoint_ts: media time of that frame, seconds.
        frame: the newest frame analysed (progress display).
        done: the source was read to its end and every alert published.
        owner: the worker that wrote it last.
    """

    source: str
    token: str
    checkpoint: int = -1
    checkpoint_ts: float = 0.0
    frame: int = -1
    done: bool = False
    owner: str = ""


class Leases:
    """Camera leases, presence and progress of one worker (``owner``) in Redis.

    Args:
        client: a ``redis.Redis``.
        owner: this worker's unique name.
        lease_seconds: how long a lease or presence lasts without renewal.
        prefix: key prefix (shared with the bus).
    """

    def __init__(self, client: Any, owner: str, lease_seconds: float, prefix: str = "metrosight") -> None:
        self.client = client
        self.owner = owner
        self.lease_ms = max(1, int(lease_seconds * 1000))
        self.prefix = prefix
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._save = client.register_script(_SAVE_PROGRESS)

    def lease_key(self, camera_id: str) -> str:
        return f"{self.prefix}:lease:{camera_id}"

    def progress_key(self, camera_id: str) -> str:
        return f"{self.prefix}:progress:{camera_id}"

    # -- presence -------------------------------------------------------------------------------------------
    @property
    def workers_key(self) -> str:
        """A sorted set: worker name → Unix time (ms) its presence expires."""
        return f"{self.prefix}:workers"

    def _now_ms(self) -> int:
        sec, usec = self.client.time()  # the server's clock: workers' clocks may differ
        return int(sec) * 1000 + int(usec) // 1000

    def announce(self) -> None:
        """Say this worker is alive for ``lease_seconds`` more."""
        self.client.zadd(self.workers_key, {self.owner: self._now_ms() + self.lease_ms})

    def retire(self) -> None:
        self.client.zrem(self.workers_key, self.owner)

    def live_count(self) -> int:
        """How many workers are alive now (O(log n): every worker asks every second)."""
        return int(self.client.zcount(self.workers_key, self._now_ms(), "+inf"))

    def live_workers(self) -> list[str]:
        """Names of the workers alive now (including this one once announced); prunes the dead."""
        now = self._now_ms()
        self.client.zremrangebyscore(self.workers_key, "-inf", now - 1)
        names = self.client.zrangebyscore(self.workers_key, now, "+inf")
        return sorted(n.decode() if isinstance(n, bytes) else n for n in names)

    # -- leases ---------------------------------------------------------------------------------------------
    def claim(self, camera_id: str) -> bool:
        """Take the camera if nobody holds it."""
        return bool(self.client.set(self.lease_key(camera_id), self.owner, nx=True, px=self.lease_ms))

    def renew(self, camera_id: str) -> bool:
        """Extend this worker's lease; re-take it if it lapsed and nobody else took it (e.g. Redis restarted).
        False: another worker holds it now."""
        return int(self._renew(keys=[self.lease_key(camera_id)], args=[self.owner, self.lease_ms])) > 0

    def release(self, camera_id: str) -> None:
        """Give the camera up (only if this worker holds it)."""
        self._release(keys=[self.lease_key(camera_id)], args=[self.owner])

    def holder(self, camera_id: str) -> str | None:
        v = self.client.get(self.lease_key(camera_id))
        return v.decode() if isinstance(v, bytes) else v

    # -- progress -------------------------------------------------------------------------------------------
    def progress(self, camera_id: str) -> Progress | None:
        raw = self.client.hgetall(self.progress_key(camera_id))
        if not raw:
            return None
        h = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        try:
            return Progress(
                source=h["source"],
                token=h["token"],
                checkpoint=int(h.get("checkpoint", -1)),
                checkpoint_ts=float(h.get("checkpoint_ts", 0.0)),
                frame=int(h.get("frame", -1)),
                done=h.get("done") == "1",
                owner=h.get("owner", ""),
            )
        except (KeyError, ValueError):
            log.warning("progress of %s is malformed (%r); starting the camera over", camera_id, h)
            return None

    def save_progress(self, camera_id: str, p: Progress) -> bool:
        """Write ``p`` if this worker still holds the camera's lease. False: the lease is lost (write nothing)."""
        fields = {
            "source": p.source,
            "token": p.token,
            "checkpoint": str(p.checkpoint),
            "checkpoint_ts": repr(p.checkpoint_ts),
            "frame": str(p.frame),
            "done": "1" if p.done else "0",
            "owner": self.owner,
        }
        args: list[str] = [self.owner]
        for k, v in fields.items():
            args += [k, v]
        return bool(self._save(keys=[self.lease_key(camera_id), self.progress_key(camera_id)], args=args))

    def reset_progress(self, camera_id: str) -> None:
        self.client.delete(self.progress_key(camera_id))
