"""Must-show 4 of issue 18: an occupancy alarm and a wrong-way alarm on the ETH/UCY trajectories, with precision and
recall against ground truth computed from the clean trajectories (true counts per annotated frame; true crossings
of each annotated person), clean and with noise, dropped observations and tracker id switches."""

from __future__ import annotations

import pytest

from metrosight.eval.behaviour import HELD_OUT_SCENES, PERTURBATIONS, TUNING_SCENES, load_trajectories
from metrosight.eval.crowd import evaluate_crowd
from tests.conftest import require_data

pytestmark = pytest.mark.integration


@pytest.mark.slow
@pytest.mark.parametrize("scene", TUNING_SCENES + HELD_OUT_SCENES)
def test_occupancy_and_wrong_way_precision_and_recall_at_least_095(scene):
    trajs = load_trajectories(require_data("eth_ucy_trajectories", f"{scene}.txt"))
    for p in PERTURBATIONS:
        scores = evaluate_crowd(trajs, p)
        for kind in ("occupancy", "wrong_way"):
            s = scores[kind]
            assert s.truth >= 4, (scene, p.name, kind, s.truth)  # the scene has cases to find
            assert s.precision >= 0.95 and s.recall >= 0.95, (scene, p.name, kind, s.precision, s.recall)
