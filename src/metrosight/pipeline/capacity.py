"""Capacity planning: nodes, bus and database load, storage and false alerts for a camera network.

Pure arithmetic over measured figures (no I/O here; :func:`node_figures` parses the JSON ``bench/node.py``
writes, :func:`bus_figures` the one ``bench/bus.py`` writes). The model:

- **CPU per camera** (cores) = ``frame part + face part``: the frame part (decode, detection, tracking, alignment,
  matching) grows with the analysis rate and the frame size; the face part with the descriptors computed a second.
  From a node benchmark both parts are taken from the measured per-camera cost split by the measured stage times;
  without one, from ``ms_per_descriptor`` and ``frame_ms`` (README performance figures).
- **Nodes** = cameras × cores per camera / (cores per node × target utilisation).
- **Bus**: every camera publishes its behaviour events and alerts (each with an end update); nothing about faces
  that matched nobody leaves a camera. Plus lease renewals and presence (every ``lease/3``), each worker's count
  of live workers (once a second) and its cameras' reads of the mirrored gallery version (each camera every
  ``policy_refresh_seconds``, at most one a process every ``min(0.25, refresh/4)`` s).
- **Database**: event rows and alerts (one transaction with its audit entry each), plus policy polls (three small
  queries per worker process every ``policy_refresh_seconds``).
- **Storage per day** and at steady state under the retention periods.
- **False alerts per day** = searches a day × FPIR at the watchlist size; a search is one track of one person on one
  camera (matched once, fused over its best shots). FPIR grows about linearly with the watchlist size for the small
  rates at which watchlists are run: ``FPIR(N) ≈ FPIR(N₀) × N / N₀``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

# sizes on disk (measured order of magnitude: rows with indexes; JPEGs as the pipeline writes them)
ALERT_ROW_BYTES = 1_200
AUDIT_ROW_BYTES = 700
CROP_BYTES = 12_000
EVENT_ROW_BYTES = 500
SNAPSHOT_BYTES = 45_000  # a 640-px-wide redacted frame
EVENT_MSG_BYTES = 450
ALERT_MSG_BYTES = CROP_BYTES + 600


class PlanError(ValueError):
    """A benchmark file lacks the figures the plan needs; names the file and the missing key."""


@dataclass(frozen=True, slots=True)
class NodeFigures:
    """Per-camera cost measured on one node.

    Attributes:
        cores_per_camera: CPU cores one camera used at the benchmark's load.
        faces_per_s: descriptors a second each camera computed at that load.
        analysis_fps: analysed frames a second per camera.
        face_share: the share of the camera's CPU spent on descriptors (the rest scales with frames).
        source: where the figures come from.
    """

    cores_per_camera: float
    faces_per_s: float
    analysis_fps: float
    face_share: float
    source: str

    def cores_for(self, faces_per_s: float, analysis_fps: float | None = None, frame_scale: float = 1.0) -> float:
        """Cores one camera needs for ``faces_per_s`` descriptors a second at ``analysis_fps`` (default: the
        benchmark's), with frame costs scaled by ``frame_scale`` (e.g. HD frames vs the benchmark's)."""
        fps = analysis_fps or self.analysis_fps
        frame = self.cores_per_camera * (1 - self.face_share) * (fps / self.analysis_fps) * frame_scale
        face = self.cores_per_camera * self.face_share * (faces_per_s / self.faces_per_s) if self.faces_per_s else 0.0
        return frame + face


def node_figures(
    data: dict[str, Any], source: str = "node benchmark", point: str = "tuned", profile: str = "hd"
) -> NodeFigures:
    """The per-camera figures of a ``bench/node.py`` JSON: its one-camera calibration at operating ``point``
    (``today`` or ``tuned``, :mod:`metrosight.config.operating_points`) for a ``profile`` camera (``hd``: 1920×1080,
    ``sd``: 640×360); a file of the earlier format (one point: its capacity row, else its idle-node projection).

    Raises:
        PlanError: the file lacks that point or profile, or the figures; names the file and what is missing.
    """
    if "points" in data:
        return _point_figures(data, source, point, profile)
    proj = data.get("projection_idle_node") or data.get("projection_dedicated_node") or {}
    cap = data.get("capacity") or {}
    cores = cap.get("cpu_cores_per_camera") or proj.get("cpu_cores_per_camera")
    faces = proj.get("descriptors_per_s_camera")
    if faces is None and cap.get("descriptors_per_s") and cap.get("cameras_per_node"):
        faces = cap["descriptors_per_s"] / cap["cameras_per_node"]
    fps = data.get("target_analysis_fps")
    if not cores or faces is None or not fps:
        raise PlanError(f"{source}: needs cpu_cores_per_camera, descriptors per camera and target_analysis_fps")
    ms = proj.get("ms_per_frame") or {}
    total = sum(float(v) for v in ms.values())
    face_share = float(ms.get("embed", 0.0)) / total if total > 0 else 0.3
    return _checked(NodeFigures(float(cores), float(faces), float(fps), face_share, source))


def _point_figures(data: dict[str, Any], source: str, point: str, profile: str) -> NodeFigures:
    points = data.get("points") or {}
    cost = (points.get(point) or {}).get(profile)
    if not isinstance(cost, dict):
        have = sorted(f"{p}/{c}" for p, per in points.items() if isinstance(per, dict) for c in per)
        raise PlanError(
            f"{source}: no measurement of point {point!r} for {profile!r} cameras (it has: {have or 'none'})"
        )
    try:
        cores = float(cost["cpu_cores_per_camera"])
        faces = float(cost["descriptors_per_s_camera"])
        fps = float(cost["analysis_fps"])
        share = float((cost.get("cpu_share") or {}).get("embed", 0.3))
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"{source}: {point}/{profile} lacks {exc}") from None
    if cores <= 0 or fps <= 0:
        raise PlanError(f"{source}: {point}/{profile}: cpu_cores_per_camera and analysis_fps must be positive")
    return _checked(NodeFigures(cores, faces, fps, share, f"{source} ({point}, {profile})"))


def _checked(fig: NodeFigures) -> NodeFigures:
    """``fig`` if every figure is a finite number in range (a tampered or broken benchmark file gives NaN or
    infinite figures, which would plan nonsense).

    Raises:
        PlanError: names the source and the figure.
    """
    values = {
        "cpu_cores_per_camera": fig.cores_per_camera,
        "descriptors_per_s_camera": fig.faces_per_s,
        "analysis_fps": fig.analysis_fps,
        "cpu_share.embed": fig.face_share,
    }
    for name, v in values.items():
        if not math.isfinite(v) or v < 0:
            raise PlanError(f"{fig.source}: {name} must be a finite number ≥ 0 (got {v})")
    if fig.cores_per_camera <= 0 or fig.analysis_fps <= 0 or fig.face_share > 1:
        raise PlanError(
            f"{fig.source}: cpu_cores_per_camera and analysis_fps must be positive and cpu_share.embed at most 1"
        )
    return fig


def default_figures(ms_per_descriptor: float, frame_ms: float, analysis_fps: float) -> NodeFigures:
    """Figures from per-operation costs on one core (no node benchmark): ``frame_ms`` per analysed frame
    (decode + detection + tracking), ``ms_per_descriptor`` per face descriptor."""
    faces = 15.0
    frame = analysis_fps * frame_ms / 1000
    face = faces * ms_per_descriptor / 1000
    return _checked(
        NodeFigures(frame + face, faces, analysis_fps, face / (frame + face), "per-operation costs (README)")
    )


@dataclass(frozen=True, slots=True)
class PlanInput:
    cameras: int = 12_300
    faces_per_s: float = 15.0
    analysis_fps: float | None = None
    frame_scale: float = 1.0
    cores_per_node: int = 32
    utilisation: float = 0.75
    events_per_camera_hour: float = 30.0
    snapshots: bool = True
    true_alerts_per_day: float = 100.0
    watchlist_size: int = 1_000
    fpir: float = 0.003
    fpir_gallery: int = 163
    footfall_per_day: float = 7_000_000
    searches_per_person: float = 6.0
    lease_seconds: float = 10.0
    policy_refresh_seconds: float = 1.0
    alerts_days: float | None = 90
    crops_days: float | None = 30
    events_days: float | None = 30
    audit_days: float | None = 730
    reference_servers: int = 398


@dataclass(frozen=True, slots=True)
class Plan:
    cores_per_camera: float
    cores: float
    nodes: int
    cameras_per_node: int
    worker_processes: int
    searches_per_day: float
    fpir_at_watchlist: float
    false_alerts_per_day: float
    alerts_per_day: float
    events_per_day: float
    bus_msgs_per_s: float
    bus_bytes_per_s: float
    redis_ops_per_s: float
    db_rows_per_s: float
    db_alert_tx_per_s: float
    db_policy_queries_per_s: float
    storage_bytes_per_day: float
    storage_bytes_steady: float
    reference_cameras_per_server: float
    reference_ratio: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _shortest(*days: float | None) -> float | None:
    kept = [d for d in days if d is not None]
    return min(kept) if kept else None


def plan(p: PlanInput, fig: NodeFigures) -> Plan:
    """The plan for ``p`` with the per-camera costs ``fig``."""
    cpc = fig.cores_for(p.faces_per_s, p.analysis_fps, p.frame_scale)
    cores = p.cameras * cpc
    usable = p.cores_per_node * p.utilisation
    if not math.isfinite(cpc):
        raise PlanError(f"a camera's cost is not a finite number ({cpc} cores): check the figures given")
    if cpc > usable:
        raise PlanError(
            f"one camera needs {cpc:.2f} cores, more than a {p.cores_per_node}-core node offers at "
            f"{p.utilisation:.0%} ({usable:.2f}): give more --cores-per-node or a lower --analysis-fps"
        )
    per_node = max(1, int(usable / cpc + 1e-9)) if cpc > 0 else p.cameras
    nodes = math.ceil(p.cameras / per_node)
    workers = nodes * p.cores_per_node  # one worker process per core
    searches = p.footfall_per_day * p.searches_per_person
    fpir_n = min(1.0, p.fpir * p.watchlist_size / max(1, p.fpir_gallery))
    false_alerts = searches * fpir_n
    alerts = false_alerts + p.true_alerts_per_day
    events = p.cameras * p.events_per_camera_hour * 24
    ev_msgs = 2 * events / 86_400  # each event and its end update
    al_msgs = 2 * alerts / 86_400
    bus_msgs = ev_msgs + al_msgs
    bus_bytes = ev_msgs * EVENT_MSG_BYTES + (alerts / 86_400) * ALERT_MSG_BYTES + (alerts / 86_400) * 200
    renewals = p.cameras / (p.lease_seconds / 3) + workers / (p.lease_seconds / 3)  # leases + presence
    ttl = min(0.25, p.policy_refresh_seconds / 4)  # the worker's cache of the mirrored gallery version
    version_reads = workers * min(p.cameras / workers / p.policy_refresh_seconds, 1 / ttl)
    counting = workers + version_reads  # each worker counts live workers once a second
    redis_ops = bus_msgs * 2 + renewals + counting  # XADD + (XREADGROUP/XACK amortised ≈ one more op a message)
    policy = workers * 3 / p.policy_refresh_seconds
    per_day_alerts = alerts * (ALERT_ROW_BYTES + AUDIT_ROW_BYTES)
    per_day_crops = alerts * CROP_BYTES
    per_day_events = events * (EVENT_ROW_BYTES + (SNAPSHOT_BYTES if p.snapshots else 0))
    per_day = per_day_alerts + per_day_crops + per_day_events

    def keep(days: float | None, daily: float) -> float:
        return daily * (days if days is not None else 365.0)

    steady = (
        keep(p.alerts_days, alerts * ALERT_ROW_BYTES)
        + keep(p.audit_days, alerts * AUDIT_ROW_BYTES)
        + keep(_shortest(p.crops_days, p.alerts_days), per_day_crops)  # a crop goes with its alert at the latest
        + keep(p.events_days, per_day_events)
    )
    ref = p.cameras / p.reference_servers
    return Plan(
        cores_per_camera=cpc,
        cores=cores,
        nodes=nodes,
        cameras_per_node=per_node,
        worker_processes=workers,
        searches_per_day=searches,
        fpir_at_watchlist=fpir_n,
        false_alerts_per_day=false_alerts,
        alerts_per_day=alerts,
        events_per_day=events,
        bus_msgs_per_s=bus_msgs,
        bus_bytes_per_s=bus_bytes,
        redis_ops_per_s=redis_ops,
        db_rows_per_s=ev_msgs + al_msgs,
        db_alert_tx_per_s=alerts / 86_400,
        db_policy_queries_per_s=policy,
        storage_bytes_per_day=per_day,
        storage_bytes_steady=steady,
        reference_cameras_per_server=ref,
        reference_ratio=nodes / p.reference_servers,
    )
