"""Outbound channels: what metrosight sends to systems operators already watch (webhooks, MQTT, syslog, …).

One seam for all of them:

- :mod:`.events`: :class:`~.events.OutboundEvent`, the one typed value every channel receives, and the pure
  functions that turn each bus payload into it (:func:`~.events.to_outbound`).
- :mod:`.channel`: the :class:`~.channel.Channel` protocol a channel implements and the
  :class:`~.channel.EventFilter` (event types, watchlists, categories, camera groups) evaluated in one place.
- :mod:`.dispatch`: the :class:`~.dispatch.Dispatcher` that subscribes to the bus topics once and offers each
  event to every configured channel whose filter accepts it.
"""
