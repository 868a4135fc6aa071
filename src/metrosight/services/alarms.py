"""The alarm clock: escalates alarms that were not acknowledged in time and publishes every alarm step on the bus.

Every ``metrosight serve`` process runs one (a background thread started with the service). In a cluster several
service processes share one database: each runs its clock, and the store makes each escalation and each
publication happen once whichever process gets there first (:mod:`metrosight.store.alarms`). Without a running
service nothing escalates; steps taken on the command line are published by the next service that runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from metrosight.bus.payloads import AlarmV1
from metrosight.store.alarms import BATCH
from metrosight.store.db import StoreError

log = logging.getLogger(__name__)

READY_WAIT_SECONDS = 60.0


class AlarmSteps(Protocol):
    """What the clock needs of the store (``store.alarms``)."""

    def escalate_due(self, now: float | None = None) -> list[int]: ...

    def publish_pending(self, publish: Callable[[AlarmV1], object], limit: int = BATCH) -> int: ...


class AlarmClock:
    """Escalation and publication, every ``every`` seconds (at once after :meth:`wake`).

    Args:
        alarms: the store's alarms.
        publish: where alarm steps go (``bus.publish(ALARMS, …)``); None: steps are left for a clock with a bus.
        every: seconds between ticks.
        on_change: called after a tick that escalated or published something (e.g. to wake the live feeds).
        ready: set once whoever delivers the bus's alarm messages onward is listening (the supervisor's outbound
            dispatcher); the clock's first tick waits for it (up to :data:`READY_WAIT_SECONDS`).
    """

    def __init__(
        self,
        alarms: AlarmSteps,
        publish: Callable[[AlarmV1], object] | None,
        every: float = 1.0,
        on_change: Callable[[], object] | None = None,
        ready: threading.Event | None = None,
    ) -> None:
        self.ready = ready
        self.alarms = alarms
        self.publish = publish
        self.every = every
        self.on_change = on_change
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> tuple[int, int]:
        """Escalate what is due and publish what is pending, now. Returns ``(escalated, published)``.

        Raises:
            StoreError, SQLAlchemyError: the database is away; whatever ``publish`` raised (the steps not
            published stay pending): the caller tries again at the next tick.
        """
        escalated = 0
        while True:
            done = self.alarms.escalate_due()
            escalated += len(done)
            if len(done) < BATCH:
                break
        published = 0
        if self.publish is not None:
            while (n := self.alarms.publish_pending(self.publish)) > 0:
                published += n
        if (escalated or published) and self.on_change is not None:
            self.on_change()
        return escalated, published

    def wake(self) -> None:
        """Tick now (after a step taken through the service): its message goes out without waiting."""
        self._wake.set()

    def start(self) -> Callable[[], None]:
        """Run the clock in a daemon thread; the callable returned stops it (after a last tick)."""

        def loop() -> None:
            if self.ready is not None and not self.ready.wait(READY_WAIT_SECONDS):
                log.warning("alarm clock: the outbound dispatcher is not attached yet; publishing anyway")
            while not self._stop.is_set():
                try:
                    self.tick()
                except (StoreError, SQLAlchemyError, OSError) as exc:
                    log.warning("alarm clock: %s; trying again", str(exc).splitlines()[0][:200])
                except Exception:  # a bus or subscriber failed: the steps stay pending and go out at the next tick
                    log.exception("alarm clock: publishing failed; trying again")
                self._wake.wait(self.every)
                self._wake.clear()

        self._thread = threading.Thread(target=loop, name="metrosight-alarm-clock", daemon=True)
        self._thread.start()
        return self.stop

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10.0)
