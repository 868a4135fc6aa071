"""The capacity model: per-camera cost, nodes, false alerts, storage under retention."""

from __future__ import annotations

import pytest

from metrosight.pipeline.capacity import PlanError, PlanInput, default_figures, node_figures, plan

NODE_JSON = {
    "target_analysis_fps": 18.0,
    "capacity": None,
    "projection_idle_node": {
        "cpu_cores_per_camera": 0.8,
        "descriptors_per_s_camera": 18.0,
        "ms_per_frame": {"detect": 49.0, "track": 1.0, "align": 2.0, "embed": 24.0, "match": 0.0},
    },
}


def test_node_figures_split_the_measured_cost_into_frame_and_face_parts():
    fig = node_figures(NODE_JSON)
    assert fig.cores_per_camera == 0.8 and fig.faces_per_s == 18.0 and fig.face_share == pytest.approx(24 / 76)
    assert fig.cores_for(18.0) == pytest.approx(0.8)  # the benchmark's own load
    assert fig.cores_for(36.0) == pytest.approx(0.8 * (1 + 24 / 76))  # twice the faces: the face part doubles
    assert fig.cores_for(18.0, analysis_fps=9.0) == pytest.approx(0.8 * (1 - 24 / 76) / 2 + 0.8 * 24 / 76)
    assert fig.cores_for(18.0, frame_scale=2.0) > fig.cores_for(18.0)


def test_a_benchmark_without_the_figures_is_refused_with_its_name():
    with pytest.raises(PlanError, match="x.json"):
        node_figures({"target_analysis_fps": 18.0}, "x.json")


def test_default_figures_from_per_operation_costs():
    fig = default_figures(ms_per_descriptor=8.0, frame_ms=50.0, analysis_fps=10.0)
    assert fig.cores_for(15.0) == pytest.approx(10 * 0.05 + 15 * 0.008)


def test_plan_nodes_false_alerts_and_storage():
    fig = node_figures(NODE_JSON)
    p = PlanInput(
        cameras=1000,
        faces_per_s=18.0,
        cores_per_node=32,
        utilisation=0.75,
        watchlist_size=326,
        fpir=0.001,
        fpir_gallery=163,
        footfall_per_day=100_000,
        searches_per_person=2.0,
        events_per_camera_hour=0.0,
        true_alerts_per_day=0.0,
        alerts_days=10,
        crops_days=5,
        audit_days=20,
    )
    pl = plan(p, fig)
    assert pl.cameras_per_node == 30 and pl.nodes == 34  # floor(24 / 0.8) cameras a node
    assert pl.fpir_at_watchlist == pytest.approx(0.002)  # twice the gallery, twice the FPIR
    assert pl.false_alerts_per_day == pytest.approx(400.0)
    assert pl.events_per_day == 0 and pl.bus_msgs_per_s == pytest.approx(800 / 86_400)
    per_day = pl.storage_bytes_per_day
    assert per_day == pytest.approx(400 * (1_200 + 700 + 12_000))
    assert pl.storage_bytes_steady == pytest.approx(400 * (1_200 * 10 + 700 * 20 + 12_000 * 5))
    assert pl.reference_ratio == pytest.approx(34 / 398)
