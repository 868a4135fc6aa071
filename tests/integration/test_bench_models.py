"""`metrosight bench models --quick --json` on the real models and shared data (a separate process: the command
pins itself to one core). Asserts what the benchmark reports — every backend present, recall and parity figures
that match what the models do — never timing targets (those are read off the benchmark itself)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_data

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_bench_models_quick_json(tmp_path: Path) -> None:
    data = require_data()
    require_data("lfw", "pairs.txt")
    require_data("dlib_faces", "training.xml")
    env = {**os.environ, "METROSIGHT_DATA": str(data)}
    out_file = tmp_path / "models.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from metrosight.cli import entrypoint; entrypoint()",
            "--home",
            str(tmp_path / "home"),
            "bench",
            "models",
            "--quick",
            "--json",
            "--out",
            str(out_file),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout)
    assert json.loads(out_file.read_text()) == res
    assert res["quick"] is True and isinstance(res["core"], int)

    dets = {d["detector"]: d for d in res["detectors"]}
    assert {"fast (centerface default)", "hog upsample=1", "hog upsample=0"} <= set(dets)
    for d in dets.values():
        assert d["ms_720p"] > 0 and d["ms_480p"] > 0 and d["dlib_faces"]["n_gt"] == 43
        assert "fddb_fold1" not in d  # --quick leaves FDDB out
    assert dets["hog upsample=1"]["dlib_faces"]["recall"] == 1.0  # dlib's detector on dlib's own annotations
    assert dets["fast (centerface default)"]["dlib_faces"]["recall"] >= 0.9
    assert dets["hog upsample=1"]["speed_vs_dlib_hog1_720p"] == pytest.approx(1.0)

    emb = res["embedders"]
    assert set(emb["ms_per_face"]) == {"onnx", "dlib"} and emb["faces"] > 100
    parity = emb["parity"]["onnx"]
    assert parity["min_cosine"] >= 0.9999 and parity["pairs_decided_differently"] == 0
    assert emb["accuracy_at_0.6"]["onnx"] == emb["accuracy_at_0.6"]["dlib"]
    assert emb["ratio_vs_dlib"]["dlib"]["1"] == pytest.approx(1.0)
