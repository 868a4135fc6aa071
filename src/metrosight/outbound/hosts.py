"""How each host gets its outbound dispatcher: the configured channels, opened once, in one place.

:func:`open_channels` is the one list of channels (each channel adds its line there); :func:`dispatcher_for`
builds the dispatcher a host attaches to the bus it publishes on:

- ``metrosight run``: :class:`~metrosight.pipeline.single.SingleRun` (webhooks pending at the end are still
  attempted for ``outbound.webhooks.drain_seconds``);
- ``metrosight node`` and ``metrosight serve`` with cameras: the :class:`~metrosight.pipeline.supervisor.Supervisor`
  (on the service's bus); ``serve`` without cameras: a dispatcher for what the service itself publishes;
- a Redis deployment: :func:`start_redis`, a consumer in group ``outbound`` (``serve --bus``, ``consume``).

Whatever host runs, a webhook channel's delivery worker runs with it, so the outbox is emptied by any of them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from metrosight.bus.redis_streams import RedisStreamsBus
from metrosight.bus.topics import P, Topic
from metrosight.outbound.channel import Channel, ChannelError
from metrosight.outbound.delivery import DeliveryWorker
from metrosight.outbound.dispatch import Dispatcher
from metrosight.outbound.events import CameraPlace
from metrosight.outbound.mqtt import MqttChannel
from metrosight.outbound.webhooks import WebhookChannel
from metrosight.policy.scope import CameraGroups
from metrosight.services.suite import Services

log = logging.getLogger(__name__)

#: the consumer group the outbound dispatchers of a Redis deployment share (each entry dispatched by one)
GROUP = "outbound"


def open_channels(services: Services, *, draining: bool = False, delivering: bool = True) -> list[Channel]:
    """Every outbound channel configured for this installation (none: an empty list). ``draining``: the host ends
    soon (``run``): a channel with a queue keeps delivering for a bounded time at close. Not ``delivering`` (a
    command that only hands an event over): a channel with a durable queue only queues it.

    Raises:
        ChannelError: a configured channel cannot be opened (the message names it).
    """
    settings = services.settings
    channels: list[Channel] = []
    if settings.outbound.webhooks.enabled:
        hooks = settings.outbound.webhooks
        worker = DeliveryWorker(services.store.outbox, hooks) if delivering else None
        channels.append(WebhookChannel(services.store.outbox, hooks, worker, hooks.drain_seconds if draining else 0.0))
    if settings.outbound.mqtt is not None:
        channels.append(MqttChannel(settings.outbound.mqtt, announce=delivering))
    return channels


def dispatcher_for(services: Services, *, strict: bool = False, draining: bool = False) -> Dispatcher:
    """The dispatcher of a host: the configured channels, the configured cameras' places (see
    :class:`~metrosight.outbound.dispatch.Dispatcher` for ``strict``; :func:`open_channels` for ``draining``)."""
    channels = open_channels(services, draining=draining)
    return Dispatcher(channels, places_of(services), strict=strict)


def places_of(services: Services) -> dict[str, CameraPlace]:
    """The configured cameras' places, with every camera group each is in (named groups, lines, groups)."""
    settings = services.settings
    return Dispatcher.places_of(settings.cameras, CameraGroups.of(settings.camera_group_members()))


def dispatch_once(services: Services, topic: Topic[P], payload: P) -> None:
    """Hand one event made by a command (e.g. ``metrosight alert confirm``) to the channels, then close them:
    webhooks are queued in the outbox (a running host delivers them). A channel's failure is logged."""
    try:
        channels = open_channels(services, delivering=False)
    except ChannelError as exc:  # the act is stored; only its announcement is lost
        log.error("outbound: %s; this event was not sent to the channels", exc)
        return
    if not channels:
        return
    dispatcher = Dispatcher(channels, places_of(services))
    try:
        dispatcher.dispatch(topic.name, payload)
    finally:
        dispatcher.close()


def start_redis(
    services: Services, url: str, prefix: str = "metrosight", consumer: str | None = None
) -> Callable[[], None]:
    """Dispatch what a Redis deployment's workers publish: a consumer in group ``outbound`` on ``url``, in a
    background thread (nothing is consumed when no channel is configured). Returns the function that stops it and
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
