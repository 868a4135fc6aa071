"""The collector connection's liveness check works on a descriptor above 1023 (select() refused it: in a process
holding many files and sockets, the forwarder saw every connection as broken and never forwarded anything)."""

from __future__ import annotations

import contextlib
import os
import resource
import socket

import pytest

from metrosight.outbound.syslog import StreamTransport


def test_a_connection_on_a_high_descriptor_is_seen_alive_and_then_closed() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the descriptor limit ({hard}) is below 1200 here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    fillers: list[int] = []
    server = socket.create_server(("127.0.0.1", 0))
    try:
        while len(fillers) < 1100:  # push the next descriptors past 1023
            fillers.append(os.open(os.devnull, os.O_RDONLY))
        t = StreamTransport("127.0.0.1", server.getsockname()[1], None, 2.0)
        t.connect()
        peer, _ = server.accept()
        assert t._sock is not None and t._sock.fileno() > 1023
        t.check()  # alive: no error
        peer.close()
        with pytest.raises(ConnectionError, match="closed the connection"):
            t.check()
    finally:
        for fd in fillers:
            with contextlib.suppress(OSError):
                os.close(fd)
        server.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
