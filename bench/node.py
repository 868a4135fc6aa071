"""Capacity of one node: N simulated cameras over RTSP, the real supervisor, workers and pipeline.

Each simulated camera is a shared video looped and served by GStreamer's RTSP server on loopback, one playback
per camera: the Hamilton clip (``--video hamilton``, default: 30 fps, 640×360, Lin-Manuel Miranda on stage, then
the audience; he is on the watchlist, so alerts give the latency) or the crowd clip (``--video crowd``: 25 fps,
1920×1080, many frontal faces walking toward the camera, nobody enrolled: an HD camera's load, no alerts). The
node runs all N cameras (`metrosight node`'s Supervisor: one worker process per core, pinned) at a target
analysis rate with a watchlist of the four face_recognition example portraits. The recognition settings are set
for the reference load: every usable face of a track is embedded and matched (up to 32 a track, no quality
floor), so that a camera computes and matches as many face descriptors as its faces allow.

First, the cost of one camera: the pipeline over ``--calibrate`` seconds of the clip at the target rate with no
clock (every due frame analysed), in CPU time — the figure least disturbed by other work on a shared machine —
and the faces and descriptors per second of video it yields; from it, how many such cameras an idle node holds.

Then, for each N, after a warm-up, it measures over a window: frames analysed/s per camera (min and mean), faces
detected/s, descriptors computed/s per camera (min), frames dropped (stale frames replaced before analysis),
alert latency p50/p95 (frame decoded → alert stored), the CPU used by workers, server, parent and everything else
on the machine. A camera keeps up when it analyses at least 90% of the target rate and computes at least 15
descriptors a second (the reference network's figure); the capacity is the largest N at which every camera keeps
up. Ratios are against N=1 measured in the same run.

    python bench/node.py [--video hamilton|crowd] [--cameras 1,2,3,4] [--fps 18] [--calibrate 30]
                         [--warmup 15] [--seconds 30] [--no-pin] [--out bench/results/node.json]

Needs ffmpeg and GStreamer's RTSP server (see .ci/run) and the shared data.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import json
import logging
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MIN_DESCRIPTORS = 15.0  # per camera per second: the reference network's figure
KEEP_UP = 0.9  # fraction of the target analysis rate a camera must reach
REFERENCE_LOAD = {"max_samples": 32, "min_quality": 0.0, "min_blur_var": 0.0}


def data_root(arg: str | None) -> Path:
    return Path(arg or os.environ.get("METROSIGHT_DATA") or REPO.parent / "shared" / "data")


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores, Linux /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def make_home(root: Path, ex: Path) -> Path:
    from tests.integration.helpers import bootstrap, cli, enrol_active

    home = root / "home"
    bootstrap(home)
    cli(home, "--as", "ada", "watchlist", "create", "bench", "--category", "wanted")
    for name, photo in (
        ("Lin-Manuel Miranda", "lin-manuel-miranda.png"),
        ("Alex Lacamoire", "alex-lacamoire.png"),
        ("Barack Obama", "obama.jpg"),
        ("Joe Biden", "biden.jpg"),
    ):
        code, out, _ = enrol_active(home, "bench", "-s", name, ex / photo)
        if code != 0:
            raise SystemExit(f"enrolment of {name} failed: {out}")
    return home


def camera_cost(home: Path, clip: Path, fps: float, seconds: float) -> dict:
    """CPU time of one camera per second of video at ``fps``: the real pipeline over the first ``seconds`` of the
    clip in this process, every due frame analysed (no clock, no drops). CPU time, not wall time, so that other
    work on a shared machine inflates it only through caches."""
    import subprocess

    import av

    from metrosight.config.home import Home
    from metrosight.config.model import Settings
    from metrosight.pipeline.runtime import Runtime

    part = clip.with_name(f"calibration_{seconds:g}s.mp4")
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(clip),
            "-t",
            f"{seconds:g}",
            "-c",
            "copy",
            str(part),
        ],
        check=True,
    )
    with av.open(str(part)) as c:
        span = float(c.duration or 0) / 1e6 or seconds
    settings = Settings.model_validate(
        {"recognition": REFERENCE_LOAD, "detection": {"min_face_px": 16}, "ingest": {"analysis_fps": fps}}
    )
    rt = Runtime.open(Home(home), settings)
    rt.services.models.load()
    cpu0 = time.process_time()
    report = rt.run(str(part), "calibration")
    cpu = time.process_time() - cpu0
    s = report.stats
    return {
        "media_seconds": round(span, 2),
        "frames_analysed": s.frames,
        "cpu_cores_per_camera": round(cpu / span, 3),
        "faces_per_s_camera": round(s.faces / span, 2),
        "descriptors_per_s_camera": round(s.embedded / span, 2),
        "ms_per_frame": {k: round(1000.0 * v / max(1, s.frames), 1) for k, v in s.stage_seconds.items()},
    }


def run_n(n: int, home: Path, clip: Path, fps: float, warmup: float, seconds: float, pin: bool) -> dict:
    from metrosight.config.home import Home
    from metrosight.config.model import Settings
    from metrosight.pipeline.supervisor import Supervisor
    from metrosight.services.suite import Services
    from tests.integration.rtsp import RtspServer

    load_before = os.getloadavg()[0]
    with RtspServer({f"cam{i}": clip for i in range(n)}) as server:
        settings = Settings.model_validate(
            {
                "recognition": REFERENCE_LOAD,
                "detection": {"min_face_px": 16},
                "node": {"pin_cores": pin},
                "cameras": [{"id": f"cam{i}", "source": server.url(f"cam{i}"), "analysis_fps": fps} for i in range(n)],
            }
        )
        sup = Supervisor(Services.open(Home(home), settings))
        thread = threading.Thread(target=lambda: sup.run(), daemon=True)
        thread.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # every camera live before the clock starts
            cams = sup.metrics.snapshot()["cameras"]
            if len(cams) == n and all(c["state"] == "live" for c in cams.values()):
                break
            time.sleep(0.2)
        else:
            sup.request_stop()
            thread.join(60)
            raise SystemExit(f"N={n}: not every camera went live within 120 s")
        time.sleep(warmup)

        def sample() -> tuple[float, Any, float, float, float, int, float]:
            snap: Any = sup.metrics.snapshot()
            workers = sum(snap["worker_cpu_seconds"].values())
            return (
                time.monotonic(),
                snap["cameras"],
                workers,
                server.cpu_seconds(),
                own_cpu(),
                len(sup.metrics.latencies),
                machine_busy(),
            )

        t0, c0, w0, s0, p0, l0, m0 = sample()
        time.sleep(seconds)
        t1, c1, w1, s1, p1, l1, m1 = sample()
        rss = [rss_mb(pid) for pid in sup.worker_pids().values()]
        lat = sorted(list(sup.metrics.latencies)[l0:l1])
        sup.request_stop()
        thread.join(120)
    span = t1 - t0
    per = {}
    for cid in c1:
        a, b = c0[cid], c1[cid]
        d = {
            k: b[k] - a[k]
            for k in ("frames_analysed", "faces", "embedded", "frames_dropped", "frames_decoded", "alerts")
        }
        per[cid] = {
            "analysed_fps": d["frames_analysed"] / span,
            "faces_per_s": d["faces"] / span,
            "descriptors_per_s": d["embedded"] / span,
            "dropped": d["frames_dropped"],
            "decoded_fps": d["frames_decoded"] / span,
            "alerts": d["alerts"],
            "reconnects": b["reconnects"],
        }

    def q(p: float) -> float | None:
        return lat[min(len(lat) - 1, round(p * (len(lat) - 1)))] if lat else None

    analysed = [v["analysed_fps"] for v in per.values()]
    desc = [v["descriptors_per_s"] for v in per.values()]
    keeps_up = all(a >= KEEP_UP * fps for a in analysed) and all(x >= MIN_DESCRIPTORS for x in desc)
    return {
        "cameras": n,
        "workers": len(sup.workers),
        "window_s": round(span, 2),
        "analysed_fps_min": round(min(analysed), 2),
        "analysed_fps_mean": round(sum(analysed) / n, 2),
        "frames_analysed_per_s": round(sum(analysed), 2),
        "faces_per_s": round(sum(v["faces_per_s"] for v in per.values()), 2),
        "descriptors_per_s": round(sum(desc), 2),
        "descriptors_per_s_camera_min": round(min(desc), 2),
        "dropped": sum(v["dropped"] for v in per.values()),
        "dropped_per_s": round(sum(v["dropped"] for v in per.values()) / span, 2),
        "alerts": sum(v["alerts"] for v in per.values()),
        "latency_p50_s": round(q(0.5), 3) if lat else None,
        "latency_p95_s": round(q(0.95), 3) if lat else None,
        "latency_samples": len(lat),
        "cpu_workers": round((w1 - w0) / span, 3),
        "cpu_server": round((s1 - s0) / span, 3),
        "cpu_parent": round((p1 - p0) / span, 3),
        "rss_mb_per_worker": round(sum(rss) / len(rss), 1) if rss else None,
        "cpu_others": round(max(0.0, (m1 - m0) - (w1 - w0) - (s1 - s0) - (p1 - p0)) / span, 3),
        "loadavg_1m_before": round(load_before, 2),
        "keeps_up": keeps_up,
        "per_camera": {
            k: {kk: round(vv, 2) if isinstance(vv, float) else vv for kk, vv in v.items()} for k, v in per.items()
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None)
    ap.add_argument("--video", choices=("hamilton", "crowd"), default="hamilton", help="what each camera shows")
    ap.add_argument("--cameras", default="1,2,3,4", help="comma-separated camera counts")
    ap.add_argument("--fps", type=float, default=18.0, help="target analysis rate per camera")
    ap.add_argument("--calibrate", type=float, default=30.0, help="seconds of video for the one-camera cost")
    ap.add_argument("--no-pin", action="store_true", help="do not pin workers to cores (a shared machine)")
    ap.add_argument("--warmup", type=float, default=15.0)
    ap.add_argument("--seconds", type=float, default=30.0, help="measurement window per N")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "node.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)

    from rich.console import Console
    from rich.table import Table

    from tests.integration.rtsp import looped_video, rtsp_missing

    console = Console(width=220)
    why = rtsp_missing()
    if why:
        console.print(f"[red]error:[/] {why}")
        return 2
    ex = data_root(args.data) / "face_recognition_examples" / "examples"
    if not ex.exists():
        console.print(f"[red]error:[/] shared data missing: {ex} (set METROSIGHT_DATA)")
        return 2
    videos = {
        "hamilton": ex / "short_hamilton_clip.mp4",
        "crowd": data_root(args.data) / "facenet_pytorch_samples" / "examples" / "video.mp4",
    }
    seconds_of = {"hamilton": 10.0, "crowd": 4.2}
    video = videos[args.video]
    if not video.exists():
        console.print(f"[red]error:[/] shared data missing: {video}")
        return 2
    counts = [int(x) for x in args.cameras.split(",") if x.strip()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        loops = int((args.warmup + args.seconds + 60) / 10) + 2
        clip = looped_video(video, root / f"{args.video}_loop.mp4", int(loops * 10 / seconds_of[args.video]) + 1)
        home = make_home(root, ex)
        console.print(f"[dim]cost of one camera: {args.calibrate:g} s of the video at {args.fps:g} fps, no clock …[/]")
        cost = camera_cost(home, clip, args.fps, args.calibrate)
        for n in counts:
            console.print(f"[dim]N={n}: {n} camera(s) at {args.fps:g} fps …[/]")
            rows.append(run_n(n, home, clip, args.fps, args.warmup, args.seconds, not args.no_pin))
    base = rows[0] if rows and rows[0]["cameras"] == 1 else None
    cores = len(os.sched_getaffinity(0))
    table = Table(
        title=f"metrosight node, {cores} cores ({platform.processor() or platform.machine()}), {video.name}, "
        f"target {args.fps:g} analysed frames/s per camera"
    )
    cols = (
        "N",
        "analysed/s min·mean",
        "frames/s node",
        "faces/s",
        "descr/s node",
        "descr/s cam min",
        "dropped/s",
        "alerts",
        "latency p50",
        "p95",
        "cpu workers",
        "cpu server",
        "cpu others",
        "load before",
        "per-cam vs N=1",
        "keeps up",
    )
    for c in cols:
        table.add_column(c, justify="right")
    for r in rows:
        ratio = (
            f"{r['analysed_fps_mean'] / base['analysed_fps_mean']:.2f}×" if base and base["analysed_fps_mean"] else "-"
        )
        table.add_row(
            str(r["cameras"]),
            f"{r['analysed_fps_min']:.1f} · {r['analysed_fps_mean']:.1f}",
            f"{r['frames_analysed_per_s']:.1f}",
            f"{r['faces_per_s']:.1f}",
            f"{r['descriptors_per_s']:.1f}",
            f"{r['descriptors_per_s_camera_min']:.1f}",
            f"{r['dropped_per_s']:.1f}",
            str(r["alerts"]),
            f"{r['latency_p50_s']:.2f} s" if r["latency_p50_s"] is not None else "-",
            f"{r['latency_p95_s']:.2f} s" if r["latency_p95_s"] is not None else "-",
            f"{r['cpu_workers']:.2f}",
            f"{r['cpu_server']:.2f}",
            f"{r['cpu_others']:.2f}",
            f"{r['loadavg_1m_before']:.1f}",
            ratio,
            "yes" if r["keeps_up"] else "no",
        )
    console.print(table)
    ok = [r for r in rows if r["keeps_up"]]
    best = max(ok, key=lambda r: r["cameras"]) if ok else None
    if best:
        console.print(
            f"capacity: {best['cameras']} camera(s) keep up at {args.fps:g} fps "
            f"with ≥{MIN_DESCRIPTORS:g} descriptors/s each ({best['faces_per_s']:.0f} faces/s, "
            f"{best['descriptors_per_s']:.0f} descriptors/s, "
            f"{best['cpu_workers']:.2f} cores in workers); the machine is shared, load average before the runs: "
            f"{', '.join(str(r['loadavg_1m_before']) for r in rows)}"
        )
    else:
        console.print("capacity: no N kept up (see the table)")
    result = {
        "bench": "node",
        "machine": {"cores": cores, "processor": platform.processor() or platform.machine(), "shared": True},
        "video": f"{video.name} looped, over RTSP (GStreamer, loopback)",
        "target_analysis_fps": args.fps,
        "min_descriptors_per_camera": MIN_DESCRIPTORS,
        "keep_up_fraction": KEEP_UP,
        "recognition_overrides": REFERENCE_LOAD,
        "rows": rows,
        "capacity": (
            {
                "cameras_per_node": best["cameras"],
                "faces_per_s": best["faces_per_s"],
                "descriptors_per_s": best["descriptors_per_s"],
                "cpu_cores_workers": best["cpu_workers"],
                "cpu_cores_total": round(best["cpu_workers"] + best["cpu_server"] + best["cpu_parent"], 3),
                "cpu_cores_per_camera": round(best["cpu_workers"] / best["cameras"], 3),
                "node_cores": cores,
            }
            if best
            else None
        ),
    }
    # What an idle node of this kind holds: every due frame analysed (so no frame-selection bias), from the CPU time
    # one camera costs per second of video; the server and parent overheads are those measured at N=1.
    overhead = (base["cpu_server"] + base["cpu_parent"]) if base else 0.0
    per_cam = cost["cpu_cores_per_camera"]
    fit = int((cores - overhead) // per_cam) if per_cam > 0 else 0
    projection = {
        **cost,
        "cameras_per_node": fit,
        "faces_per_s": round(cost["faces_per_s_camera"] * fit, 1),
        "descriptors_per_s": round(cost["descriptors_per_s_camera"] * fit, 1),
        "meets_descriptor_floor": cost["descriptors_per_s_camera"] >= MIN_DESCRIPTORS,
    }
    console.print(
        f"one camera at {args.fps:g} fps costs {per_cam:.2f} cores (CPU time, no clock) and computes "
        f"{cost['descriptors_per_s_camera']:.1f} descriptors/s ({cost['faces_per_s_camera']:.1f} faces/s): an idle "
        f"{cores}-core node holds {fit} such camera(s)"
    )
    result["projection_idle_node"] = projection
    result["pinned"] = not args.no_pin
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
