"""Typed values that cross stage boundaries.

Every stage of the pipeline takes and returns one of these. They hold numpy arrays where the data is an image or a
vector; shapes and units are given in each docstring. They carry no behaviour beyond small conveniences.

Coordinates are pixels in the frame the value came from, ``(x1, y1, x2, y2)`` with ``x2``/``y2`` exclusive.
Times are seconds of *media time* (the position in the video or stream), not wall-clock time, unless a field's
name says ``wall``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


class Category(StrEnum):
    """Why a person is on a watchlist."""

    WANTED = "wanted"
    MISSING = "missing"
    QUARANTINE = "quarantine"


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in pixels, ``x2``/``y2`` exclusive."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)

    def iou(self, other: Box) -> float:
        """Intersection over union with ``other`` (0 when they do not overlap)."""
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def clip(self, width: int, height: int) -> Box:
        """This box clipped to an image of ``width`` × ``height`` pixels."""
        return Box(
            min(max(self.x1, 0.0), float(width)),
            min(max(self.y1, 0.0), float(height)),
            min(max(self.x2, 0.0), float(width)),
            min(max(self.y2, 0.0), float(height)),
        )

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded video frame.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB pixels. Never leaves the camera worker.
        ts: media time in seconds.
        index: 0-based index of the frame in its source.
        camera_id: the camera this frame came from.
    """

    image: np.ndarray
    ts: float
    index: int
    camera_id: str = "cam0"

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True, slots=True)
class Detection:
    """One detected face (or person).

    Attributes:
        box: the face box in frame pixels.
        score: detector confidence; its scale depends on the detector (compare only within one detector).
        landmarks: ``(5, 2)`` float32 pixel coordinates in dlib's 5-point order (right eye outer, right eye
            inner, left eye outer, left eye inner, nose base), or ``None`` when not computed yet.
        kind: ``"face"`` or ``"person"``.
        yaw: the detector's own estimate of how far the face is turned, in the units of
            :func:`metrosight.recognize.quality.yaw_ratio`, or ``None`` (detectors without pose output). dlib's
            5-point predictor places its points as if the face were frontal when it is not, so quality takes the
            larger of the two estimates.
    """

    box: Box
    score: float
    landmarks: np.ndarray | None = None
    kind: str = "face"
    yaw: float | None = None

    def scaled(self, factor: float) -> Detection:
        """The same detection in a frame resized by ``factor``: box and landmarks multiplied by it."""
        b = self.box
        box = Box(b.x1 * factor, b.y1 * factor, b.x2 * factor, b.y2 * factor)
        lm = None if self.landmarks is None else (np.asarray(self.landmarks, dtype=np.float32) * factor)
        return Detection(box, self.score, lm, self.kind, self.yaw)


@dataclass(frozen=True, slots=True)
class Detections:
    """All detections of one frame."""

    frame_index: int
    ts: float
    camera_id: str
    items: tuple[Detection, ...] = ()


@dataclass(slots=True)
class TrackState:
    """One tracked object as of the current frame.

    Attributes:
        track_id: per-camera id, unique for the lifetime of the camera worker.
        box: current box in frame pixels.
        detection: the detection matched to this track in the current frame, or ``None`` when the track was
            only predicted (missed this frame).
        first_ts: media time of the first detection, seconds.
        last_ts: media time of the latest detection, seconds.
        hits: number of frames with a matched detection.
    """

    track_id: int
    box: Box
    detection: Detection | None
    first_ts: float
    last_ts: float
    hits: int = 1


@dataclass(frozen=True, slots=True)
class Tracks:
    """Tracker output for one frame: live tracks and the ids of tracks that ended at this frame.

    ``resumed``: ids of active tracks that took a detection at this frame after missing one or more detection runs
    (not frames skipped by motion gating), by centre distance rather than overlap, or by overlap to a face of
    another size (a nearer face passing in front): the face may be another person's (checked before it joins the
    track, :mod:`metrosight.pipeline.continuity`)."""

    frame_index: int
    ts: float
    camera_id: str
    active: tuple[TrackState, ...] = ()
    ended: tuple[int, ...] = ()
    resumed: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class FaceSample:
    """A face picked for recognition: an aligned chip plus where it came from.

    Attributes:
        track_id: track the face belongs to (``-1`` for a still photo).
        ts: media time, seconds.
        box: face box in frame pixels.
        chip: ``(150, 150, 3)`` uint8 RGB, aligned as dlib's ``get_face_chip`` (size 150, padding 0.25).
        quality: 0..1, higher is better (see :mod:`metrosight.recognize.quality`).
        crop: small uint8 RGB crop of the face with context, used as the best-shot image. In memory only.
    """

    track_id: int
    ts: float
    box: Box
    chip: np.ndarray
    quality: float
    crop: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class EntryRef:
    """One watchlist entry (one authorisation on one list) of a matched person.

    Attributes:
        entry_id: database id of the entry.
        name: the name on the entry.
        watchlist: the list.
        category: the list's category.
        reference: the authorisation's reference (case or order number), if known.
    """

    entry_id: int
    name: str
    watchlist: str
    category: Category
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class Rival:
    """Another person who also reaches their threshold for the same probe and scores within the ambiguity margin of
    the best: shown to the operator next to the best candidate (see :class:`~metrosight.recognize.gallery.Matcher`).

    Attributes:
        person_id: the person (``None``: an entry without a person row).
        name: the person's name.
        watchlist: the list of their best entry.
        score: their decision score.
    """

    person_id: int | None
    name: str
    watchlist: str
    score: float


@dataclass(frozen=True, slots=True)
class Match:
    """A watchlist hit for one probe (a photo face or a whole track): a *person*, with every entry of theirs that
    may be matched here.

    Attributes:
        subject_id: database id of the entry that scored highest (the primary entry).
        subject_name: the primary entry's name.
        watchlist: the primary entry's watchlist.
        category: that watchlist's category.
        score: similarity in [-1, 1] (cosine); higher is more alike.
        distance: Euclidean distance between unit descriptors (``sqrt(2 - 2*score)``), the figure dlib users know.
        person_id: the person the entries belong to (``None``: the entry counts as its own person).
        person_name: the person's name.
        entries: every matchable entry of the person (active, in scope here), the primary first.
        rivals: other persons above their own threshold within the ambiguity margin (best first); non-empty means
            the probe is *ambiguous* and the operator is shown every candidate.
    """

    subject_id: int
    subject_name: str
    watchlist: str
    category: Category
    score: float
    distance: float
    person_id: int | None = None
    person_name: str | None = None
    entries: tuple[EntryRef, ...] = ()
    rivals: tuple[Rival, ...] = ()

    @property
    def ambiguous(self) -> bool:
        """Whether another person is also a candidate within the ambiguity margin (see ``rivals``)."""
        return bool(self.rivals)

    @property
    def watchlists(self) -> tuple[str, ...]:
        """Every list the person is matched on, the primary first (no repeats)."""
        names = [e.watchlist for e in self.entries] or [self.watchlist]
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class Event:
    """A non-identity event (analytics, camera state)."""

    camera_id: str
    kind: str
    ts: float
    data: dict[str, object] = field(default_factory=dict)
    event_id: str = ""
