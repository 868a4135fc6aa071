"""Threshold calibration for one deployment: from faces of people on no list to a match threshold.

The operator provides *non-mated traffic*: photos or a video of people who are on no watchlist (e.g. staff who
volunteered, recorded on the deployment's own cameras). Every usable face in it is compared with every active
watchlist template, in the score the matcher uses (cosine, or cohort AS-norm). From these comparisons:

- FMR(t): the share of single comparisons reaching t;
- FPIR(t, N) = 1 − (1 − FMR(t))^N: the chance that one passer-by on no list raises a candidate against a watchlist
  of N people (comparisons treated as independent, which holds well for AS-normalised scores and is the standard
  planning approximation);
- the threshold is the smallest t with FPIR(t, N) <= the target, and the expected false alerts a day are
  footfall × FPIR(t, N).

With n comparisons an FMR below 1/n cannot be observed; then the threshold sits just above the highest observed
score and only the 95% upper bound means anything (about 3/n, the rule of three). Upper bounds are one-sided 95%
Poisson bounds on the count of comparisons reaching the threshold.

The *cohort* for AS-norm (:mod:`metrosight.recognize.normalize`) is built here from a folder of photos the operator
provides and stored as ``<home>/calibration/cohort.npz``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from metrosight.config.load import ConfigError, load_settings
from metrosight.eval.extract import MetrosightEncoder, faces_of_photos
from metrosight.eval.metrics import rate_at, threshold_at_rate
from metrosight.ingest.images import photos_in
from metrosight.ingest.source import VideoSource, parse_source
from metrosight.recognize.align import align
from metrosight.recognize.normalize import DEFAULT_TOP_K, Cohort, CohortError
from metrosight.recognize.quality import assess

log = logging.getLogger(__name__)

VIDEO_SUFFIXES: Final = frozenset({".mp4", ".mkv", ".avi", ".mov", ".webm", ".ts", ".m4v"})


class CalibrationError(ValueError):
    """Calibration cannot proceed (no faces, no templates, bad config file); the message says why."""


def photo_files(folder: Path) -> list[Path]:
    """Every photo under ``folder`` (recursively, following symlinked folders; see
    :func:`metrosight.ingest.images.photos_in`), sorted."""
    found: list[Path] = []
    for d, _, _ in os.walk(folder, followlinks=True):
        found += photos_in(Path(d))
    return sorted(found)


def fused(desc: np.ndarray, flipped: np.ndarray | None) -> np.ndarray:
    """Unit descriptors ``(F, 128)``, fused with their mirror images' when given."""
    d = np.asarray(desc, dtype=np.float32)
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    if flipped is None:
        return d
    f = np.asarray(flipped, dtype=np.float32)
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    s = d + f
    return s / np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-12)


def build_cohort(
    photos: Sequence[Path],
    encoder: MetrosightEncoder,
    top_k: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Cohort:
    """A cohort from every usable face in ``photos``.

    Raises:
        CohortError: fewer than 20 usable faces.
    """

    d, f, _ = faces_of_photos(photos, encoder, on_progress)
    if len(d) < 20:
        raise CohortError(
            f"only {len(d)} usable face(s) in the cohort photos; a cohort needs at least 20 (ideally 300+)"
        )
    model = encoder.embedder.model_id
    return Cohort.build(fused(d, f), top_k=min(top_k or DEFAULT_TOP_K, len(d)), model=model)


def faces_of_video(
    path: Path,
    encoder: MetrosightEncoder,
    every_seconds: float = 0.5,
    on_progress: Callable[[float], None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Descriptors of every usable face in frames sampled every ``every_seconds`` of a video.

    Returns:
        ``(descriptors, flipped)`` as :func:`metrosight.eval.extract.faces_of_photos` gives them.
    """

    src = VideoSource(parse_source(str(path)), "calibration", 1.0 / every_seconds, 10.0)
    descs, flips = [], []
    for frame in src.frames():
        chips = []
        for det in encoder.detect(frame.image):
            if det.landmarks is None:
                continue
            chip = align(frame.image, det.box, det.landmarks)
            if (
                assess(
                    det.box,
                    chip,
                    det.landmarks,
                    encoder.min_face_px,
                    encoder.min_blur_var,
                    encoder.max_yaw_ratio,
                    detector_yaw=det.yaw,
                ).problem
                is None
            ):
                chips.append(chip)
        if chips:
            batch = np.stack(chips + [c[:, ::-1] for c in chips]) if encoder.flip else np.stack(chips)
            e = np.asarray(encoder.embedder.embed(np.ascontiguousarray(batch)), dtype=np.float32)
            descs.append(e[: len(chips)])
            if encoder.flip:
                flips.append(e[len(chips) :])
        if on_progress:
            on_progress(frame.ts)
    d = np.concatenate(descs) if descs else np.zeros((0, encoder.embedder.dim), np.float32)
    f = (np.concatenate(flips) if flips else np.zeros((0, 128), np.float32)) if encoder.flip else None
    return d, f


@dataclass(frozen=True, slots=True)
class Calibration:
    """A chosen threshold and what it means for a deployment.

    Attributes:
        threshold: the match threshold, in the matcher's score units.
        scoring: ``"cosine"`` or ``"cohort"`` (AS-norm).
        target_fpir: FPIR asked for.
        watchlist_size: N the threshold is chosen for.
        n_faces: non-mated faces used.
        n_templates: templates compared with.
        n_comparisons: ``n_faces × n_templates``.
        fmr: observed share of comparisons reaching the threshold.
        fmr_upper: one-sided 95% upper bound of FMR (Poisson; about 3/n when none reached it).
        fpir: estimated FPIR at ``watchlist_size`` from ``fmr``.
        fpir_upper: the same from ``fmr_upper``.
        observed_fpir: share of the non-mated faces whose best template reaches the threshold (actual gallery).
        resolved: whether the data holds enough comparisons to observe the target per-comparison FMR.
        footfall: passers-by a day.
        false_alerts_per_day: ``footfall × fpir``.
        false_alerts_per_day_upper: ``footfall × fpir_upper``.
    """

    threshold: float
    scoring: str
    target_fpir: float
    watchlist_size: int
    n_faces: int
    n_templates: int
    n_comparisons: int
    fmr: float
    fmr_upper: float
    fpir: float
    fpir_upper: float
    observed_fpir: float
    resolved: bool
    footfall: int
    false_alerts_per_day: float
    false_alerts_per_day_upper: float


def poisson_upper(count: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound of a Poisson mean after observing ``count`` events (about 3 for 0: the
    rule of three)."""
    from scipy.stats import chi2  # SciPy: heavy, loaded on first use

    return float(chi2.ppf(confidence, 2 * (count + 1)) / 2.0)


def fpir_from_fmr(fmr: float, n: int) -> float:
    """FPIR against a watchlist of ``n`` people from a per-comparison false match rate."""
    return float(1.0 - (1.0 - min(max(fmr, 0.0), 1.0)) ** max(n, 0))


def choose_threshold(
    scores: np.ndarray,
    target_fpir: float,
    watchlist_size: int,
    footfall: int,
    scoring: str,
    floor: float | None = None,
) -> Calibration:
    """Choose the threshold from non-mated comparison scores.

    Args:
        scores: ``(F, T)`` scores of F non-mated faces against T templates (higher = more similar).
        target_fpir: wanted FPIR (share of passers-by on no list who raise a candidate), e.g. 0.003.
        watchlist_size: N the deployment will match against (may exceed T: the per-comparison rate is scaled).
        footfall: people passing the cameras a day.
        scoring: the score's name, recorded.
        floor: never return a threshold below this (e.g. the configured default): calibration may only tighten.

    Raises:
        CalibrationError: no scores, or a target outside (0, 1).
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.size == 0:
        raise CalibrationError(f"need a (faces, templates) score matrix with at least one comparison, got {s.shape}")
    if not 0.0 < target_fpir < 1.0:
        raise CalibrationError(f"target FPIR must be between 0 and 1, got {target_fpir}")
    n = max(int(watchlist_size), 1)
    fmr_target = 1.0 - (1.0 - target_fpir) ** (1.0 / n)
    flat = s.reshape(-1)
    t = threshold_at_rate(flat, fmr_target)
    if floor is not None and t < floor:
        t = float(floor)
    fmr = rate_at(flat, t)
    hits = int(np.sum(flat >= t))
    fmr_up = poisson_upper(hits) / len(flat)
    fpir = fpir_from_fmr(fmr, n)
    fpir_up = fpir_from_fmr(fmr_up, n)
    return Calibration(
        threshold=float(t),
        scoring=scoring,
        target_fpir=target_fpir,
        watchlist_size=n,
        n_faces=int(s.shape[0]),
        n_templates=int(s.shape[1]),
        n_comparisons=int(flat.size),
        fmr=fmr,
        fmr_upper=fmr_up,
        fpir=fpir,
        fpir_upper=fpir_up,
        observed_fpir=rate_at(s.max(axis=1), t),
        resolved=len(flat) * fmr_target >= 1.0,
        footfall=int(footfall),
        false_alerts_per_day=footfall * fpir,
        false_alerts_per_day_upper=footfall * fpir_up,
    )


# -- writing the config -----------------------------------------------------------------------------------------
_SECTION = re.compile(r"^recognition\s*:\s*(#.*)?$")
_TOP = re.compile(r"^[A-Za-z_][\w-]*\s*:")


def set_recognition_keys(path: Path, values: dict[str, object]) -> str:
    """Create or update keys of the ``recognition:`` section of a YAML config file, keeping everything else
    (other keys, comments, order) as it is. The result is validated before it is written (atomically).

    Args:
        path: the config file (created when missing).
        values: e.g. ``{"match_threshold": 4.2}``.

    Returns:
        The new text.

    Raises:
        CalibrationError: the file cannot be read, or the result is not a valid configuration.
    """
    import yaml  # PyYAML: only when writing the config file

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read: {exc}") from None

    def dump(v: object) -> str:
        return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()

    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if _SECTION.match(ln)), None)
    block_style = start is not None
    if start is None and any(re.match(r"^recognition\s*:", ln) for ln in lines):
        block_style = False  # flow style (recognition: {...}): rewrite through YAML below
    if start is not None:
        end = next((j for j in range(start + 1, len(lines)) if _TOP.match(lines[j])), len(lines))
        body = lines[start + 1 : end]
        keyed = [m for m in (re.match(r"^(\s+)[\w-]+\s*:", ln) for ln in body) if m is not None]
        indent = keyed[0].group(1) if keyed else "  "
        for key, val in values.items():
            pat = re.compile(rf"^{re.escape(indent)}{re.escape(key)}\s*:\s*([^#\n]*?)(\s*#.*)?$")
            k = next((j for j, ln in enumerate(body) if pat.match(ln)), None)
            if k is not None:
                m = pat.match(body[k])
                body[k] = f"{indent}{key}: {dump(val)}{m.group(2) or '' if m else ''}"
            else:
                body.insert(0, f"{indent}{key}: {dump(val)}")
        lines = lines[: start + 1] + body + lines[end:]
        new = "\n".join(lines) + "\n"
    elif not block_style and text.strip() and any(re.match(r"^recognition\s*:", ln) for ln in lines):
        data = yaml.safe_load(text) or {}
        data.setdefault("recognition", {}).update(values)
        new = yaml.safe_dump(data, sort_keys=False)
        log.warning("%s: rewrote the file through YAML (its comments are not kept)", path)
    else:
        sep = "" if not text or text.endswith("\n") else "\n"
        new = text + sep + "recognition:\n" + "".join(f"  {k}: {dump(v)}\n" for k, v in values.items())
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(new, encoding="utf-8")
        try:
            load_settings(tmp, environ={})
        except ConfigError as exc:
            raise CalibrationError(f"{path}: the calibrated configuration would be invalid: {exc}") from None
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return new


def load_or_none(path: Path) -> Cohort | None:
    """The cohort at ``path`` or ``None`` when there is none."""
    try:
        return Cohort.load(path)
    except CohortError:
        return None
