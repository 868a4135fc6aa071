"""Prometheus metrics of the operator service (``/metrics``), built with prometheus-client.

Per camera: frames, faces, tracks, alerts (counters over the service's lifetime), the decode cost (decoding CPU
seconds, frames the decoder skipped, frames decoded but not due) and the decoder (a gauge per kind, 1 for the one in
use), the camera state (a gauge per state, 1 for the current one), frames a second, newest frame time, and per-stage
latency histograms (detect, track, align, embed, match; from :attr:`metrosight.pipeline.camera.CameraStats.stage_hist`).
Also the alerts stored, by review status, and the open live feeds.

A scoped reader (:mod:`metrosight.policy.scope`) is served a registry of their own (:func:`scoped_registry`): the
cameras of their scope only, the alerts of their scope by status, and no gallery-wide operating point.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from metrosight.api.live import CameraBoard
from metrosight.pipeline.camera import STAGE_BUCKETS

log = logging.getLogger(__name__)

STATES = ("configured", "starting", "live", "reconnecting", "down", "stopped")


class ServiceCollector(Collector):
    """Reads the camera board (and a store counter) at scrape time."""

    def __init__(
        self,
        board: CameraBoard,
        alert_counts: Callable[[], dict[str, int]] | None = None,
        operating: Callable[[], dict[str, Any]] | None = None,
        home: Path | None = None,
        visible: Callable[[str], bool] | None = None,
    ) -> None:
        self.board = board
        self.alert_counts = alert_counts
        self.operating = operating
        self.home = home
        self.visible = visible

    def collect(self) -> Iterator[Metric]:
        totals = self.board.totals(self.visible) if self.visible else self.board.totals()
        rows = {r["id"]: r for r in (self.board.rows(self.visible) if self.visible else self.board.rows())}
        for name, key, text in (
            ("metrosight_frames", "frames_analysed", "frames analysed"),
            ("metrosight_frames_decoded", "frames_decoded", "frames decoded from the source"),
            ("metrosight_frames_dropped", "frames_dropped", "frames dropped under load"),
            ("metrosight_frames_skipped", "frames_skipped", "frames decoded but not due under the analysis rate"),
            ("metrosight_frames_codec_skipped", "frames_codec_skipped", "frames the decoder left undecoded"),
            ("metrosight_decode_seconds", "decode_seconds", "CPU time of the camera's decoding, seconds"),
            ("metrosight_faces", "faces", "faces detected"),
            ("metrosight_descriptors", "embedded", "face descriptors computed"),
            ("metrosight_tracks", "tracks", "face tracks started"),
            ("metrosight_alerts", "alerts", "alerts raised"),
            ("metrosight_reconnects", "reconnects", "source reconnections"),
        ):
            c = CounterMetricFamily(name, text, labels=["camera"])
            for cid, t in sorted(totals.items()):
                c.add_metric([cid], float(t[key]))
            yield c
        dec = GaugeMetricFamily(
            "metrosight_camera_decoder",
            "1 for what decodes the camera (software, cuda, vaapi)",
            labels=["camera", "decoder"],
        )
        for cid, t in sorted(totals.items()):
            dec.add_metric([cid, str(t["decoder"])], 1.0)
        yield dec
        g = GaugeMetricFamily("metrosight_camera_state", "1 for the camera's current state", labels=["camera", "state"])
        for cid, t in sorted(totals.items()):
            for st in STATES:
                g.add_metric([cid, st], 1.0 if t["state"] == st else 0.0)
        yield g
        fps = GaugeMetricFamily("metrosight_camera_fps", "frames analysed a second (last report)", labels=["camera"])
        last = GaugeMetricFamily(
            "metrosight_camera_last_frame_timestamp_seconds", "Unix time of the newest decoded frame", labels=["camera"]
        )
        for cid, r in sorted(rows.items()):
            if r["fps"] is not None:
                fps.add_metric([cid], float(r["fps"]))
            if r["last_frame"]:
                last.add_metric([cid], float(r["last_frame"]))
        yield fps
        yield last
        h = HistogramMetricFamily(
            "metrosight_stage_seconds", "wall time of one pipeline stage on one frame", labels=["camera", "stage"]
        )
        for cid, t in sorted(totals.items()):
            for stage, counts in sorted(t["stage_buckets"].items()):
                if len(counts) != len(STAGE_BUCKETS) + 1:
                    continue
                cum, buckets = 0, []
                for bound, n in zip((*map(str, STAGE_BUCKETS), "+Inf"), counts, strict=True):
                    cum += n
                    buckets.append((bound, float(cum)))
                h.add_metric([cid, stage], buckets, float(t["stage_seconds"].get(stage, 0.0)))
        yield h
        if self.alert_counts is not None:
            a = GaugeMetricFamily(
                "metrosight_alerts_stored", "alerts in the store, by review status", labels=["status"]
            )
            for status, n in sorted(self.alert_counts().items()):
                a.add_metric([status], float(n))
            yield a
        if self.operating is not None:
            yield from self._operating(self.operating)
        if self.home is not None:
            yield from self._disk(self.home)

    @staticmethod
    def _disk(home: Path) -> Iterator[Metric]:
        """Free and total bytes of the filesystem holding the home (database, media, keys)."""
        try:
            usage = shutil.disk_usage(home)
        except OSError as exc:
            log.warning("disk usage of %s unavailable for /metrics: %s", home, exc)
            return
        free = GaugeMetricFamily("metrosight_home_free_bytes", "bytes free on the home's filesystem (unprivileged)")
        free.add_metric([], float(usage.free))
        size = GaugeMetricFamily("metrosight_home_size_bytes", "size of the home's filesystem in bytes")
        size.add_metric([], float(usage.total))
        yield free
        yield size

    @staticmethod
    def _operating(operating: Callable[[], dict[str, Any]]) -> Iterator[Metric]:
        try:
            op = operating()
        except Exception as exc:  # noqa: BLE001 - a scrape never fails for it; the API endpoint names the cause
            log.warning("operating point unavailable for /metrics: %s", exc)
            return
        for name, key, text in (
            ("metrosight_target_fpir", "target_fpir", "configured false-positive identification rate per search"),
            ("metrosight_fpir_per_search", "fpir_per_search", "FPIR of one search over the gallery (per-list targets)"),
            ("metrosight_match_threshold", "threshold", "match threshold in force for the default target"),
            ("metrosight_active_persons", "persons", "active persons the threshold is computed for"),
            ("metrosight_impostor_pairs", "impostor_pairs", "impostor comparisons the threshold is estimated from"),
            ("metrosight_searches_per_day", "searches_per_day", "watchlist searches (face tracks) a day"),
            (
                "metrosight_expected_false_candidates_per_day",
                "expected_false_candidates_per_day",
                "expected candidates a day for people on no list: FPIR per search x searches a day",
            ),
        ):
            if op.get(key) is not None:
                g = GaugeMetricFamily(name, text)
                g.add_metric([], float(op[key]))
                yield g


def make_registry(
    board: CameraBoard,
    alert_counts: Callable[[], dict[str, int]] | None = None,
    operating: Callable[[], dict[str, Any]] | None = None,
    home: Path | None = None,
    **extra: Any,
) -> CollectorRegistry:
    """A registry (one per app, so several apps can live in one process) with the service's collector;
    ``operating`` gives the recognition operating point (gauges ``metrosight_match_threshold``,
    ``metrosight_expected_false_candidates_per_day`` …); ``home`` adds ``metrosight_home_free_bytes`` and
    ``metrosight_home_size_bytes`` of its filesystem."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(ServiceCollector(board, alert_counts, operating, home))
    return reg


def scoped_registry(
    board: CameraBoard, visible: Callable[[str], bool], alert_counts: Callable[[], dict[str, int]], home: Path | None
) -> CollectorRegistry:
    """A registry for one scoped reader: the cameras ``visible`` to them, ``alert_counts`` of their scope."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(ServiceCollector(board, alert_counts, None, home, visible))
    return reg


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
