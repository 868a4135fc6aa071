"""One frame of each of several cameras analysed together: one detector call and one embedder call for them all.

A worker's cameras share their models (:class:`~metrosight.pipeline.runtime.Runtime` loads them once), so the
frames of one round of the frame loop (:mod:`metrosight.pipeline.loop`) can go through them together. Each camera's
processor splits its frame into phases (:mod:`metrosight.pipeline.phases`); :func:`analyse_together` runs

1. every camera's ``prepare`` (policy, counters, the images to detect in);
2. ONE ``detect_batch`` over all the images (per detector; the detector runs images of one network input size in one
   inference call, up to ``inference.max_batch``);
3. every camera's ``after_detection`` (scene cuts, tracking, alignment, quality: the chips);
4. ONE ``embed`` over every camera's chips (per embedder; split into ``inference.max_batch`` by the backend);
5. every camera's ``after_embedding`` (fusion, matching, alerts, ended tracks).

What each camera computes and publishes, and in which order, is what it would be one frame at a time: its state is
its own, the model calls give each image and chip what a call of its own gives. The stage times of the shared calls
are shared out: each camera counts the detection call's time in proportion to its images, the embedding call's in
proportion to its chips.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from metrosight.core.types import Detection, Frame
from metrosight.detect.base import FaceDetector, detect_batch
from metrosight.pipeline.camera import CameraStats
from metrosight.pipeline.phases import DetectionRequest, EmbedRequest
from metrosight.recognize.embedder import Embedder


@runtime_checkable
class PhasedProcessor(Protocol):
    """A camera processor whose frames can be analysed in phases (see :mod:`metrosight.pipeline.phases`):
    :class:`~metrosight.pipeline.camera.CameraPipeline`, or a composite whose face part is one."""

    @property
    def detector(self) -> FaceDetector: ...

    @property
    def embedder(self) -> Embedder: ...

    @property
    def camera_stats(self) -> CameraStats: ...

    def prepare(self, frame: Frame) -> DetectionRequest: ...

    def after_detection(self, request: DetectionRequest, found: Sequence[Sequence[Detection]]) -> EmbedRequest: ...

    def after_embedding(self, request: EmbedRequest, descriptors: np.ndarray) -> object: ...


def _detect_all(procs: Sequence[PhasedProcessor], requests: Sequence[DetectionRequest]) -> list[list[list[Detection]]]:
    """The detections of every area of every request: one ``detect_batch`` per detector (cameras share one)."""
    found: list[list[list[Detection]]] = [[[] for _ in r.areas] for r in requests]
    by_detector: dict[int, list[tuple[int, int]]] = {}  # id(detector) -> (request, area) in call order
    for i, (proc, request) in enumerate(zip(procs, requests, strict=True)):
        by_detector.setdefault(id(proc.detector), []).extend((i, k) for k in range(len(request.areas)))
    for slots in by_detector.values():
        if not slots:
            continue
        t0 = time.perf_counter()
        detector = procs[slots[0][0]].detector
        results = detect_batch(detector, [requests[i].areas[k].image for i, k in slots])
        share = (time.perf_counter() - t0) / len(slots)
        for (i, k), dets in zip(slots, results, strict=True):
            found[i][k] = dets
        counted: dict[int, int] = {}
        for i, _ in slots:
            counted[i] = counted.get(i, 0) + 1
        for i, n in counted.items():
            procs[i].camera_stats.observe("detect", requests[i].seconds + share * n)
    for i, request in enumerate(requests):
        if not request.areas:  # nothing to detect at this frame: only the preparation counts
            procs[i].camera_stats.observe("detect", request.seconds)
    return found


def _embed_all(procs: Sequence[PhasedProcessor], pending: Sequence[EmbedRequest]) -> list[np.ndarray]:
    """The descriptors of every request's chips: one ``embed`` per embedder (cameras share one)."""
    out = [np.zeros((0, procs[i].embedder.dim), np.float32) for i in range(len(procs))]
    by_embedder: dict[int, list[int]] = {}
    for i, (proc, request) in enumerate(zip(procs, pending, strict=True)):
        if request.samples:
            by_embedder.setdefault(id(proc.embedder), []).append(i)
    for members in by_embedder.values():
        chips = [pending[i].chips for i in members]
        t0 = time.perf_counter()
        descriptors = procs[members[0]].embedder.embed(np.concatenate(chips))
        per_chip = (time.perf_counter() - t0) / len(descriptors) if len(descriptors) else 0.0
        start = 0
        for i, c in zip(members, chips, strict=True):
            out[i] = descriptors[start : start + len(c)]
            start += len(c)
            procs[i].camera_stats.observe("embed", per_chip * len(c))
        if start != len(descriptors):
            raise ValueError(f"the embedder gave {len(descriptors)} descriptors for {start} chips")
    return out


def analyse_together(items: Sequence[tuple[PhasedProcessor, Frame]]) -> None:
    """Analyse one frame of each of several cameras with shared model calls (see the module docstring).

    Args:
        items: ``(processor, frame)`` pairs, one a camera (each processor at most once); their alerts are published
            through each processor's own outputs, in the order the processor alone would publish them.

    Raises:
        DetectorError, EmbedderError: a model failed (as a camera alone would raise).
    """
    if not items:
        return
    procs = [p for p, _ in items]
    requests = [p.prepare(f) for p, f in items]
    found = _detect_all(procs, requests)
    pending = [p.after_detection(r, f) for p, r, f in zip(procs, requests, found, strict=True)]
    descriptors = _embed_all(procs, pending)
    for p, request, d in zip(procs, pending, descriptors, strict=True):
        p.after_embedding(request, d)
