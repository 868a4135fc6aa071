"""A picture of one camera's analytics: person tracks (foot points), zones, counting lines and events drawn over the
camera's empty view (matplotlib, PNG)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from metrosight.analytics.model import FAST_MOVEMENT, LOITERING, Scene
from metrosight.core.types import Box


def median_background(samples: list[np.ndarray]) -> np.ndarray:
    """The per-pixel median of frames sampled across a video: people who move vanish, the empty view remains.

    Args:
        samples: ``(H, W, 3)`` uint8 frames of one size.
    """
    if not samples:
        raise ValueError("median_background needs at least one frame")
    return np.median(np.stack(samples), axis=0).astype(np.uint8)


class PlottedEvent(Protocol):
    """What the plot reads of a behaviour event (:class:`metrosight.bus.payloads.EventV1`)."""

    @property
    def kind(self) -> str: ...
    @property
    def track_id(self) -> int | None: ...
    @property
    def start_ts(self) -> float: ...
    @property
    def data(self) -> Mapping[str, object]: ...


class PlottedEventEnd(Protocol):
    """What the plot reads of an event's end (:class:`metrosight.bus.payloads.EventUpdateV1`)."""

    @property
    def end_ts(self) -> float: ...
    @property
    def data(self) -> Mapping[str, object]: ...


@dataclass(slots=True)
class PlotData:
    """What :func:`render` draws.

    Attributes:
        background: ``(h, w, 3)`` uint8 RGB backdrop, ``scale`` times smaller than the frame.
        scale: frame pixels per backdrop pixel.
        scene: zones and lines (frame pixels).
        history: ``(ts, track id, box)`` of every matched detection.
        events: ``(EventV1, EventUpdateV1 | None)`` pairs.
    """

    background: np.ndarray
    scale: float
    scene: Scene
    history: list[tuple[float, int, Box]]
    events: list[tuple[PlottedEvent, PlottedEventEnd | None]]
    title: str = ""


def render(data: PlotData, path: Path) -> Path:
    """Write the plot to ``path`` (PNG)."""
    import matplotlib  # matplotlib: heavy, only when plotting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # matplotlib: heavy, only when plotting

    h, w = data.background.shape[:2]
    fw, fh = w * data.scale, h * data.scale
    fig, ax = plt.subplots(figsize=(10, 10 * fh / fw + 0.6), dpi=110)
    ax.imshow(data.background, extent=(0, fw, fh, 0))
    for z in data.scene.zones:
        v = np.vstack([z.polygon.vertices, z.polygon.vertices[:1]])
        ax.plot(v[:, 0], v[:, 1], "-", color="#ffd400", lw=2)
        ax.text(v[0, 0] + 4, v[0, 1] + 14, f"zone {z.name}", color="#ffd400", fontsize=9, weight="bold")
    for ln in data.scene.lines:
        ax.plot([ln.line.a[0], ln.line.b[0]], [ln.line.a[1], ln.line.b[1]], "--", color="#00e5ff", lw=2)
        ax.text(ln.line.a[0], ln.line.a[1] - 6, f"line {ln.name}", color="#00e5ff", fontsize=9)
    tracks: dict[int, list[tuple[float, float, float]]] = defaultdict(list)
    for ts, tid, b in data.history:
        tracks[tid].append((ts, (b.x1 + b.x2) / 2, b.y2))
    cmap = plt.get_cmap("tab10")
    for i, (tid, pts) in enumerate(sorted(tracks.items())):
        a = np.array(pts)
        colour = cmap(i % 10)
        ax.plot(a[:, 1], a[:, 2], "-", color=colour, lw=1.2, alpha=0.85)
        ax.plot(a[-1, 1], a[-1, 2], "o", color=colour, ms=4)
        ax.text(a[0, 1], a[0, 2] - 4, f"#{tid} {a[0, 0]:.0f}s", color=colour, fontsize=7)
    n_label = 0
    for ev, upd in data.events:
        kind, track = ev.kind, ev.track_id
        seen = tracks.get(track) if track is not None else None
        if not seen:
            continue
        start = ev.start_ts
        end = upd.end_ts if upd is not None else None
        near = min(seen, key=lambda p: abs(p[0] - start))
        merged = {**ev.data, **(upd.data if upd is not None else {})}
        if kind == LOITERING:
            label = f"loitering {start:.1f}s" + (f"–{end:.1f}s" if end is not None else "")
            label += f" ({merged.get('duration_s', '?')} s, {merged.get('zone')})"
            ax.plot(near[1], near[2], "s", ms=11, mfc="none", mec="#ff3b30", mew=2)
        elif kind == FAST_MOVEMENT:
            label = f"fast {start:.1f}s peak {merged.get('peak_speed')} {merged.get('unit')}"
            ax.plot(near[1], near[2], "*", ms=14, color="#ff3b30")
        else:
            continue
        ax.annotate(
            f"track #{track}: {label}",
            (near[1], near[2]),
            xytext=(0.02, 0.95 - 0.065 * n_label),
            textcoords="axes fraction",
            fontsize=8,
            color="white",
            bbox={"boxstyle": "round", "fc": "#b00020", "alpha": 0.85},
            arrowprops={"arrowstyle": "->", "color": "#ff3b30", "alpha": 0.6, "lw": 0.8},
        )
        n_label += 1
    ax.set_xlim(0, fw)
    ax.set_ylim(fh, 0)
    ax.set_title(data.title or "person tracks and behaviour events", fontsize=10)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels); tracks are foot points")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
