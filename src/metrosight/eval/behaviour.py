"""Agreement of the behaviour analytics with ground truth computed directly from pedestrian trajectories.

The ETH/UCY files hold real trajectories in metres at 2.5 Hz (``frame id x y``; see :func:`load_trajectories`). The
harness feeds them to :class:`~metrosight.analytics.engine.BehaviourEngine` as tracks (optionally with position
noise, dropped observations and tracker id switches) and compares the events with ground truth computed from the
clean trajectories with the rules' own definitions:

- a *stay* in a zone runs from the first to the last sample inside it, gaps outside shorter than the exit grace
  merged; it is loitering when it lasts ``loitering_seconds`` or more;
- the true speed at a sample is the displacement across the speed window centred on it divided by the window;
  fast movement is a run of samples at or above the threshold lasting ``min_duration_seconds`` or more.

Cases within a tolerance band of a threshold cannot be called either way from noisy data, so scoring uses two
ground truths: *strict* (clear cases: stays at least ``band_seconds`` longer than the loitering time; speeds at
least ``band_speed`` × the threshold for ``band_fast_seconds`` (two samples: a dropped first or last sample shortens
what is seen) longer than the minimum duration) for recall, and *lenient* (stays at least ``band_seconds`` shorter;
speeds above the threshold / ``band_speed`` for half the minimum duration) for precision. An event matches a
ground-truth episode of the same true person (and zone) whose time interval it overlaps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from metrosight.analytics.engine import BehaviourEngine
from metrosight.analytics.geometry import GroundPlane, Polygon
from metrosight.analytics.model import (
    FAST_MOVEMENT,
    LOITERING,
    BehaviourEvent,
    Observation,
    Rules,
    Scene,
    Zone,
)

SAMPLE_SECONDS = 0.4  # every ETH/UCY file is sampled at 2.5 Hz, whatever its frames count in


class TrajectoryError(ValueError):
    """A trajectory file cannot be parsed."""


def load_trajectories(path: Path) -> dict[int, np.ndarray]:
    """Person id → ``(N, 3)`` array of ``(t seconds, x m, y m)`` sorted by time.

    The files are sampled at 2.5 Hz but their frame numbers count in the source video's frames (every 10th of
    25 fps in the UCY scenes and biwi_hotel; every 6th of 15 fps in BIWI's eth scene): the frame step between a
    person's consecutive samples (the most common one in the file) is taken as 0.4 s.

    Raises:
        TrajectoryError: the file does not have 4 numeric columns.
    """
    try:
        a = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise TrajectoryError(f"{path}: not a 'frame id x y' table ({exc})") from None
    if a.shape[1] != 4:
        raise TrajectoryError(f"{path}: expected 4 columns (frame id x y), got {a.shape[1]}")
    per_frame = SAMPLE_SECONDS / sample_step(a)
    out: dict[int, np.ndarray] = {}
    for pid in np.unique(a[:, 1]):
        rows = a[a[:, 1] == pid]
        rows = rows[np.argsort(rows[:, 0])]
        out[int(pid)] = np.column_stack([rows[:, 0] * per_frame, rows[:, 2], rows[:, 3]])
    return out


def sample_step(a: np.ndarray) -> float:
    """The most common frame step between one person's consecutive samples in a ``frame id x y`` table (10 when
    no person has two samples)."""
    order = np.lexsort((a[:, 0], a[:, 1]))
    f, ids = a[order, 0], a[order, 1]
    steps = np.diff(f)[(np.diff(ids) == 0) & (np.diff(f) > 0)]
    if len(steps) == 0:
        return 10.0
    values, counts = np.unique(np.round(steps, 6), return_counts=True)
    return float(values[np.argmax(counts)])


def identity_plane(points: Sequence[tuple[float, float]] = ((0, 0), (1, 0), (1, 1), (0, 1))) -> GroundPlane:
    """A calibration mapping the zones' plane onto itself: trajectories are already in metres."""
    return GroundPlane(points, points)


def extent(trajs: dict[int, np.ndarray]) -> Polygon:
    """The bounding rectangle of every sample: the scene's view."""
    allp = np.vstack([t[:, 1:] for t in trajs.values()])
    (x0, y0), (x1, y1) = allp.min(axis=0), allp.max(axis=0)
    return Polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])


def quadrant_zones(trajs: dict[int, np.ndarray]) -> tuple[Zone, ...]:
    """Four zones splitting the scene's extent into quadrants (named nw, ne, sw, se)."""
    allp = np.vstack([t[:, 1:] for t in trajs.values()])
    (x0, y0), (x1, y1) = allp.min(axis=0), allp.max(axis=0)
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    boxes = {"sw": (x0, y0, xm, ym), "se": (xm, y0, x1, ym), "nw": (x0, ym, xm, y1), "ne": (xm, ym, x1, y1)}
    return tuple(
        Zone(n, Polygon([(a - 0.01, b - 0.01), (c + 0.01, b - 0.01), (c + 0.01, d + 0.01), (a - 0.01, d + 0.01)]))
        for n, (a, b, c, d) in boxes.items()
    )


def join_fragments(
    trajs: dict[int, np.ndarray],
    step: float = SAMPLE_SECONDS,
    radius: float = 0.5,
    max_missing: int = 1,
    standing: float = 0.3,
) -> dict[int, int]:
    """Annotation fragments → one person: annotated id → the id of the person it belongs to.

    Some annotations split one person into several ids: one id ends and another begins a sample or two later where
    the first was heading, typically when someone standing starts to walk (BIWI hotel: 26 of 389 ids joined; the UCY
    scenes: 0–2). A fragment ``B`` is joined to ``A`` when it starts one to ``1 + max_missing`` sample periods after
    ``A``'s last sample, within ``radius`` metres of ``A``'s last position moved on by ``A``'s last velocity, not
    turning back (``A`` was standing, below ``standing`` m/s, or ``B`` goes on the same way), and the pairing is
    unique both ways (two candidates: nothing is joined). The rule reads only the clean annotations, never the
    engine's output, and is stricter than the engine's re-link (at most two samples, not seconds; half a metre; no
    pairing where two candidates exist).
    """
    firsts = sorted((float(t[0, 0]), pid) for pid, t in trajs.items())
    first_ts = np.array([f for f, _ in firsts])
    nxt: dict[int, list[int]] = {}
    prev: dict[int, list[int]] = {}
    for a, t in trajs.items():
        end_ts, end_xy = float(t[-1, 0]), t[-1, 1:]
        vel = (t[-1, 1:] - t[-2, 1:]) / max(1e-9, float(t[-1, 0] - t[-2, 0])) if len(t) > 1 else np.zeros(2)
        lo = np.searchsorted(first_ts, end_ts + 0.5 * step)
        hi = np.searchsorted(first_ts, end_ts + (1.5 + max_missing) * step)
        for k in range(lo, hi):
            b = firsts[k][1]
            tb = trajs[b]
            vel_b = (tb[1, 1:] - tb[0, 1:]) / max(1e-9, float(tb[1, 0] - tb[0, 0])) if len(tb) > 1 else vel
            near = np.hypot(*(tb[0, 1:] - (end_xy + vel * (tb[0, 0] - end_ts)))) <= radius
            onward = float(np.hypot(*vel)) < standing or float(np.dot(vel, vel_b)) >= 0.0
            if b != a and near and onward:
                nxt.setdefault(a, []).append(b)
                prev.setdefault(b, []).append(a)
    root = {pid: pid for pid in trajs}
    for a in sorted(trajs, key=lambda p: float(trajs[p][0, 0])):
        bs = nxt.get(a, [])
        if len(bs) == 1 and len(prev.get(bs[0], [])) == 1:
            root[bs[0]] = root[a]
    return root


def merged(trajs: dict[int, np.ndarray], root: dict[int, int]) -> dict[int, np.ndarray]:
    """The trajectories of the persons ``root`` (:func:`join_fragments`) defines: the fragments' samples in order."""
    parts: dict[int, list[np.ndarray]] = {}
    for pid, t in trajs.items():
        parts.setdefault(root[pid], []).append(t)
    out: dict[int, np.ndarray] = {}
    for r, ts in parts.items():
        ts.sort(key=_first_ts)
        out[r] = np.vstack(ts)
    return out


def _first_ts(t: np.ndarray) -> float:
    return float(t[0, 0])


# -- ground truth ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Episode:
    person: int
    zone: str  # "" for fast movement
    start: float
    end: float
    value: float  # duration (stays) or peak speed (fast)


def true_stays(trajs: dict[int, np.ndarray], zones: Sequence[Zone], grace: float, min_seconds: float) -> list[Episode]:
    out = []
    for pid, t in trajs.items():
        for z in zones:
            inside = z.polygon.contains(t[:, 1:])
            times = t[inside, 0]
            if len(times) == 0:
                continue
            breaks = np.nonzero(np.diff(times) > grace + 1e-6)[0]
            starts = np.r_[times[0], times[breaks + 1]]
            ends = np.r_[times[breaks], times[-1]]
            for s, e in zip(starts, ends, strict=True):
                if e - s >= min_seconds - 1e-6:
                    out.append(Episode(pid, z.name, float(s), float(e), float(e - s)))
    return out


def true_speeds(t: np.ndarray, window: float) -> np.ndarray:
    """Speed (m/s) at each sample: displacement across the window centred on it / the window's time span."""
    ts, xy = t[:, 0], t[:, 1:]
    half = window / 2.0
    lo = np.searchsorted(ts, ts - half - 1e-6)
    hi = np.searchsorted(ts, ts + half + 1e-6) - 1
    span = ts[hi] - ts[lo]
    disp = np.hypot(*(xy[hi] - xy[lo]).T)
    return np.where(span > 0, disp / np.maximum(span, 1e-9), 0.0)


def true_fast(trajs: dict[int, np.ndarray], threshold: float, min_seconds: float, window: float) -> list[Episode]:
    out = []
    for pid, t in trajs.items():
        v = true_speeds(t, window)
        above = v >= threshold
        i = 0
        while i < len(t):
            if not above[i]:
                i += 1
                continue
            j = i
            while j + 1 < len(t) and above[j + 1]:
                j += 1
            if t[j, 0] - t[i, 0] >= min_seconds - 1e-6:
                out.append(Episode(pid, "", float(t[i, 0]), float(t[j, 0]), float(v[i : j + 1].max())))
            i = j + 1
    return out


# -- perturbation ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Perturbation:
    """What is done to the clean trajectories before they are fed as tracks.

    Attributes:
        noise_m: standard deviation of Gaussian noise added to each coordinate, metres.
        drop: probability that an observation is dropped (a missed detection).
        switch_rate: expected tracker id switches per person per minute (the track ends, a new id continues it).
        seed: random seed.
    """

    name: str = "clean"
    noise_m: float = 0.0
    drop: float = 0.0
    switch_rate: float = 0.0
    seed: int = 0


def as_tracks(
    trajs: dict[int, np.ndarray], p: Perturbation
) -> tuple[list[tuple[float, list[Observation], list[int]]], dict[int, int]]:
    """The trajectories as per-frame ``(ts, observations, ended track ids)`` and the track id → person map."""
    rng = np.random.default_rng(p.seed)
    step = SAMPLE_SECONDS
    frames: dict[int, tuple[list[Observation], list[int]]] = {}
    owner: dict[int, int] = {}
    next_id = 1
    for pid, t in sorted(trajs.items()):
        tid = next_id
        next_id += 1
        owner[tid] = pid
        for k, (ts, x, y) in enumerate(t):
            if k > 0 and p.switch_rate > 0 and rng.random() < p.switch_rate * step / 60.0:
                frames.setdefault(round(ts / step), ([], []))[1].append(tid)
                tid = next_id
                next_id += 1
                owner[tid] = pid
            if k > 0 and rng.random() < p.drop:
                continue
            nx, ny = (x, y) if p.noise_m <= 0 else (x + rng.normal(0, p.noise_m), y + rng.normal(0, p.noise_m))
            frames.setdefault(round(ts / step), ([], []))[0].append(Observation(tid, float(ts), (float(nx), float(ny))))
        frames.setdefault(round(t[-1, 0] / step) + 1, ([], []))[1].append(tid)
    out = [(k * step, obs, ended) for k, (obs, ended) in sorted(frames.items())]
    return out, owner


# -- scoring --------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Score:
    kind: str
    events: int = 0
    true_positive_events: int = 0
    truth: int = 0
    found: int = 0
    start_errors: list[float] = field(default_factory=list)
    duration_errors: list[float] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.true_positive_events / self.events if self.events else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.truth if self.truth else 1.0


def _overlaps(a0: float, a1: float, b0: float, b1: float) -> bool:
    return a0 <= b1 and b0 <= a1


def score(
    kind: str, events: list[BehaviourEvent], owner: dict[int, int], strict: list[Episode], lenient: list[Episode]
) -> Score:
    """Precision against ``lenient`` episodes, recall of ``strict`` ones (see the module docstring)."""
    ends = {e.key: e for e in events if e.kind == kind and e.phase == "end"}
    spans = []
    for e in events:
        if e.kind == kind and e.phase == "start":
            end = ends.get(e.key, e)
            pid = owner[end.track_id] if end.track_id is not None else -1
            spans.append((pid, str(e.data.get("zone", "")), e.start_ts, end.ts))
    s = Score(kind, events=len(spans), truth=len(strict))
    for pid, zone, a0, a1 in spans:
        if any(g.person == pid and g.zone == zone and _overlaps(a0, a1, g.start, g.end) for g in lenient):
            s.true_positive_events += 1
    for g in strict:
        hits = [sp for sp in spans if sp[0] == g.person and sp[1] == g.zone and _overlaps(sp[2], sp[3], g.start, g.end)]
        if hits:
            s.found += 1
            best = min(hits, key=lambda sp: abs(sp[2] - g.start))
            s.start_errors.append(abs(best[2] - g.start))
            s.duration_errors.append(abs((best[3] - best[2]) - (g.end - g.start)))
    return s


@dataclass(frozen=True, slots=True)
class HarnessRules:
    """The thresholds the harness runs with, and the tolerance bands of the scoring."""

    rules: Rules = Rules(  # noqa: RUF009 - frozen, immutable default
        loitering_seconds=15.0,
        exit_grace_seconds=2.0,
        fast_speed_mps=1.6,
        min_duration_seconds=1.2,
        speed_window_seconds=1.6,
        relink_seconds=2.0,
        relink_metres=1.0,
    )
    band_seconds: float = 2.0
    band_speed: float = 1.1
    band_fast_seconds: float = 0.8
    join_fragments: bool = True


def evaluate(
    trajs: dict[int, np.ndarray], perturbation: Perturbation, hr: HarnessRules = HarnessRules()
) -> dict[str, Score]:
    """Run the engine over the (perturbed) trajectories; score loitering and fast movement, with the tolerance bands
    and (``… (exact)``) without them: there every event is compared with episodes at exactly the rules' thresholds,
    so timing errors are measured against the same definition."""
    r = hr.rules
    zones = quadrant_zones(trajs)
    engine = BehaviourEngine(Scene(zones, plane=identity_plane(), view=extent(trajs)), r)
    frames, owner = as_tracks(trajs, perturbation)
    events: list[BehaviourEvent] = []
    for ts, obs, ended in frames:
        events += engine.update(ts, obs, ended)
    events += engine.finish(frames[-1][0] if frames else 0.0)
    root = join_fragments(trajs) if hr.join_fragments else {pid: pid for pid in trajs}
    owner = {tid: root[pid] for tid, pid in owner.items()}
    trajs = merged(trajs, root)

    def stays(m: float) -> list[Episode]:
        return true_stays(trajs, zones, r.exit_grace_seconds, m)

    def fast(v: float, m: float) -> list[Episode]:
        return true_fast(trajs, v, m, r.speed_window_seconds)

    L, V, M = r.loitering_seconds, r.fast_speed_mps, r.min_duration_seconds
    return {
        LOITERING: score(LOITERING, events, owner, stays(L + hr.band_seconds), stays(L - hr.band_seconds)),
        FAST_MOVEMENT: score(
            FAST_MOVEMENT,
            events,
            owner,
            fast(V * hr.band_speed, M + hr.band_fast_seconds),
            fast(V / hr.band_speed, M / 2),
        ),
        f"{LOITERING} (exact)": score(LOITERING, events, owner, stays(L), stays(L)),
        f"{FAST_MOVEMENT} (exact)": score(FAST_MOVEMENT, events, owner, fast(V, M), fast(V, M)),
    }


PERTURBATIONS = (
    Perturbation("clean"),
    Perturbation("noise 0.1 m", noise_m=0.1, seed=1),
    Perturbation("noise 0.1 m + 20% dropped", noise_m=0.1, drop=0.2, seed=2),
    Perturbation("noise 0.1 m + 20% dropped + id switches", noise_m=0.1, drop=0.2, switch_rate=2.0, seed=3),
)


TUNING_SCENES = ("students003", "crowds_zara01")  # the behaviour tier's settings were chosen on these
HELD_OUT_SCENES = ("students001", "biwi_hotel")  # causes of failure were looked for here; settings not tuned here


def scenes(
    folder: Path, names: Sequence[str] = TUNING_SCENES + HELD_OUT_SCENES
) -> Iterator[tuple[str, dict[int, np.ndarray]]]:
    """``(scene, trajectories)`` for each of ``names`` found in ``folder`` (a missing file is skipped)."""
    for name in names:
        if (folder / f"{name}.txt").exists():
            yield name, load_trajectories(folder / f"{name}.txt")


def scene_set(name: str) -> str:
    """``"tuning"`` for a scene the settings were chosen on, else ``"held out"``."""
    return "tuning" if name in TUNING_SCENES else "held out"
