"""paho-mqtt's select.select, answered with poll(): the same answers, also for a descriptor above 1023 (which
select.select refuses: paho then took every connection for lost and never published)."""

from __future__ import annotations

import contextlib
import os
import resource
import select as std_select
import socket

import pytest

from metrosight.outbound import pollselect


def test_ready_to_read_and_write_like_select() -> None:
    a, b = socket.socketpair()
    try:
        assert pollselect.select([a], [a], [], 0.0) == ([], [a], [])  # nothing to read yet, room to write
        b.sendall(b"x")
        r, w, x = pollselect.select([a, b], [], [], 1.0)
        assert r == [a] and w == [] and x == []
        assert pollselect.select([b], [], [], 0.0) == ([], [], [])  # b itself has nothing to read
        b.close()
        a.recv(1)
        assert pollselect.select([a], [], [], 0.0)[0] == [a]  # the peer hung up: readable, the reader meets it
    finally:
        a.close()
        with contextlib.suppress(OSError):
            b.close()


def test_a_closed_socket_and_none_fail_as_select_does() -> None:
    s = socket.socket()
    s.close()
    with pytest.raises(ValueError):
        pollselect.select([s], [], [], 0.0)
    with pytest.raises(TypeError):
        pollselect.select([None], [], [], 0.0)


def test_a_descriptor_above_1023_is_waited_on() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the descriptor limit ({hard}) is below 1200 here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    fillers: list[int] = []
    try:
        while len(fillers) < 1100:
            fillers.append(os.open(os.devnull, os.O_RDONLY))
        a, b = socket.socketpair()
        try:
            assert a.fileno() > 1023
            with pytest.raises(ValueError):
                std_select.select([a], [], [], 0.0)  # the fault paho met
            b.sendall(b"x")
            assert pollselect.select([a], [], [], 1.0)[0] == [a]
        finally:
            a.close()
            b.close()
    finally:
        for fd in fillers:
            with contextlib.suppress(OSError):
                os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_install_gives_paho_the_poll_based_select() -> None:
    import paho.mqtt.client as paho_client

    pollselect.install()
    assert paho_client.select.select is pollselect.select


def test_the_mqtt_channel_installs_it_before_its_network_thread_starts(monkeypatch) -> None:
    import paho.mqtt.client as paho_client

    from metrosight.config.channels import MqttConfig
    from metrosight.outbound.mqtt import MqttChannel

    monkeypatch.setattr(paho_client, "select", std_select)  # as paho comes
    seen: list[object] = []

    class Client:  # the paho calls the channel makes when it starts
        def connect_async(self, *_a: object, **_k: object) -> None:
            pass

        def loop_start(self) -> None:
            seen.append(paho_client.select)

    MqttChannel(MqttConfig(host="localhost", topic_prefix="metro"), client=Client())  # type: ignore[arg-type]
    assert seen and seen[0].select is pollselect.select  # type: ignore[attr-defined]
