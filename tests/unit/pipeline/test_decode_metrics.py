"""Decode cost per camera on /metrics: the node's metrics file and the operator service both export the decoding
CPU seconds, the frames the decoder skipped and the decoder in use, from the counters a worker sends."""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families

from metrosight.api.live import CameraBoard
from metrosight.api.metrics import make_registry, render
from metrosight.bus.payloads import CameraStatsV1
from metrosight.pipeline.metrics import NodeMetrics


def stats(decode_seconds: float, codec_skipped: int, worker: int = 0, decoder: str = "software") -> CameraStatsV1:
    return CameraStatsV1(
        camera_id="cam-1",
        worker=worker,
        state="live",
        frames_decoded=53,
        frames_skipped=28,
        frames_dropped=0,
        frames_codec_skipped=codec_skipped,
        decode_seconds=decode_seconds,
        decoder=decoder,
        frames_analysed=25,
        faces=0,
        embedded=0,
        tracks=0,
        alerts=0,
        reconnects=0,
        stalls=0,
        failed_attempts=0,
        last_frame_wall=time.time(),
        worker_cpu_seconds=1.0,
        wall_time=time.time(),
    )


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_node_metrics_export_decode_cost_across_a_worker_restart() -> None:
    node = NodeMetrics()
    node.on_stats(stats(0.75, 52))
    node.on_worker_restart(0, ["cam-1"])
    node.on_stats(stats(0.5, 10, worker=0, decoder="cuda"))
    got = samples(node.prometheus())
    cam = (("camera", "cam-1"),)
    assert got[("metrosight_camera_decode_seconds_total", cam)] == 1.25
    assert got[("metrosight_camera_frames_codec_skipped_total", cam)] == 62
    assert got[("metrosight_camera_frames_decoded_total", cam)] == 106
    assert got[("metrosight_camera_decoder", (("camera", "cam-1"), ("decoder", "cuda")))] == 1
    snap = node.snapshot()["cameras"]["cam-1"]  # type: ignore[index]
    assert snap["decode_seconds"] == 1.25 and snap["decoder"] == "cuda" and snap["frames_codec_skipped"] == 62


def test_the_service_exports_decode_cost_per_camera() -> None:
    board = CameraBoard([])
    board.on_stats(stats(0.4, 52))
    got = samples(render(make_registry(board)).decode())
    cam = (("camera", "cam-1"),)
    assert got[("metrosight_decode_seconds_total", cam)] == 0.4
    assert got[("metrosight_frames_codec_skipped_total", cam)] == 52
    assert got[("metrosight_frames_skipped_total", cam)] == 28
    assert got[("metrosight_camera_decoder", (("camera", "cam-1"), ("decoder", "software")))] == 1


def test_an_older_worker_without_decode_fields_is_read_as_software() -> None:
    raw = stats(0.0, 0).model_dump()
    for key in ("frames_codec_skipped", "decode_seconds", "decoder"):
        raw.pop(key)
    old = CameraStatsV1.model_validate(raw)
    assert (old.frames_codec_skipped, old.decode_seconds, old.decoder) == (0, 0.0, "software")
