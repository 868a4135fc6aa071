"""Evaluation reports: one self-contained HTML file (tables, and matplotlib plots embedded as base64 PNG) and one
JSON file per run, plus the plots as PNG files.

A :class:`Report` is built section by section by the evaluation commands, then written with :meth:`Report.write`.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(slots=True)
class Table:
    """A table: header cells and rows of cells (numbers are formatted when rendered)."""

    headers: list[str]
    rows: list[list[Any]]
    caption: str = ""


@dataclass(slots=True)
class Figure:
    """A plot: PNG bytes and a file stem for the PNG written next to the report."""

    name: str
    png: bytes
    caption: str = ""


@dataclass(slots=True)
class Section:
    title: str
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isinf(f):
            return "∞" if f > 0 else "−∞"
        if math.isnan(f):
            return "–"
        if f != 0 and (abs(f) < 1e-3 or abs(f) >= 1e5):
            return f"{f:.2e}"
        return f"{f:.4f}".rstrip("0").rstrip(".") if abs(f) < 10 else f"{f:.2f}"
    return str(v)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return None if math.isnan(f) else (("inf" if f > 0 else "-inf") if math.isinf(f) else f)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, Path):
        return str(v)
    return v


class Report:
    """One evaluation run's report.

    Args:
        title: what was evaluated.
        command: the command line that produced it (for reproduction).
    """

    def __init__(self, title: str, command: str = "") -> None:
        self.title = title
        self.command = command
        self.created = datetime.now(UTC)
        self.sections: list[Section] = []
        self.data: dict[str, Any] = {}

    def section(self, title: str) -> Section:
        s = Section(title)
        self.sections.append(s)
        return s

    def write(self, out_dir: Path, stem: str) -> tuple[Path, Path]:
        """Write ``<stem>.html``, ``<stem>.json`` and ``<stem>-<figure>.png`` into ``out_dir``.

        Returns:
            ``(html_path, json_path)``.
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for s in self.sections:
            for f in s.figures:
                (out_dir / f"{stem}-{f.name}.png").write_bytes(f.png)
        html_path = out_dir / f"{stem}.html"
        json_path = out_dir / f"{stem}.json"
        html_path.write_text(self.to_html(), encoding="utf-8")
        payload = {
            "title": self.title,
            "command": self.command,
            "created": self.created.isoformat(),
            "machine": platform.platform(),
            "sections": [
                {
                    "title": s.title,
                    "notes": s.notes,
                    "tables": [{"caption": t.caption, "headers": t.headers, "rows": t.rows} for t in s.tables],
                    "figures": [f"{stem}-{f.name}.png" for f in s.figures],
                }
                for s in self.sections
            ],
            "data": self.data,
        }
        json_path.write_text(json.dumps(_jsonable(payload), indent=1), encoding="utf-8")
        return html_path, json_path

    def to_html(self) -> str:
        e = html.escape
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{e(self.title)}</title>",
            (
                "<style>body{font:14px/1.4 system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
                "table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #ccc;padding:3px 8px;"
                "text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
                "caption{text-align:left;font-weight:600;padding:4px 0}img{max-width:100%;border:1px solid #eee}"
                "code{background:#f6f6f6;padding:1px 4px}.meta{color:#666}</style></head><body>"
            ),
            f"<h1>{e(self.title)}</h1>",
            f"<p class='meta'>{e(self.created.strftime('%Y-%m-%d %H:%M UTC'))} · {e(platform.platform())}</p>",
        ]
        if self.command:
            parts.append(f"<p>Reproduce: <code>{e(self.command)}</code></p>")
        for s in self.sections:
            parts.append(f"<h2>{e(s.title)}</h2>")
            parts += [f"<p>{e(n)}</p>" for n in s.notes]
            for t in s.tables:
                parts.append("<table>")
                if t.caption:
                    parts.append(f"<caption>{e(t.caption)}</caption>")
                parts.append("<tr>" + "".join(f"<th>{e(h)}</th>" for h in t.headers) + "</tr>")
                for row in t.rows:
                    parts.append("<tr>" + "".join(f"<td>{e(_fmt(c))}</td>" for c in row) + "</tr>")
                parts.append("</table>")
            for f in s.figures:
                b64 = base64.b64encode(f.png).decode("ascii")
                parts.append(f"<figure><img alt='{e(f.name)}' src='data:image/png;base64,{b64}'>")
                if f.caption:
                    parts.append(f"<figcaption>{e(f.caption)}</figcaption>")
                parts.append("</figure>")
        parts.append("</body></html>")
        return "\n".join(parts)


# -- plots ------------------------------------------------------------------------------------------------------
def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt  # matplotlib: heavy, only when plotting

    plt.close(fig)
    return buf.getvalue()


def _plt() -> Any:
    import matplotlib  # matplotlib: heavy, only when plotting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # matplotlib: heavy, only when plotting

    return plt


def det_plot(
    curves: Sequence[tuple[str, np.ndarray, np.ndarray]],
    xlabel: str = "FPIR (non-mated searches that return a candidate)",
    ylabel: str = "FNIR (mated searches that miss)",
    title: str = "DET",
    marks: Sequence[float] = (0.1, 0.01, 0.003),
) -> bytes:
    """A DET plot (log-log false positive vs false negative rates) of several ``(label, fpr, fnr)`` curves."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    # Below the smallest non-zero rate observed the curve says nothing: start the axis there.
    pos = [float(np.min(np.asarray(f)[np.asarray(f) > 0])) for _, f, _ in curves if np.any(np.asarray(f) > 0)]
    floor = max(1e-5, min(pos) / 2) if pos else 1e-4
    for label, fpr, fnr in curves:
        x = np.maximum(np.asarray(fpr, dtype=float), floor)
        y = np.maximum(np.asarray(fnr, dtype=float), 1e-3)
        ax.step(x, y, where="post", label=label)
    for m in marks:
        ax.axvline(m, color="#999", lw=0.7, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(1e-3, 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def roc_plot(curves: Sequence[tuple[str, np.ndarray, np.ndarray]], title: str = "ROC") -> bytes:
    """ROC (TAR against FAR, FAR on a log axis) of several ``(label, far, tar)`` curves."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for label, far, tar in curves:
        ax.step(np.maximum(far, 1e-5), tar, where="post", label=label)
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("FAR (impostor pairs accepted)")
    ax.set_ylabel("TAR (genuine pairs accepted)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def detection_roc_plot(curves: Sequence[tuple[str, np.ndarray, np.ndarray]], title: str) -> bytes:
    """FDDB-style discrete ROC: recall against the number of false positives, for ``(label, fp, recall)``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for label, fp, recall in curves:
        ax.step(fp, recall, where="post", label=label)
    ax.set_xlabel("false positives")
    ax.set_ylabel("recall (true positive rate)")
    ax.set_ylim(0, 1.01)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def histogram_plot(series: Sequence[tuple[str, np.ndarray]], threshold: float | None, title: str, xlabel: str) -> bytes:
    """Overlaid score histograms (e.g. mated vs non-mated top scores), with an optional threshold line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    finite = [np.asarray(v, dtype=float)[np.isfinite(v)] for _, v in series]
    allv = np.concatenate([f for f in finite if len(f)]) if any(len(f) for f in finite) else np.zeros(1)
    bins = np.linspace(float(allv.min()), float(allv.max()) + 1e-9, 40)
    for (label, _), v in zip(series, finite, strict=True):
        ax.hist(v, bins=bins, alpha=0.55, label=f"{label} (n={len(v)})", density=True)
    if threshold is not None and math.isfinite(threshold):
        ax.axvline(threshold, color="k", lw=1, ls="--", label=f"threshold {threshold:.3f}")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _png(fig)
