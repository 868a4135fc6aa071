"""``metrosight doctor``'s camera check: open one configured camera, decode one frame, and report resolution, frame
rate, codec and the RTSP transport that worked; sources shown redacted.
"""

from __future__ import annotations

import time

from metrosight.config.model import CameraConfig
from metrosight.ingest.source import SourceError, open_container, parse_source
from metrosight.ops.checks import Check, Status


def check_camera(cam: CameraConfig, open_timeout: float) -> Check:
    """Open one configured camera, decode one frame, report resolution, frame rate and transport."""
    name = f"camera {cam.id}"
    spec = parse_source(cam.source, cam.rtsp_transport)
    tried = spec.transports if spec.kind == "rtsp" else ("",)
    failures: list[str] = []
    for transport in tried:
        one = parse_source(cam.source, transport) if transport else spec
        t0 = time.perf_counter()
        try:
            container = open_container(one, open_timeout)
        except SourceError as exc:
            failures.append(str(exc))
            continue
        try:
            stream = container.streams.video[0]
            frame = next(container.decode(stream))
            rate = stream.average_rate or stream.guessed_rate
            data = {
                "source": spec.display,
                "width": frame.width,
                "height": frame.height,
                "fps": round(float(rate), 2) if rate else None,
                "codec": stream.codec_context.name,
                "transport": transport or spec.kind,
                "open_s": round(time.perf_counter() - t0, 3),
            }
        except (IndexError, StopIteration, Exception) as exc:  # noqa: BLE001 - a stream that gives no frame
            return Check(
                name,
                Status.FAIL,
                f"{spec.display}: opened but no frame decoded ({spec.redact(str(exc))})",
                "check the stream's codec (`metrosight doctor --codec NAME`) and that it sends video",
            )
        finally:
            container.close()
        fps = f"{data['fps']:g} fps" if data["fps"] else "frame rate unknown"
        return Check(
            name,
            Status.OK,
            f"{spec.display}: {data['width']}×{data['height']}, {fps}, {data['codec']} "
            f"over {str(data['transport']).upper()}",
            data=data,
        )
    return Check(
        name,
        Status.FAIL,
        spec.redact(_merge(failures, [t for t in tried if t])),
        "fix the camera's address, credentials or network (the reason above says which)",
    )


def _merge(messages: list[str], transports: list[str]) -> str:
    """One message for the same failure over several RTSP transports (``… over TCP and UDP: reason; hint``)."""
    parts = [m.split(f" over {t.upper()}", 1) for m, t in zip(messages, transports, strict=False)]
    if len(parts) > 1 and all(len(p) == 2 for p in parts) and len({p[1] for p in parts}) == 1:
        return f"{parts[0][0]} over {' and '.join(t.upper() for t in transports)}{parts[0][1]}"
    return " / ".join(messages)
