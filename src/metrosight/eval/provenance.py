"""Which data chose the settings an evaluation runs with, and which data it measures — so that a report does not
flatter: a figure measured on the photos a setting was chosen on is not an independent measurement.

Pure: settings and paths in, sentences and a JSON-able record out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from metrosight.config.model import PhotosConfig, Settings

#: where each shipped default was chosen (the development data), by setting
CHOSEN_ON: Final[Mapping[str, tuple[str, tuple[str, ...]]]] = {
    "photos quality limits (min_face_px, min_blur_var, max_yaw_ratio)": (
        "AT&T s1–s20, the face_recognition knn examples and the LFW fold-1 people at even positions in name order "
        "(bench/quality_bins.py; reported on the LFW fold-1 people at odd positions)",
        ("att_faces", "knn_examples", "lfw"),
    ),
    "enrolment dominance rule (DOMINANCE_RATIO 0.8, CENTRE_MARGIN 0.5)": (
        "the LFW fold-1 people at even positions (bench/enrol_dominance.py; reported on the odd ones); the centre "
        "margin is a safety setting LFW cannot measure (its photos are centred on their subject)",
        ("lfw",),
    ),
    "covered-face threshold": ("LFW tuning people of bench/face_checks.py", ("lfw",)),
    "detector (CenterFace, score threshold 0.5)": (
        "FDDB fold 1 and dlib's annotated photos (bench/detectors.py); FDDB folds 2–10 are the held-out folds",
        ("fddb", "dlib_faces"),
    ),
    "AS-norm variant and top-k": ("half of the LFW fold-1 people (bench/eval_normalisation.py)", ("lfw",)),
}


def _tags(paths: Sequence[Path]) -> set[str]:
    tags = set()
    for p in paths:
        parts = {x.lower() for x in Path(p).resolve().parts} | {x.lower() for x in Path(p).parts}
        for t in ("att_faces", "knn_examples", "lfw", "fddb", "dlib_faces"):
            if any(t in x for x in parts):
                tags.add(t)
    return tags


def provenance(settings: Settings, measured: Sequence[Path], fddb_folds: Sequence[int] = ()) -> dict[str, Any]:
    """The record for a report.

    Args:
        settings: the settings the evaluation ran with.
        measured: the data it measures (folders or files).
        fddb_folds: FDDB folds measured, when any.

    Returns:
        ``{"measured": [...], "settings": [{"setting", "chosen_on", "overlaps"}], "notes": [sentences]}``.
    """
    tags = _tags(measured)
    rows = []
    notes = [f"Measured on: {', '.join(str(p) for p in measured) or '(nothing)'}."]
    photo_defaults = PhotosConfig()
    own_limits = (settings.photos.min_face_px, settings.photos.min_blur_var, settings.photos.max_yaw_ratio) != (
        photo_defaults.min_face_px,
        photo_defaults.min_blur_var,
        photo_defaults.max_yaw_ratio,
    )
    for name, (where, sets) in CHOSEN_ON.items():
        if name.startswith("photos quality limits") and own_limits:
            where, sets = "set in this installation's configuration (not a shipped default)", ()
        if name.startswith("detector") and settings.detection.detector.kind != "centerface":
            where, sets = (
                f"the configured {settings.detection.detector.kind} detector (not measured by this project)",
                (),
            )
        overlap = sorted(tags & set(sets))
        if name.startswith("detector") and "fddb" in overlap and fddb_folds and 1 not in fddb_folds:
            overlap.remove("fddb")  # held-out folds only
        rows.append({"setting": name, "chosen_on": where, "overlaps": overlap})
        notes.append(
            f"{name}: chosen on {where}"
            + (
                f" — OVERLAPS the measured data ({', '.join(overlap)}): not an independent measurement."
                if overlap
                else "."
            )
        )
    if "fddb" in tags and fddb_folds:
        held = [k for k in fddb_folds if k != 1]
        notes.append(
            f"FDDB folds measured: {', '.join(map(str, fddb_folds))}; "
            + (
                f"held-out folds among them: {', '.join(map(str, held))}."
                if held
                else "none of them held out (fold 1 is the development fold)."
            )
        )
    return {"measured": [str(p) for p in measured], "settings": rows, "notes": notes}
