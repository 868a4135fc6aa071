"""Where alerts and behaviour events are stored: :class:`AlertSink` (crops encrypted, alerts held in memory while
the store cannot be written) and :class:`EventSink` (snapshots, then the event row). Every host (``metrosight run``,
the node supervisor, the store consumer of a scale-out deployment) stores through these."""

from __future__ import annotations

import errno
import inspect
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from metrosight.bus.payloads import AlertUpdateV1, AlertV1, EpisodeV1, EventUpdateV1, EventV1
from metrosight.config.home import media_file
from metrosight.policy.crypto import CryptoError
from metrosight.store.db import StoreError
from metrosight.store.episodes import SightingStored
from metrosight.store.repo import Store

log = logging.getLogger(__name__)

STORAGE_WAIT_SECONDS = 30.0  # how long a run that ends waits for space to store what it still holds
RETRY_SECONDS = 1.0  # between attempts to store held alerts


def storage_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or quota) is full: ENOSPC/EDQUOT, or SQLite's "database or disk is full"."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    return "disk is full" in text or "no space left" in text or "disk quota" in text


def _write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a temporary file in its folder. Raises OSError (nothing left behind)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise


def _positional_arity(fn: Callable[..., Any]) -> int:
    """How many positional parameters ``fn`` takes (0 when it cannot be told)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 0
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


class AlertSink:
    """Stores alert sightings (crop file first, then the row: a new alert or a sighting appended to the person's
    open episode, see :mod:`metrosight.store.episodes`) and passes them on to ``on_alert`` — called as
    ``on_alert(alert, crop_path, stored)`` when it takes three arguments (``stored``: the
    :class:`~metrosight.store.episodes.SightingStored`, None while held), else ``on_alert(alert, crop_path)``.

    When they cannot be stored (a full disk, a database that is down) the alerts — crops included — and their
    updates are held in memory, in order, and stored as soon as a write succeeds again (:meth:`retry`, called as
    frames go by, and :meth:`drain` at the end of a run). ``on_alert`` is called at once either way (``crop`` is
    None while the alert is held), so an alert is printed even when it cannot be stored yet. ``failure`` holds the
    reason while something is held.

    ``on_episode`` (the host's ``bus.publish(EPISODES, …)``) is called with the
    :class:`~metrosight.bus.payloads.EpisodeV1` of each sighting once it is stored (not for a redelivered one).
    """

    def __init__(
        self,
        store: Store,
        media: Path,
        on_alert: Callable[..., None] | None,
        on_episode: Callable[[EpisodeV1], object] | None = None,
    ) -> None:
        self.store = store
        self.media = media
        self.on_alert_cb = on_alert
        self.on_episode = on_episode
        self.held: list[AlertV1] = []
        self.held_updates: dict[str, float] = {}
        self.failure: str | None = None
        self._next_try = 0.0
        self.alert_ids: set[int] = set()  # the alerts (episodes) this sink's sightings went to
        self._with_episode = on_alert is not None and _positional_arity(on_alert) >= 3

    def _write_crop(self, alert: AlertV1) -> str | None:
        if not alert.crop_jpeg:
            return None
        target = media_file(self.media, "alerts", alert.camera_id, alert.event_id, ".jpg.enc")  # never a raw id
        # encrypted at rest, key per watchlist
        sealed = self.store.watchlists.encrypt_for(alert.watchlist, alert.crop_jpeg)
        _write_atomically(target, sealed)
        return str(target)

    def _store(self, alert: AlertV1) -> tuple[str | None, SightingStored]:
        """Crop, then the sighting (a new alert or appended to the person's episode). Returns ``(crop path,
        SightingStored)``. Raises OSError/StoreError/SQLAlchemyError when storage fails (the caller holds it)."""
        try:
            crop_path = self._write_crop(alert)
        except CryptoError as exc:
            log.error("cannot encrypt the best-shot crop of %s (%s); storing the alert without it", alert.event_id, exc)
            crop_path = None
        except OSError as exc:
            if storage_full(exc):
                raise
            log.error("cannot write best-shot crop for %s (%s); storing the alert without it", alert.event_id, exc)
            crop_path = None
        stored = self.store.alerts.store_sighting(alert, crop_path)
        if stored.new and self.on_episode is not None:
            try:  # the sighting is stored: a channel that cannot take its episode event says so, nothing more
                self.on_episode(
                    EpisodeV1.of_sighting(alert, stored.alert_id, stored.opened, stored.sightings, stored.status)
                )
            except Exception:
                log.exception("the episode event of %s could not be published", alert.event_id)
        self.alert_ids.add(stored.alert_id)
        return crop_path, stored

    def retry(self, force: bool = False) -> bool:
        """Store what is held, oldest first (at most every :data:`RETRY_SECONDS` unless ``force``). Returns
        whether nothing is held any more."""
        if not self.held and not self.held_updates:
            return True
        if not force and time.monotonic() < self._next_try:
            return False
        try:
            while self.held:
                self._store(self.held[0])
                self.held.pop(0)
            while self.held_updates:
                event_id, last_seen = next(iter(self.held_updates.items()))
                self.store.alerts.extend(event_id, last_seen)
                del self.held_updates[event_id]
        except (OSError, StoreError, SQLAlchemyError) as exc:
            self._held_because(exc)
            return False
        if self.failure is not None:
            log.warning("storage is back: the held alerts are stored")
        self.failure = None
        return True

    def _held_because(self, exc: BaseException) -> None:
        self._next_try = time.monotonic() + RETRY_SECONDS
        reason = "the disk is full" if storage_full(exc) else f"the store cannot be written ({exc.__class__.__name__})"
        if self.failure is None:
            log.error(
                "%s: %d alert(s) are held in memory and will be stored when it can be written again",
                reason,
                len(self.held),
            )
        self.failure = reason

    def drain(self, wait_seconds: float = STORAGE_WAIT_SECONDS) -> bool:
        """At the end of a run: keep trying to store what is held for up to ``wait_seconds``. Returns whether
        everything is stored."""
        deadline = time.monotonic() + wait_seconds
        while not self.retry(force=True):
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(RETRY_SECONDS, max(0.0, deadline - time.monotonic())))
        return True

    def on_alert(self, alert: AlertV1) -> SightingStored | None:
        """Store one sighting (or hold it); returns its :class:`~metrosight.store.episodes.SightingStored`, or None
        while it is held."""
        crop_path: str | None = None
        stored = None
        if self.held or self.held_updates:
            self.held.append(alert)  # keep the order: this one is stored after the ones held before it
            self.retry()
        else:
            try:
                crop_path, stored = self._store(alert)
            except (OSError, StoreError, SQLAlchemyError) as exc:
                self.held.append(alert)
                self._held_because(exc)
        if self.on_alert_cb is not None:
            if self._with_episode:
                self.on_alert_cb(alert, crop_path, stored)
            else:
                self.on_alert_cb(alert, crop_path)
        return stored

    def on_update(self, update: AlertUpdateV1) -> None:
        """Extend a stored alert's last sighting (or hold the update, in order, while alerts are held)."""
        if self.held or self.held_updates:
            self.held_updates[update.event_id] = max(update.last_seen, self.held_updates.get(update.event_id, 0.0))
            self.retry()
            return
        try:
            self.store.alerts.extend(update.event_id, update.last_seen)
        except (StoreError, SQLAlchemyError) as exc:
            self.held_updates[update.event_id] = update.last_seen
            self._held_because(exc)


class EventSink:
    """Stores behaviour events (snapshot file first, then the row) and passes them on to ``on_event``.

    Args:
        store: the repositories (``save_event`` / ``end_event``).
        media: the media folder; snapshots go to ``media/events/cam-<hash>/`` (see
            :func:`metrosight.config.home.media_file`).
        on_event: called with each stored event and its snapshot path.
    """

    def __init__(
        self, store: Store, media: Path, on_event: Callable[[EventV1, str | None], None] | None = None
    ) -> None:
        self.store = store
        self.media = media
        self.on_event_cb = on_event

    def write_snapshot(self, ev: EventV1) -> str | None:
        """Write the event's redacted snapshot (if it has one) under ``media/events``; its path, None without one.
        Raises OSError (nothing left behind)."""
        if not ev.snapshot_jpeg:
            return None
        target = media_file(Path(str(self.media)), "events", ev.camera_id, ev.event_id, ".jpg")  # never a raw id
        _write_atomically(target, ev.snapshot_jpeg)
        return str(target)

    def on_event(self, ev: EventV1) -> None:
        """Store one event (without its snapshot when that cannot be written)."""
        try:
            path = self.write_snapshot(ev)
        except OSError as exc:
            log.error("cannot write the snapshot of event %s (%s); storing the event without it", ev.event_id, exc)
            path = None
        self.store.events.save(
            ev.event_id, ev.camera_id, ev.kind, ev.start_ts, ev.end_ts, ev.track_id, dict(ev.data), path, ev.run_id
        )
        if self.on_event_cb is not None:
            self.on_event_cb(ev, path)

    def on_update(self, upd: EventUpdateV1) -> None:
        """Record an event's end (and its final data)."""
        self.store.events.end(upd.event_id, upd.end_ts, dict(upd.data))
