"""The calibration files of an installation: the cohort (AS-norm) and the operator's calibration faces (people on
no list), under ``<home>/calibration/``. Written by ``metrosight calibrate``, read by :mod:`.matching`."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from metrosight.recognize.embedder import DLIB_RESNET_MODEL_ID
from metrosight.recognize.normalize import COHORT_FILE

log = logging.getLogger(__name__)


def cohort_path(home_root: Path) -> Path:
    """Where the deployment's cohort lives: ``<home>/calibration/cohort.npz``."""
    return Path(home_root) / "calibration" / COHORT_FILE


NONMATED_FILE = "nonmated.npz"


def nonmated_path(home_root: Path) -> Path:
    """Where the operator's calibration faces live: ``<home>/calibration/nonmated.npz``."""
    return Path(home_root) / "calibration" / NONMATED_FILE


def save_nonmated(home_root: Path, descriptors: np.ndarray, model: str = DLIB_RESNET_MODEL_ID) -> Path:
    """Store unit descriptors ``(F, D)`` of calibration faces (people on no list; no images are kept) atomically,
    with the descriptor model that computed them.

    The matcher adds their scores against every template to the impostor pairs its threshold is estimated from
    (:mod:`metrosight.recognize.operating`)."""
    path = nonmated_path(home_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    d = np.asarray(descriptors, dtype=np.float32)
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    np.savez(tmp, descriptors=d, model=np.str_(model))
    tmp.replace(path)
    return path


def load_nonmated(home_root: Path, model: str = DLIB_RESNET_MODEL_ID) -> np.ndarray | None:
    """The stored calibration faces ``(F, D)`` of descriptor model ``model``, or ``None`` when there are none, the
    file is unreadable or of another model (logged: the threshold then rests on the gallery's own pairs)."""
    path = nonmated_path(home_root)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            d = np.asarray(z["descriptors"], dtype=np.float32)
            made_by = str(z["model"]) if "model" in z.files else DLIB_RESNET_MODEL_ID  # files before models varied
    except (OSError, ValueError, KeyError) as exc:
        log.error("%s: unreadable calibration faces (%s); ignored — run metrosight calibrate again", path, exc)
        return None
    if made_by != model:
        log.error(
            "%s: calibration faces of descriptor model %r, not %r; ignored — run metrosight calibrate again",
            path,
            made_by,
            model,
        )
        return None
    if d.ndim != 2 or not d.shape[1] or not np.isfinite(d).all():
        log.error("%s: not a (faces, D) descriptor array; ignored — run metrosight calibrate again", path)
        return None
    return d
