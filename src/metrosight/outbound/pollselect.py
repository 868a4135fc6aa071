"""``select.select`` answered with ``poll()``, for paho-mqtt's network loop.

paho-mqtt waits on its socket with ``select.select``, which refuses a descriptor above 1023, and paho takes that
refusal for a lost connection: in a process holding many files and sockets (a busy ``serve``, a worker with many
cameras) it connects, drops the socket, reconnects, forever, and nothing is published. :func:`install` gives paho's
client module this module's :func:`select` instead: the same call, the same answers, on ``poll()``, which takes any
descriptor. The syslog forwarder had the same fault and waits on ``poll()`` itself.
"""

from __future__ import annotations

import select as _select
from collections.abc import Sequence
from typing import Any

_IN = _select.POLLIN | _select.POLLPRI
_OUT = _select.POLLOUT
_GONE = _select.POLLERR | _select.POLLHUP | _select.POLLNVAL


def _fd(obj: Any) -> int:
    if not isinstance(obj, int) and not hasattr(obj, "fileno"):
        raise TypeError(f"argument must be an int, or have a fileno() method ({type(obj).__name__})")  # as select
    fd = obj if isinstance(obj, int) else obj.fileno()
    if not isinstance(fd, int) or fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")  # a closed socket, as select.select
    return fd


def select(
    rlist: Sequence[Any], wlist: Sequence[Any], xlist: Sequence[Any], timeout: float | None = None
) -> tuple[list[Any], list[Any], list[Any]]:
    """``select.select(rlist, wlist, xlist, timeout)`` on ``poll()``: the objects (sockets or descriptors) ready to
    read, ready to write, and ``[]`` (exceptional conditions are reported as readable, so that the reader meets the
    error). ``timeout`` in seconds, None to wait without limit.

    Raises:
        TypeError: an object without ``fileno()``. ValueError: a negative descriptor (a closed socket).
    """
    poller = _select.poll()
    masks: dict[int, int] = {}
    for obj in rlist:
        fd = _fd(obj)
        masks[fd] = masks.get(fd, 0) | _IN
    for obj in wlist:
        fd = _fd(obj)
        masks[fd] = masks.get(fd, 0) | _OUT
    for fd, mask in masks.items():
        poller.register(fd, mask)
    events = dict(poller.poll(None if timeout is None else max(timeout, 0.0) * 1000.0))
    ready_r = [o for o in rlist if events.get(_fd(o), 0) & (_IN | _GONE)]
    ready_w = [o for o in wlist if events.get(_fd(o), 0) & (_OUT | _GONE)]
    return ready_r, ready_w, []


class _PollSelectModule:
    """What paho's client module uses of the ``select`` module."""

    select = staticmethod(select)
    error = OSError


def install() -> None:
    """Make paho-mqtt's client module wait with :func:`select` (idempotent; every paho client of the process)."""
    import paho.mqtt.client as paho_client

    paho_client.select = _PollSelectModule  # type: ignore[assignment]
