"""What the service knows live: a wake-up hub for the alert feed, and the cameras' state board.

Both are fed from the bus (the in-process bus of ``metrosight serve``; a Redis consumer can publish to the same
callbacks). The alert feed itself reads new rows from the store, so alerts stored by other processes appear too;
the bus only wakes it up at once instead of at its next poll.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from metrosight.bus.payloads import CameraStateV1, CameraStatsV1
from metrosight.config.model import CameraConfig
from metrosight.core.source import SourceSpec, SourceSyntaxError


class AlertHub:
    """Wakes every open live feed when an alert is published (thread-safe; feeds run on the event loop)."""

    def __init__(self) -> None:
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lock = threading.Lock()
        self.published = 0

    def register(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        w = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.add(w)
        return w

    def unregister(self, w: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            self._waiters.discard(w)

    def notify(self, _payload: object = None) -> None:
        """Bus handler: wake the feeds (callable from any thread)."""
        self.published += 1
        with self._lock:
            waiters = list(self._waiters)
        for loop, ev in waiters:
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:  # the loop closed
                self.unregister((loop, ev))


COUNTED = (
    "frames_decoded",
    "frames_analysed",
    "frames_dropped",
    "frames_skipped",
    "frames_codec_skipped",
    "decode_seconds",
    "faces",
    "embedded",
    "tracks",
    "alerts",
    "reconnects",
)


def safe_source(cfg: CameraConfig) -> str:
    """A configured camera's source as it may be shown: parsed, credentials removed
    (:attr:`~metrosight.core.source.SourceSpec.display`)."""
    try:
        return SourceSpec.parse(cfg.source, cfg.rtsp_transport).display
    except SourceSyntaxError:  # validated with the config; never show what could not be parsed
        return "(unreadable source)"


@dataclass(slots=True)
class _Cam:
    cfg: CameraConfig | None
    camera_id: str
    state: str = "configured"
    reason: str = ""
    since: float | None = None
    prev: CameraStatsV1 | None = None
    last: CameraStatsV1 | None = None
    fps: float | None = None
    faces_per_s: float | None = None
    snapshot: bytes | None = None
    snapshot_wall: float | None = None
    base: dict[str, Any] = field(default_factory=dict)  # totals of earlier worker lives

    def totals(self) -> dict[str, Any]:
        """Counters over the service's lifetime (a restarted worker starts from zero; its past is the base)."""
        out: dict[str, Any] = {k: self.base.get(k, 0) for k in COUNTED}
        stage_s: dict[str, float] = dict(self.base.get("stage_seconds", {}))
        stage_b: dict[str, list[int]] = {k: list(v) for k, v in self.base.get("stage_buckets", {}).items()}
        s = self.last
        if s is not None:
            for k in COUNTED:
                out[k] += getattr(s, k)
            for k, v in s.stage_seconds.items():
                stage_s[k] = stage_s.get(k, 0.0) + v
            for k, b in s.stage_buckets.items():
                old = stage_b.get(k, [0] * len(b))
                stage_b[k] = [x + y for x, y in zip(old, b, strict=False)] if len(old) == len(b) else list(b)
        out["stage_seconds"], out["stage_buckets"] = stage_s, stage_b
        out["decoder"] = s.decoder if s is not None else self.base.get("decoder", "software")
        return out


def _every(_camera_id: str) -> bool:
    return True


class CameraBoard:
    """State, rates and the latest redacted snapshot of each camera.

    Args:
        cameras: the configured cameras (listed even before they report).
    """

    def __init__(self, cameras: list[CameraConfig]) -> None:
        self._lock = threading.Lock()
        self._cams: dict[str, _Cam] = {c.id: _Cam(c, c.id) for c in cameras}

    def _cam(self, camera_id: str) -> _Cam:
        return self._cams.setdefault(camera_id, _Cam(None, camera_id))

    def on_state(self, p: CameraStateV1) -> None:
        with self._lock:
            c = self._cam(p.camera_id)
            c.state, c.reason, c.since = p.state, p.reason, p.wall_time

    def on_stats(self, p: CameraStatsV1) -> None:
        with self._lock:
            c = self._cam(p.camera_id)
            prev = c.last
            restarted = prev is not None and (p.worker != prev.worker or p.frames_analysed < prev.frames_analysed)
            if prev is not None and restarted:
                c.base = c.totals()  # keep what the previous worker life counted
                c.last = None
                prev = None
            if prev is not None and p.wall_time > prev.wall_time:
                dt = p.wall_time - prev.wall_time
                c.fps = (p.frames_analysed - prev.frames_analysed) / dt
                c.faces_per_s = (p.faces - prev.faces) / dt
            c.prev, c.last = prev, p

    def on_snapshot(self, camera_id: str, jpeg: bytes, wall_time: float | None = None) -> None:
        """The newest whole-frame snapshot of a camera, every face already blurred. Kept in memory only."""
        with self._lock:
            c = self._cam(camera_id)
            c.snapshot, c.snapshot_wall = jpeg, wall_time or time.time()

    def snapshot(self, camera_id: str) -> tuple[bytes, float] | None:
        with self._lock:
            c = self._cams.get(camera_id)
            if c is None or c.snapshot is None:
                return None
            return c.snapshot, c.snapshot_wall or 0.0

    def known(self, camera_id: str) -> bool:
        with self._lock:
            return camera_id in self._cams

    def totals(self, visible: Callable[[str], bool] = _every) -> dict[str, dict[str, Any]]:
        """Per camera (``visible`` ones only): lifetime counters (``COUNTED``), ``stage_seconds`` and
        ``stage_buckets``, ``decoder`` (software, cuda, vaapi) and ``state``."""
        with self._lock:
            return {cid: {**c.totals(), "state": c.state} for cid, c in self._cams.items() if visible(cid)}

    def rows(self, visible: Callable[[str], bool] = _every) -> list[dict[str, Any]]:
        """One dict per camera (``visible`` ones only, e.g. a reader's ``View.camera``): id, source (credentials
        hidden), line, state, reason, since, fps, faces_per_s, last_frame (Unix time), frames, faces, alerts,
        has_snapshot."""
        with self._lock:
            out = []
            for cid in sorted(self._cams):
                if not visible(cid):
                    continue
                c = self._cams[cid]
                s = c.last
                t = c.totals()
                out.append(
                    {
                        "id": cid,
                        "source": safe_source(c.cfg) if c.cfg else None,
                        "line": c.cfg.line if c.cfg else None,
                        "state": c.state,
                        "reason": c.reason,
                        "since": c.since,
                        "fps": round(c.fps, 2) if c.fps is not None else None,
                        "faces_per_s": round(c.faces_per_s, 2) if c.faces_per_s is not None else None,
                        "last_frame": s.last_frame_wall if s is not None and s.last_frame_wall else None,
                        "frames": t["frames_analysed"],
                        "faces": t["faces"],
                        "tracks": t["tracks"],
                        "alerts": t["alerts"],
                        "has_snapshot": c.snapshot is not None,
                    }
                )
            return out
