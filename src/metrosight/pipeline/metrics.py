"""Counters and gauges of a node's cameras, for a ``/metrics`` endpoint (Prometheus text format) and the CLI.

The supervisor feeds :class:`NodeMetrics` with what its workers report (camera states, per-camera counters,
alerts with the decode time of the frame that raised them); :meth:`NodeMetrics.prometheus` renders them. Counters
survive worker restarts (a restarted worker starts from zero; its previous totals are kept as a base).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from metrosight.bus.payloads import CameraStateV1, CameraStatsV1

STATES = ("starting", "live", "reconnecting", "down", "stopped")
COUNTERS = (
    "frames_decoded",
    "frames_skipped",
    "frames_dropped",
    "frames_codec_skipped",
    "frames_analysed",
    "faces",
    "embedded",
    "tracks",
    "alerts",
    "reconnects",
    "stalls",
    "failed_attempts",
    "frames_gated",  # motion gating: analysed frames with no face detection
    "detect_pixels",  # frame pixels given to the face detector; over frame_pixels: the share searched
    "frame_pixels",
)


@dataclass(slots=True)
class CameraMetrics:
    """What is known of one camera. ``totals`` are counters over the node's lifetime; ``decode_seconds`` the CPU
    time its decoding took over the node's lifetime, seconds; ``decoder`` what decodes it now."""

    camera_id: str
    state: str = "starting"
    state_since: float = field(default_factory=time.time)
    reason: str = ""
    worker: int | None = None
    restarts: int = 0
    last_frame_wall: float = 0.0
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    _base: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    _current: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    decode_seconds: float = 0.0
    decoder: str = "software"
    _decode_base: float = 0.0

    def count(self, current: dict[str, int], decode_seconds: float = 0.0) -> None:
        """The worker's counters now (since its start): the totals are its base plus these."""
        for name in COUNTERS:
            self._current[name] = current[name]
            self.totals[name] = self._base[name] + current[name]
        self.decode_seconds = self._decode_base + decode_seconds

    def restarted(self) -> None:
        """Its worker restarted (counters from zero again): what it had counted becomes the base."""
        self.restarts += 1
        self._base = dict(self.totals)
        self._current = dict.fromkeys(COUNTERS, 0)
        self._decode_base = self.decode_seconds


class NodeMetrics:
    """Thread-safe store of camera metrics and alert latencies (the last ``keep`` alerts).

    Args:
        keep: alert latencies kept for the quantiles.
        home: the node's home; adds the free and total bytes of its filesystem (``metrosight_home_free_bytes``,
            ``metrosight_home_size_bytes``), where crops and the database are written.
    """

    def __init__(self, keep: int = 10_000, home: Path | None = None) -> None:
        self.home = home
        self._lock = threading.Lock()
        self.cameras: dict[str, CameraMetrics] = {}
        self.latencies: deque[float] = deque(maxlen=keep)
        self.alerts_stored = 0
        self.worker_restarts = 0
        self.worker_cpu: dict[int, float] = {}
        self._cpu_base: dict[int, float] = {}

    def camera(self, camera_id: str) -> CameraMetrics:
        with self._lock:
            return self.cameras.setdefault(camera_id, CameraMetrics(camera_id))

    def on_state(self, p: CameraStateV1) -> None:
        with self._lock:
            cam = self.cameras.setdefault(p.camera_id, CameraMetrics(p.camera_id))
            cam.state, cam.state_since, cam.reason, cam.worker = p.state, p.wall_time, p.reason, p.worker

    def on_stats(self, p: CameraStatsV1) -> None:
        with self._lock:
            cam = self.cameras.setdefault(p.camera_id, CameraMetrics(p.camera_id))
            cam.count({name: int(getattr(p, name)) for name in COUNTERS}, p.decode_seconds)
            cam.decoder = p.decoder
            cam.last_frame_wall = max(cam.last_frame_wall, p.last_frame_wall)
            self.worker_cpu[p.worker] = self._cpu_base.get(p.worker, 0.0) + p.worker_cpu_seconds

    def on_worker_restart(self, worker: int, camera_ids: list[str]) -> None:
        """A worker is restarted: its counters restart from zero, so keep what it had as the base."""
        with self._lock:
            self.worker_restarts += 1
            self._cpu_base[worker] = self.worker_cpu.get(worker, 0.0)
            for cid in camera_ids:
                cam = self.cameras.setdefault(cid, CameraMetrics(cid))
                cam.restarted()

    def on_alert_stored(self, frame_wall: float | None, stored_wall: float) -> None:
        """An alert was stored; its latency runs from the decode of the frame that raised it."""
        with self._lock:
            self.alerts_stored += 1
            if frame_wall:
                self.latencies.append(max(0.0, stored_wall - frame_wall))

    def latency_quantiles(self, qs: tuple[float, ...] = (0.5, 0.95)) -> dict[float, float | None]:
        """Alert latency quantiles in seconds (``None`` before the first alert)."""
        with self._lock:
            values = np.array(self.latencies, dtype=np.float64)
        if values.size == 0:
            return dict.fromkeys(qs)
        return {q: float(np.quantile(values, q)) for q in qs}

    def snapshot(self) -> dict[str, object]:
        """A JSON-able view: per camera its state, reason, totals; node-wide latency quantiles."""
        now = time.time()
        with self._lock:
            cams = {
                c.camera_id: {
                    "state": c.state,
                    "since": round(c.state_since, 3),
                    "reason": c.reason,
                    "worker": c.worker,
                    "restarts": c.restarts,
                    "last_frame_age_s": round(now - c.last_frame_wall, 3) if c.last_frame_wall else None,
                    **c.totals,
                    "decode_seconds": round(c.decode_seconds, 3),
                    "decoder": c.decoder,
                }
                for c in self.cameras.values()
            }
            cpu = dict(self.worker_cpu)
        q = self.latency_quantiles()
        return {
            "cameras": cams,
            "alerts_stored": self.alerts_stored,
            "worker_restarts": self.worker_restarts,
            "worker_cpu_seconds": {str(k): round(v, 3) for k, v in cpu.items()},
            "alert_latency_p50_s": q[0.5],
            "alert_latency_p95_s": q[0.95],
        }

    def prometheus(self) -> str:
        """The metrics in the Prometheus text exposition format (version 0.0.4)."""
        now = time.time()
        lines: list[str] = []

        def head(name: str, kind: str, text: str) -> None:
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")

        with self._lock:
            cams = sorted(self.cameras.values(), key=lambda c: c.camera_id)
            head("metrosight_camera_state", "gauge", "1 for the camera's current state")
            for c in cams:
                for st in STATES:
                    lines.append(
                        f'metrosight_camera_state{{camera="{_esc(c.camera_id)}",state="{st}"}} {int(c.state == st)}'
                    )
            for name in COUNTERS:
                metric = f"metrosight_camera_{name}_total"
                head(metric, "counter", f"{name.replace('_', ' ')} since the node started")
                for c in cams:
                    lines.append(f'{metric}{{camera="{_esc(c.camera_id)}"}} {c.totals[name]}')
            head("metrosight_camera_decode_seconds_total", "counter", "CPU time of the camera's decoding, seconds")
            for c in cams:
                lines.append(
                    f'metrosight_camera_decode_seconds_total{{camera="{_esc(c.camera_id)}"}} {c.decode_seconds:.3f}'
                )
            head("metrosight_camera_decoder", "gauge", "1 for what decodes the camera (software, cuda, vaapi)")
            for c in cams:
                lines.append(f'metrosight_camera_decoder{{camera="{_esc(c.camera_id)}",decoder="{_esc(c.decoder)}"}} 1')
            head("metrosight_camera_last_frame_age_seconds", "gauge", "seconds since the newest decoded frame")
            for c in cams:
                if c.last_frame_wall:
                    lines.append(
                        f'metrosight_camera_last_frame_age_seconds{{camera="{_esc(c.camera_id)}"}} '
                        f"{now - c.last_frame_wall:.3f}"
                    )
            head(
                "metrosight_camera_worker_restarts_total",
                "counter",
                "restarts of the camera's worker process",
            )
            for c in cams:
                lines.append(f'metrosight_camera_worker_restarts_total{{camera="{_esc(c.camera_id)}"}} {c.restarts}')
            head("metrosight_alerts_stored_total", "counter", "alerts stored by this node")
            lines.append(f"metrosight_alerts_stored_total {self.alerts_stored}")
            head("metrosight_worker_cpu_seconds_total", "counter", "CPU time of each worker process")
            for w, v in sorted(self.worker_cpu.items()):
                lines.append(f'metrosight_worker_cpu_seconds_total{{worker="{w}"}} {v:.3f}')
        q = self.latency_quantiles()
        head("metrosight_alert_latency_seconds", "summary", "frame decoded to alert stored")
        for k, qv in q.items():
            if qv is not None:
                lines.append(f'metrosight_alert_latency_seconds{{quantile="{k}"}} {qv:.4f}')
        lines.append(f"metrosight_alert_latency_seconds_count {len(self.latencies)}")
        if self.home is not None:
            try:
                usage = shutil.disk_usage(self.home)
            except OSError:
                pass  # a home that went away: the camera states say more than a missing gauge
            else:
                head("metrosight_home_free_bytes", "gauge", "bytes free on the home's filesystem (unprivileged)")
                lines.append(f"metrosight_home_free_bytes {usage.free}")
                head("metrosight_home_size_bytes", "gauge", "size of the home's filesystem in bytes")
                lines.append(f"metrosight_home_size_bytes {usage.total}")
        return "\n".join(lines) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
