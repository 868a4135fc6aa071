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


def _cost(cores: float, faces: float, fps: float, embed: float) -> dict:
    return {
        "cpu_cores_per_camera": cores,
        "descriptors_per_s_camera": faces,
        "analysis_fps": fps,
        "cpu_share": {"decode": 0.2, "detect": 0.4, "embed": embed},
    }


POINTS_JSON = {
    "points": {
        "today": {"hd": _cost(0.8, 20.0, 6.0, 0.25), "sd": _cost(0.9, 27.0, 18.0, 0.3)},
        "tuned": {"hd": _cost(0.4, 20.0, 6.0, 0.5), "sd": _cost(0.5, 27.0, 18.0, 0.5)},
    }
}


def test_a_two_point_benchmark_gives_the_asked_point_and_camera_kind():
    fig = node_figures(POINTS_JSON, "node.json", "tuned", "hd")
    assert (fig.cores_per_camera, fig.faces_per_s, fig.analysis_fps, fig.face_share) == (0.4, 20.0, 6.0, 0.5)
    assert "tuned" in fig.source and "hd" in fig.source
    today = node_figures(POINTS_JSON, "node.json", "today", "sd")
    assert today.cores_per_camera == 0.9 and today.analysis_fps == 18.0
    # at the reference load of 15 descriptors/s the face part shrinks by 15/20, the frame part stays
    assert fig.cores_for(15.0) == pytest.approx(0.4 * 0.5 + 0.4 * 0.5 * 15 / 20)


def test_a_point_the_benchmark_lacks_is_refused_naming_what_it_has():
    with pytest.raises(PlanError, match=r"node.json: no measurement of point 'tuned' for 'hd'.*today/hd"):
        node_figures({"points": {"today": {"hd": _cost(0.8, 20.0, 6.0, 0.3)}}}, "node.json", "tuned", "hd")
    with pytest.raises(PlanError, match="node.json: tuned/hd lacks 'analysis_fps'"):
        node_figures(
            {"points": {"tuned": {"hd": {"cpu_cores_per_camera": 0.3, "descriptors_per_s_camera": 15}}}}, "node.json"
        )
    with pytest.raises(PlanError, match="must be positive"):
        node_figures({"points": {"tuned": {"hd": _cost(0.0, 15.0, 6.0, 0.3)}}}, "node.json")


def test_the_issues_target_a_third_of_a_core_is_under_120_nodes_with_every_core_busy():
    fig = default_figures(ms_per_descriptor=10.0, frame_ms=25.0, analysis_fps=6.0)  # 0.15 + 0.15 = 0.30 cores
    pl = plan(PlanInput(cameras=12_300, faces_per_s=15.0, cores_per_node=32, utilisation=1.0), fig)
    assert pl.cores_per_camera == pytest.approx(0.30)
    assert pl.cameras_per_node == 106 and pl.nodes == 117  # floor(32 / 0.3); ceil(12,300 / 106)
