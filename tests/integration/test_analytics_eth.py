"""Must-show 1: on the ETH/UCY trajectories the loitering and fast-movement events agree with ground truth computed
from the trajectories, clean and with noise, dropped observations and tracker id switches."""

from __future__ import annotations

import pytest

from metrosight.eval.behaviour import PERTURBATIONS, evaluate, load_trajectories
from tests.conftest import require_data

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("scene", ["students003", "crowds_zara01"])
def test_precision_and_recall_at_least_095(scene):
    trajs = load_trajectories(require_data("eth_ucy_trajectories", f"{scene}.txt"))
    for p in PERTURBATIONS:
        scores = evaluate(trajs, p)
        for kind in ("loitering", "fast_movement"):
            s = scores[kind]
            assert s.truth >= 3, (scene, p.name, kind, s.truth)  # the scene has cases to find
            assert s.precision >= 0.95 and s.recall >= 0.95, (scene, p.name, kind, s.precision, s.recall)
        errors = scores["loitering (exact)"].start_errors
        assert sum(errors) / max(1, len(errors)) <= 1.0, (scene, p.name)  # mean start error, seconds
