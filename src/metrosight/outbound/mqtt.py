"""The MQTT channel (paho-mqtt): every outbound event published to a broker on a documented topic.

Topics under ``outbound.mqtt.topic_prefix`` (``P``; README "MQTT"):

================================  =============================================  ========
topic                             what                                           retained
================================  =============================================  ========
``P/alerts``                      a sighting of a person on a watchlist          no
``P/alerts/updates``              an alert's track ended (final last-seen)       no
``P/alerts/reviews``              an operator confirmed or rejected an alert     no
``P/episodes``                    an alert episode (several sightings)           no
``P/events``                      a behaviour event (no identity)                no
``P/events/updates``              a behaviour event's episode ended              no
``P/alarms``                      an alarm of the alarm workflow                 no
``P/cameras/<camera id>/state``   the camera's newest state                      yes
``P/availability``                ``online`` / ``offline`` (last will)           yes
================================  =============================================  ========

An event type without a row here goes to ``P/<type>``, its updates (schema ``…-update/N``) to ``P/<type>/updates``.
Every payload is the event's JSON envelope (:meth:`~metrosight.outbound.events.OutboundEvent.envelope`: ``id``,
``type``, ``schema`` with its version, ``occurred_at``, ``camera``, ``watchlists``, ``category`` and ``data``, the
bus payload without images).

Delivery: QoS 1 by default (at least once; a subscriber de-duplicates by ``id``). While the broker is unreachable
paho keeps QoS 1 and 2 messages in memory, in order, up to ``queue_limit``, and sends them once it is connected
again (reconnecting with exponential backoff up to ``retry_max_seconds``). The broker publishes ``offline`` on the
availability topic when the connection is lost without a goodbye (the last will); a clean stop publishes it itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import paho.mqtt.client as mqtt

from metrosight.config.channels import MqttConfig
from metrosight.outbound import pollselect
from metrosight.outbound.channel import ChannelError, EventFilter
from metrosight.outbound.events import OutboundEvent

log = logging.getLogger(__name__)

#: event type → topic under the prefix (README "MQTT")
TOPICS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "alert": "alerts",
        "alert_review": "alerts/reviews",
        "episode": "episodes",
        "behaviour": "events",
        "alarm": "alarms",
    }
)
AVAILABILITY = "availability"
ONLINE, OFFLINE = "online", "offline"
SEEN = 10_000  # event ids remembered to publish each once (a redelivered bus message)
CLOSE_WAIT_SECONDS = 5.0  # how long closing waits for queued messages to reach the broker


def problem(cfg: MqttConfig | None) -> str | None:
    """Why the MQTT channel of ``cfg`` cannot be opened by this process (its password cannot be read: the variable
    is unset, the file unreadable), in one line; None when it can (or MQTT is not configured). Hosts check this
    before they start anything."""
    if cfg is None:
        return None
    try:
        cfg.password()
    except ValueError as exc:
        return f"outbound.{exc}"
    return None


def filter_of(cfg: MqttConfig) -> EventFilter:
    """Which events the channel publishes: ``events``, ``watchlists`` and ``camera_groups`` of ``cfg`` (an empty
    list restricts nothing; see :class:`~metrosight.outbound.channel.EventFilter`)."""
    return EventFilter.of(cfg.events, cfg.watchlists, (), cfg.camera_groups)


def topic_for(event: OutboundEvent, prefix: str) -> tuple[str, bool]:
    """The topic ``event`` is published on and whether it is retained (see the module docstring)."""
    if event.type == "camera_state":
        return f"{prefix}/cameras/{event.camera_id or '-'}/state", True
    base = TOPICS.get(event.type, event.type)
    name = event.schema.split("/", 1)[0]
    if name.endswith("-update"):
        base += "/updates"
    return f"{prefix}/{base}", False


def payload_of(event: OutboundEvent) -> bytes:
    """The message body: the event's JSON envelope, UTF-8."""
    return json.dumps(event.envelope(), ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


class MqttChannel:
    """Publishes outbound events to the configured broker (a :class:`~metrosight.outbound.channel.Channel`).

    Args:
        cfg: the ``outbound.mqtt`` section.
        client: a paho client to use (tests); default: one made from ``cfg``.
        announce: publish the availability (``online``, ``offline`` and the last will): a host does; a command that
            only hands over one event (``alert confirm``) does not, so it never marks a running service offline.

    Raises:
        ChannelError: the password cannot be read (``password_env`` unset, ``password_file`` unreadable).
    """

    name = "mqtt"

    def __init__(self, cfg: MqttConfig, client: mqtt.Client | None = None, *, announce: bool = True) -> None:
        self.cfg = cfg
        self.announce = announce
        self._filter = filter_of(cfg)
        self.prefix = cfg.topic_prefix
        self.availability = f"{self.prefix}/{AVAILABILITY}"
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        self._down_logged = False
        self.published = 0
        self.client = client or self._client()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_connect_fail = self._on_connect_fail
        self.client.connect_async(cfg.host, cfg.effective_port, keepalive=cfg.keepalive_seconds)
        pollselect.install()  # paho's select() refuses descriptors above 1023: a busy process would never publish
        self.client.loop_start()  # connects, and reconnects with backoff, in paho's thread

    @property
    def filter(self) -> EventFilter:
        """``events``, ``watchlists`` and ``camera_groups`` of the configuration (empty: everything)."""
        return self._filter

    def _client(self) -> mqtt.Client:
        cfg = self.cfg
        client_id = cfg.client_id or f"metrosight-{socket.gethostname()}-{os.getpid()}"
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        if cfg.username is not None:
            try:
                password = cfg.password()
            except ValueError as exc:
                raise ChannelError(str(exc)) from None
            client.username_pw_set(cfg.username, password)
        if cfg.tls is not None:
            client.tls_set_context(cfg.tls.context())
        if self.announce:
            client.will_set(self.availability, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=max(1, round(cfg.retry_max_seconds)))
        client.max_queued_messages_set(cfg.queue_limit)
        return client

    # -- paho's callbacks (its network thread) -------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        if getattr(reason, "is_failure", False):
            self._log_down(f"the broker refused the connection: {reason}")
            return
        if self._down_logged:
            log.warning("mqtt: connected to %s:%d again", self.cfg.host, self.cfg.effective_port)
        self._down_logged = False
        if self.announce:
            client.publish(self.availability, ONLINE, qos=1, retain=True)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        if getattr(reason, "is_failure", False) or reason != 0:
            self._log_down(f"disconnected: {reason}")

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        self._log_down("cannot connect")

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _r: Any = None, _p: Any = None) -> None:
        with self._lock:
            self._pending.discard(mid)

    def _log_down(self, why: str) -> None:
        if not self._down_logged:
            self._down_logged = True
            log.warning(
                "mqtt: %s:%d: %s; reconnecting with backoff, QoS>0 messages are held (up to %d)",
                self.cfg.host,
                self.cfg.effective_port,
                why,
                self.cfg.queue_limit,
            )

    # -- the channel -----------------------------------------------------------------------------------------
    def offer(self, event: OutboundEvent) -> None:
        """Publish ``event`` (once per ``event_id``) with the configured QoS.

        Raises:
            ChannelError: paho's queue is full (the broker has been unreachable for long), or QoS 0 while not
                connected (the dispatcher holds the event and offers it again).
        """
        with self._lock:
            if event.event_id in self._seen:
                return
        topic, retain = topic_for(event, self.prefix)
        info = self.client.publish(topic, payload_of(event), qos=self.cfg.qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            raise ChannelError(f"mqtt: {self.cfg.queue_limit} messages already wait for the broker")
        if info.rc != mqtt.MQTT_ERR_SUCCESS and not (info.rc == mqtt.MQTT_ERR_NO_CONN and self.cfg.qos > 0):
            raise ChannelError(f"mqtt: {mqtt.error_string(info.rc)}")
        with self._lock:
            if self.cfg.qos > 0:
                self._pending.add(info.mid)
            self._seen[event.event_id] = None
            while len(self._seen) > SEEN:
                self._seen.popitem(last=False)
            self.published += 1

    @property
    def waiting(self) -> int:
        """Messages handed to paho and not yet acknowledged by the broker."""
        with self._lock:
            return len(self._pending)

    def close(self, wait_seconds: float = CLOSE_WAIT_SECONDS) -> None:
        """Wait up to ``wait_seconds`` for queued messages to reach the broker, publish ``offline``, disconnect."""
        end = time.monotonic() + wait_seconds
        while self.waiting and time.monotonic() < end:
            time.sleep(0.05)
        if self.waiting:
            log.error("mqtt: %d message(s) could not be delivered to %s before closing", self.waiting, self.cfg.host)
        if self.announce and self.client.is_connected():
            info = self.client.publish(self.availability, OFFLINE, qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(max(0.5, end - time.monotonic()))
        self.client.disconnect()
        self.client.loop_stop()
