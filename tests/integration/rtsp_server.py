"""A loopback RTSP server for tests and benchmarks: GStreamer's RTSP server serving MP4 files (H.264).

Runs under the system Python with PyGObject (Debian: python3-gi, gir1.2-gst-rtsp-server-1.0,
gstreamer1.0-plugins-good), not in the project's venv:

    /usr/bin/python3 tests/integration/rtsp_server.py --port 8554 --mount cam0=clip.mp4 [--mount cam1=…]

Each client of ``rtsp://127.0.0.1:PORT/cam0`` gets its own playback of the file from its start, in real time, over
RTP/TCP or UDP as the client asks. Prints ``READY`` once listening; SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mount", action="append", required=True, help="PATH=FILE: serve FILE (H.264 MP4) at /PATH")
    ap.add_argument(
        "--protocols",
        choices=("all", "tcp", "udp"),
        default="all",
        help="RTP lower transports the server accepts (a camera that only speaks RTP over UDP, or over TCP)",
    )
    ap.add_argument("--user", help="USER:PASSWORD: require HTTP basic authentication with these credentials")
    args = ap.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for item in args.mount:
        path, _, file = item.partition("=")
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(
            f'( filesrc location="{file}" ! qtdemux name=d d.video_0 ! queue '
            "! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
        factory.set_shared(False)
        if args.protocols != "all":
            factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP if args.protocols == "tcp" else GstRtsp.RTSPLowerTrans.UDP)
        if args.user:
            factory.add_role_from_structure(
                Gst.Structure.from_string(
                    "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
                )[0]
            )
        mounts.add_factory("/" + path.strip("/"), factory)
    if args.user:
        name, _, password = args.user.partition(":")
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(name, password), token)
        server.set_auth(auth)
    if server.attach(None) == 0:
        print(f"error: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print("READY", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
