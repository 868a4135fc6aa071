"""Still photos embedded as the unit mean of slightly moved alignments (test-time augmentation).

A still photo gives one look at a face, and the descriptor of one aligned chip carries the landmark detector's
small errors. Enrolment and identification photos (``photos.jitter``) are therefore embedded as the unit mean of
the descriptors of nine chips: the plain alignment, and the landmarks shifted by 6% of the eye distance left, right,
up and down, scaled by ±6% and rotated by ±4° about their centre — dlib's ``num_jitters`` idea, with fixed moves so
that a photo always gives the same descriptor. Video keeps one chip a shot: a track fuses several shots already.

Measured by ``bench/jitter.py`` (LFW fold 1, one photo a person; chosen on the development half of the people,
reported on the other): see the README's Accuracy section.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metrosight.core.types import Box
from metrosight.recognize.align import AlignmentError, align
from metrosight.recognize.embedder import Embedder

#: the moved alignments besides the plain one: (shift right, shift down — in eye distances —, scale, degrees)
MOVES: tuple[tuple[float, float, float, float], ...] = (
    (0.06, 0.0, 1.0, 0.0),
    (-0.06, 0.0, 1.0, 0.0),
    (0.0, 0.06, 1.0, 0.0),
    (0.0, -0.06, 1.0, 0.0),
    (0.0, 0.0, 1.06, 0.0),
    (0.0, 0.0, 0.94, 0.0),
    (0.0, 0.0, 1.0, 4.0),
    (0.0, 0.0, 1.0, -4.0),
)

#: a photo with more usable faces than this is embedded from one alignment a face, as with ``photos.jitter`` off: a
#: crowd photo must not cost 18 network passes a face (a tiled photo of 97 faces took 9.6 s of CPU instead of 1.5 s,
#: and a 4096-px photo holds over a thousand faces); the descriptors of one alignment score impostors a little lower
#: (README, Accuracy), so the fallback stays on the cautious side of the jittered operating point
MAX_JITTERED_FACES = 10


def jitters(faces: int, jitter: bool) -> bool:
    """Whether a photo with ``faces`` usable faces is embedded from the moved alignments (``jitter``:
    ``photos.jitter``): only up to :data:`MAX_JITTERED_FACES` faces."""
    return jitter and faces <= MAX_JITTERED_FACES


def moved_landmarks(landmarks: np.ndarray) -> list[np.ndarray]:
    """The landmarks ``(5, 2)`` (pixels, dlib's 5-point order) and their :data:`MOVES`: ``1 + len(MOVES)`` arrays."""
    lm = np.asarray(landmarks, dtype=np.float64)
    centre = lm.mean(axis=0)
    eye = float(np.hypot(*(lm[0:2].mean(axis=0) - lm[2:4].mean(axis=0))))
    out = [lm]
    for dx, dy, scale, degrees in MOVES:
        a = np.radians(degrees)
        rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        out.append((lm - centre) @ rot.T + centre + np.array([dx, dy]) * eye)
    return out


def still_chips(image: np.ndarray, box: Box, landmarks: np.ndarray | None, jitter: bool) -> np.ndarray:
    """The chips a still photo's face is embedded from: ``(K, 150, 150, 3)`` uint8, ``K`` = 1 without ``jitter``,
    else ``1 + len(MOVES)``.

    Raises:
        AlignmentError: missing or malformed landmarks.
    """
    if landmarks is None or np.shape(landmarks) != (5, 2):
        got = None if landmarks is None else np.shape(landmarks)
        raise AlignmentError(f"need (5, 2) landmarks to align a face, got {got}")
    marks = moved_landmarks(landmarks) if jitter else [np.asarray(landmarks, dtype=np.float64)]
    return np.stack([align(image, box, lm) for lm in marks])


def unit_mean(descriptors: np.ndarray) -> np.ndarray:
    """The unit mean of the unit rows of ``descriptors`` ``(K, D)``: ``(D,)`` float32."""
    d = np.asarray(descriptors, dtype=np.float32)
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    m = d.sum(axis=0)
    return (m / max(float(np.linalg.norm(m)), 1e-12)).astype(np.float32)


def embed_still(
    image: np.ndarray, faces: Sequence[tuple[Box, np.ndarray | None]], embedder: Embedder, jitter: bool
) -> np.ndarray:
    """Descriptors of a still photo's faces (``(box, landmarks)`` in the image's pixels): ``(N, D)`` float32, every
    chip of every face embedded in one call; with ``jitter`` (and at most :data:`MAX_JITTERED_FACES` faces, see
    :func:`jitters`) each row is the unit mean of the face's chips, otherwise the embedder's own descriptor of the
    plain chip.

    Raises:
        AlignmentError: malformed landmarks.
    """
    if not faces:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    jitter = jitters(len(faces), jitter)
    groups = [still_chips(image, box, lm, jitter) for box, lm in faces]
    desc = np.asarray(embedder.embed(np.ascontiguousarray(np.concatenate(groups))), dtype=np.float32)
    if not jitter:
        return desc
    out, k = [], 0
    for g in groups:
        out.append(unit_mean(desc[k : k + len(g)]))
        k += len(g)
    return np.stack(out)
