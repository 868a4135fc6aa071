"""How each host gets its outbound dispatcher: the configured channels, opened once, in one place.

:func:`open_channels` is the one list of channels (each channel adds its line there); :func:`dispatcher_for`
builds the dispatcher a host attaches to the bus it publishes on (``run``: :class:`~metrosight.pipeline.single.
SingleRun`; ``node`` and ``serve``: the :class:`~metrosight.pipeline.supervisor.Supervisor`); :func:`start_redis`
runs it as a consumer in group ``outbound`` of a Redis bus (``serve --bus``, ``consume``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from metrosight.bus.redis_streams import RedisStreamsBus
from metrosight.outbound.channel import Channel
from metrosight.outbound.dispatch import Dispatcher
from metrosight.services.suite import Services

log = logging.getLogger(__name__)

#: the consumer group the outbound dispatchers of a Redis deployment share (each entry dispatched by one)
GROUP = "outbound"


def open_channels(services: Services) -> list[Channel]:
    """Every outbound channel configured for this installation (none: an empty list).

    Raises:
        ChannelError: a configured channel cannot be opened (the message names it).
    """
    channels: list[Channel] = []
    return channels


def dispatcher_for(services: Services, *, strict: bool = False) -> Dispatcher:
    """The dispatcher of a host: the configured channels, the configured cameras' places (see
    :class:`~metrosight.outbound.dispatch.Dispatcher` for ``strict``)."""
    return Dispatcher(open_channels(services), Dispatcher.places_of(services.settings.cameras), strict=strict)


def start_redis(
    services: Services, url: str, prefix: str = "metrosight", consumer: str | None = None
) -> Callable[[], None]:
    """Dispatch what a Redis deployment's workers publish: a consumer in group ``outbound`` on ``url``, in a
    background thread (nothing is started when no channel is configured). Returns the function that stops it and
    closes the channels."""
    dispatcher = dispatcher_for(services, strict=True)
    if not dispatcher.channels:
        return dispatcher.close
    # the group starts at the streams' end when first created: what was published before outbound channels were
    # configured is not sent (the store has it); from then on nothing is skipped (a restart resumes the group)
    bus = RedisStreamsBus(url, prefix=prefix, group=GROUP, consumer=consumer, group_start="$")
    dispatcher.attach(bus)
    stop = threading.Event()
    thread = threading.Thread(target=bus.run, args=(stop,), name="outbound-consumer", daemon=True)
    thread.start()
    log.warning("dispatching %s to %d outbound channel(s)", bus.shown, len(dispatcher.channels))

    def halt() -> None:
        stop.set()
        thread.join(5)
        dispatcher.close()
        bus.close()

    return halt
