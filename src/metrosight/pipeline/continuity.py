"""Is the face a track resumed on the same person? The check that keeps one track from carrying two people.

At a low analysis rate the face tracker lets a track coast through missed detections and continue onto a face up to
a few face heights from its prediction (:mod:`metrosight.track.faces`). When the person is hidden (a pillar) and
another appears near where they were, the track would go on with the other person: a track that already raised an
alert is never embedded again, so the newcomer would never be recognised and the alert's last-seen time would grow
with their sightings; a track not yet decided would fuse both people's shots. So each face a track takes after
missing detection runs, by centre distance rather than overlap, or of another size (``Tracks.resumed``), is embedded
(one chip) and compared with the track's fused template before it joins; below the same-person bound of enrolment
(:data:`~metrosight.recognize.consistency.OTHER_PERSON_BELOW`, the cosine two descriptors of one person fall below
in about 0.1 % of cases) the track is split: it ends where its own person was last seen and the face starts a new
track, recognised as any other. A face that cannot be embedded (too small, no landmarks, identification off) splits
any track holding descriptors (cautious: it never extends an alert). A track holding no shot yet (faces unfit so far,
none embedded with no entry active, or dropped in a no-identification window) has nothing to compare with and
nothing to mix: it goes on, but its sightings start again at the resumed face (``restarted``), so an alert it raises
never claims another person's earlier sightings as its subject's. Nothing is kept beyond the call.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field, replace

import numpy as np

from metrosight.core.types import Detection, Frame, Tracks
from metrosight.recognize.align import AlignmentError, align
from metrosight.recognize.consistency import OTHER_PERSON_BELOW, disagreement
from metrosight.recognize.embedder import Embedder
from metrosight.recognize.fusion import TrackFusion
from metrosight.track.iou import FaceTracker


@dataclass(slots=True)
class Continuity:
    """The outcome of :func:`check_resumed` for one frame.

    Attributes:
        tracks: the tracker's output with each split track replaced by the new track of its face.
        split: ids of the tracks that ended because their face was another person's (to be ended downstream with
            their own last-seen time).
        checked: faces embedded for the check.
        restarted: ids of resumed tracks holding no shot and no alert (not checkable): their first sighting is
            the resumed face's (the caller moves it).
        confirmed: ids of the tracks whose face was checked and found the same person.
    """

    tracks: Tracks
    split: list[int] = field(default_factory=list)
    checked: int = 0
    restarted: list[int] = field(default_factory=list)
    confirmed: list[int] = field(default_factory=list)


def _descriptor(frame: Frame, det: Detection, embedder: Embedder, min_px: int) -> np.ndarray | None:
    """The face's descriptor ``(D,)``, or None when it cannot be embedded (under ``min_px`` high, no landmarks)."""
    if det.landmarks is None or det.box.height < min_px:
        return None
    try:
        chip = align(frame.image, det.box, det.landmarks)
    except AlignmentError:
        return None
    return np.asarray(embedder.embed(chip[None])[0], dtype=np.float32)


def same_person(descriptor: np.ndarray, template: np.ndarray, bound: float = OTHER_PERSON_BELOW) -> bool:
    """Whether a face's descriptor ``(D,)`` is not clearly another person than a track's fused template ``(D,)``:
    cosine at least ``bound`` (enrolment's same-person bound, :func:`~metrosight.recognize.consistency.disagreement`).
    """
    return disagreement([descriptor], ["face"], existing=np.atleast_2d(template)) is None


def check_resumed(
    tracks: Tracks,
    frame: Frame,
    tracker: FaceTracker,
    fusion: TrackFusion,
    embedder: Embedder,
    alerted: Container[int],
    embedding_allowed: bool,
    min_px: int,
    due: Container[int] = (),
) -> Continuity:
    """Check every face a track resumed on at ``frame`` (``tracks.resumed``) and split those of another person.

    Args:
        tracks: the face tracker's output for ``frame``.
        frame: the frame (its image is aligned for the check).
        tracker: the tracker that gave ``tracks`` (its :meth:`~metrosight.track.iou.FaceTracker.split` is called).
        fusion: the tracks' fused descriptors (a track without any, and not in ``alerted``, has nothing to mix).
        embedder: embeds the face's chip ``(1, 150, 150, 3)`` → ``(1, D)``.
        alerted: ids of the tracks that raised an alert.
        embedding_allowed: whether faces may be embedded now (False in a no-identification window or with no entry
            active: the check cannot run, so tracks holding descriptors split).
        min_px: smallest face height embedded, pixels.
        due: ids of alerted tracks due a periodic check (a face taken by plain overlap may still be another
            person's, stepped into the same spot between two frames): checked like a resumed face, but a face that
            cannot be embedded now is left for a later frame rather than splitting the track.

    Returns:
        The tracks with splits applied, the ids of the tracks that ended by splitting, the faces embedded, and the
        tracks whose sightings start again.
    """
    out = Continuity(tracks)
    active = list(tracks.active)
    for k, t in enumerate(active):
        periodic = t.track_id in due and t.track_id not in tracks.resumed
        if (t.track_id not in tracks.resumed and not periodic) or t.detection is None:
            continue
        template = fusion.template(t.track_id)
        if template is None and t.track_id not in alerted:
            # nothing of anybody held yet: nothing to mix, nothing to compare with; but the face may be a
            # newcomer's, so the track's sightings start again here (its alert never claims an earlier person's)
            out.restarted.append(t.track_id)
            continue
        desc = _descriptor(frame, t.detection, embedder, min_px) if embedding_allowed else None
        out.checked += int(desc is not None)
        if periodic and (desc is None or template is None):
            continue  # not checkable now: a later frame's face
        if desc is not None and template is not None and same_person(desc, template):
            out.confirmed.append(t.track_id)
            continue
        active[k] = tracker.split(t.track_id)
        out.split.append(t.track_id)
    if out.split:
        resumed = tuple(i for i in tracks.resumed if i not in out.split)
        out.tracks = replace(tracks, active=tuple(active), resumed=resumed)
    return out


def another_persons_shot(fusion: TrackFusion, track_id: int, descriptor: np.ndarray, alerted: Container[int]) -> bool:
    """Whether a shot embedded for matching (``descriptor`` ``(D,)``) is clearly another person than the fused
    template of its track ``track_id`` (not alerted; one holding no shot has nothing to compare): someone who took
    the face's place between two analysed frames by plain overlap. The caller splits the track rather than fuse it."""
    template = fusion.template(track_id)
    return template is not None and track_id not in alerted and not same_person(descriptor, template)
