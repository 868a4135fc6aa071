"""Forward the audit log to a syslog collector (a SIEM): every entry, in sequence order, as one RFC 5424 record
(:mod:`metrosight.outbound.rfc5424`) octet-counted over TCP (RFC 6587) or TLS (RFC 5425).

Durable and in order: the forwarder reads the entries after its cursor (the last forwarded audit sequence number,
kept in the database: :meth:`metrosight.store.auditing.AuditRepository.forwarded`), sends them, checks the
connection is still open, and only then moves the cursor (compare-and-set). A collector that is down is retried
with exponential backoff and jitter (tenacity); nothing is skipped meanwhile, and a restart resumes after the
cursor. Security events (failed and refused sign-ins, refused permissions) are audit entries too; they are sent
with severity *warning* and ``class="security"``.

Plain TCP syslog has no acknowledgement: bytes the kernel accepted for a collector that then dies before reading
them are lost to it unless the loss shows on the connection. The forwarder checks for a closed or reset connection
before and after each batch and re-sends from the cursor after a reconnect; a collector may therefore, rarely, see
an entry twice, which its ``seq`` identifies.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential, wait_random

from metrosight.audit.log import ChainEntry
from metrosight.config.channels import SyslogConfig, TlsConfig
from metrosight.outbound.rfc5424 import Record, SDElement, Severity, format_record, frame, params

if TYPE_CHECKING:
    from metrosight.config.model import Settings
    from metrosight.store.repo import Store

log = logging.getLogger(__name__)

CHANNEL = "syslog"
#: actions that record a refused credential or permission (any action ending so): sent as security events
SECURITY_SUFFIXES = ("_failed", "_refused", ".denied", ".locked")
#: actions that record a read (an access to data): sent with severity info
READ_SUFFIXES = (".read", ".list", ".export_crop")
STORE_RETRY_SECONDS = 2.0  # the wait after the store could not be read or written
#: how long a host that stops keeps forwarding what is still due (a collector that is down is retried meanwhile)
FLUSH_SECONDS = 10.0


class Lock(Protocol):
    """A lock one process holds at a time (:class:`metrosight.store.exclusive.ExclusiveLock`)."""

    def acquire(self) -> bool: ...

    def release(self) -> None: ...


class AuditFeed(Protocol):
    """The audit log as the forwarder reads it (:class:`metrosight.store.auditing.AuditRepository`)."""

    def forwarding_lock(self, channel: str) -> Lock: ...

    def after(self, seq: int, limit: int) -> Sequence[ChainEntry]: ...

    def forwarded(self, channel: str) -> int | None: ...

    def mark_forwarded(self, channel: str, before: int | None, seq: int) -> bool: ...


def is_security(action: str) -> bool:
    """A failed or refused sign-in, a refused permission, a lockout."""
    return action.endswith(SECURITY_SUFFIXES)


def severity_of(action: str) -> Severity:
    """warning: security events; info: reads; notice: every other audited act."""
    if is_security(action):
        return Severity.WARNING
    if action.endswith(READ_SUFFIXES):
        return Severity.INFO
    return Severity.NOTICE


def audit_record(entry: ChainEntry, cfg: SyslogConfig, hostname: str, procid: str) -> Record:
    """The syslog record of one audit entry.

    MSGID is the action (e.g. ``entry.approve``); the structured data ``[audit@PEN seq hash prev actor action
    target class]`` carries the chain's sequence number and keyed hash (and the previous entry's hash, so a
    collector can check the order); MSG is the entry as one JSON object (``seq, at, actor, action, target,
    details``).
    """
    try:
        details: object = json.loads(entry.details)
    except ValueError:
        details = entry.details
    sd = SDElement(
        f"audit@{cfg.enterprise_id}",
        params(
            {
                "seq": entry.seq,
                "hash": entry.hash,
                "prev": entry.prev_hash,
                "actor": entry.actor,
                "action": entry.action,
                "target": entry.target,
                "class": "security" if is_security(entry.action) else "audit",
            }
        ),
    )
    body = {
        "seq": entry.seq,
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "details": details,
    }
    return Record(
        facility=cfg.facility_code(),
        severity=severity_of(entry.action),
        timestamp=_when(entry.at),
        hostname=cfg.hostname or hostname,
        app_name=cfg.app_name,
        procid=procid,
        msgid=entry.action,
        structured_data=(sd,),
        msg=json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True),
    )


def _when(at: str) -> datetime | None:
    try:
        ts = datetime.fromisoformat(at)
    except ValueError:
        return None
    return ts if ts.tzinfo is not None else None


class StreamTransport:
    """One TCP (or TLS) connection to the collector.

    Args:
        host, port: the collector.
        tls: TLS settings (None: plain TCP).
        timeout: seconds for connecting and for each send.
    """

    def __init__(self, host: str, port: int, tls: TlsConfig | None, timeout: float) -> None:
        self.host, self.port, self.tls, self.timeout = host, port, tls, timeout
        self._ctx = tls.context() if tls is not None else None
        self._sock: socket.socket | None = None

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self) -> None:
        """Open the connection (and the TLS session). Raises OSError (ssl.SSLError included)."""
        self.close()
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)  # an idle connection dropped on the way shows
        try:
            if self._ctx is not None and self.tls is not None:
                sock = self._ctx.wrap_socket(sock, server_hostname=self.tls.server_name or self.host)
        except BaseException:
            sock.close()
            raise
        self._sock = sock

    def send(self, data: bytes) -> None:
        """Send all of ``data``. Raises OSError (the connection is then closed)."""
        if self._sock is None:
            raise ConnectionError("not connected")
        try:
            self._sock.sendall(data)
        except OSError:
            self.close()
            raise

    def check(self) -> None:
        """Raise ConnectionError when the collector closed or reset the connection (a collector never sends: whatever
        it did send is read and dropped)."""
        sock = self._sock
        if sock is None:
            raise ConnectionError("not connected")
        try:
            # poll, not select: select() refuses a descriptor above 1023, which a busy service's socket can be
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            while poller.poll(0):
                sock.settimeout(0)
                try:
                    data = sock.recv(4096)
                except (ssl.SSLWantReadError, BlockingIOError):
                    return
                finally:
                    sock.settimeout(self.timeout)
                if not data:
                    raise ConnectionError("the collector closed the connection")
        except (OSError, ValueError) as exc:
            self.close()
            raise ConnectionError(f"the connection to the collector broke: {exc}") from None

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


class Transport(Protocol):
    """A stream to the collector (:class:`StreamTransport`)."""

    @property
    def connected(self) -> bool: ...

    def connect(self) -> None: ...

    def send(self, data: bytes) -> None: ...

    def check(self) -> None: ...

    def close(self) -> None: ...


class SyslogForwarder:
    """Forwards the audit log to the collector from a background thread (see the module docstring).

    Args:
        cfg: the ``outbound.syslog`` section.
        audit: the store's audit log (entries after a sequence number, the durable cursor).
        transport: the stream (default: TCP or TLS to ``cfg.host``).
        hostname, procid: RFC 5424 HOSTNAME (when ``cfg.hostname`` is unset) and PROCID (default: this machine's
            host name, this process's id).
    """

    def __init__(
        self,
        cfg: SyslogConfig,
        audit: AuditFeed,
        transport: Transport | None = None,
        hostname: str | None = None,
        procid: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.audit = audit
        self.transport: Transport = transport or StreamTransport(
            cfg.host, cfg.effective_port, cfg.tls, cfg.connect_timeout_seconds
        )
        self.hostname = hostname or socket.gethostname()
        self.procid = procid or str(os.getpid())
        self.sent = 0  # entries forwarded by this process
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None
        self._down_since: float | None = None
        self._lock = audit.forwarding_lock(CHANNEL)
        self._standby_logged = False

    # -- one pass ---------------------------------------------------------------------------------------------
    def pump(self) -> int:
        """Forward one batch after the cursor; returns how many entries (0: caught up).

        Raises:
            OSError: the collector cannot be reached or the connection broke (the cursor has not moved past what
                was not confirmed).
        """
        before = self.audit.forwarded(CHANNEL)
        entries = self.audit.after(before or 0, self.cfg.batch)
        if not entries:
            return 0
        expected = (before or 0) + 1
        if entries[0].seq != expected:  # entries purged for retention before they were forwarded
            log.warning(
                "syslog: audit entries %d–%d are gone (retention purge): not forwarded", expected, entries[0].seq - 1
            )
        run = [entries[0]]
        for e in entries[1:]:
            if e.seq != run[-1].seq + 1:
                break
            run.append(e)
        data = b"".join(frame(format_record(audit_record(e, self.cfg, self.hostname, self.procid))) for e in run)
        if not self.transport.connected:
            self.transport.connect()
        self.transport.check()  # a collector that closed since the last batch: reconnect before sending
        self.transport.send(data)
        self.transport.check()
        if not self.audit.mark_forwarded(CHANNEL, before, run[-1].seq):
            log.warning("syslog: another forwarder moved the cursor past %s; re-reading", before)
            return 0
        self.sent += len(run)
        return len(run)

    # -- the background thread ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start forwarding in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="metrosight-syslog", daemon=True)
            self._thread.start()

    def notify(self) -> None:
        """Look for new entries now rather than at the next poll."""
        self._wake.set()

    def stop(self, flush_seconds: float = 5.0) -> None:
        """Forward what is still due for up to ``flush_seconds`` (a collector that is down is retried meanwhile),
        then stop. What is left is forwarded by the next start (the cursor is durable)."""
        self._deadline = time.monotonic() + flush_seconds
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(flush_seconds + self.cfg.connect_timeout_seconds * 2 + 5)
            self._thread = None
        self.transport.close()
        self._lock.release()

    def _out_of_time(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _sleep(self, seconds: float) -> None:
        if self._deadline is not None:
            seconds = max(0.0, min(seconds, self._deadline - time.monotonic()))
        self._wake.wait(seconds)
        self._wake.clear()

    def _loop(self) -> None:
        retry = Retrying(
            wait=wait_exponential(multiplier=0.2, max=self.cfg.retry_max_seconds) + wait_random(0, 0.5),
            retry=retry_if_exception_type(OSError),
            stop=lambda _state: self._out_of_time(),
            sleep=self._sleep,
            before_sleep=self._failed,
            reraise=True,
        )
        while not self._out_of_time():
            if not self._lead():
                if self._stopping.is_set():
                    break  # another process forwards: nothing of ours to flush
                self._sleep(max(1.0, self.cfg.poll_seconds * 4))
                continue
            try:
                n = retry(self.pump)
            except OSError:
                break  # out of time while the collector is down
            except Exception as exc:  # the store is busy or unreachable: say so, try again shortly
                log.warning("syslog: cannot read or mark the audit log: %s", str(exc).splitlines()[0][:200])
                if self._stopping.is_set():
                    break
                self._sleep(min(STORE_RETRY_SECONDS, self.cfg.retry_max_seconds))
                continue
            if self._down_since is not None:
                log.warning("syslog: %s:%d reachable again", self.cfg.host, self.cfg.effective_port)
                self._down_since = None
            if n == 0:
                if self._stopping.is_set():
                    break  # caught up
                self._sleep(self.cfg.poll_seconds)

    def _lead(self) -> bool:
        """Whether this process forwards (holds the lock); logs once when another one does."""
        try:
            held = self._lock.acquire()
        except Exception as exc:  # the database is unreachable: try again later
            log.warning("syslog: cannot take the forwarding lock: %s", exc)
            return False
        if not held and not self._standby_logged:
            log.info("syslog: another metrosight process forwards the audit log; standing by")
            self._standby_logged = True
        return held

    def _failed(self, state: RetryCallState) -> None:
        self.transport.close()
        exc = state.outcome.exception() if state.outcome is not None else None
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning(
                "syslog: cannot forward to %s:%d (%s); retrying with backoff, nothing is skipped",
                self.cfg.host,
                self.cfg.effective_port,
                exc,
            )


class SyslogHost(Protocol):
    """What starting the forwarder needs of the installation (:class:`metrosight.services.suite.Services`)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> Store: ...


def start_syslog(services: SyslogHost) -> Callable[[], None]:
    """Start forwarding the audit log when ``outbound.syslog`` is configured (the long-running hosts: ``run``,
    ``node``, ``serve``). Returns ``stop()``: forwards what is still due for up to :data:`FLUSH_SECONDS`, then
    stops; what is left goes with the next start (a no-op when syslog is not configured)."""
    cfg = services.settings.outbound.syslog
    if cfg is None:
        return lambda: None
    fwd = SyslogForwarder(cfg, services.store.audit)
    fwd.start()
    log.info("syslog: forwarding the audit log to %s:%d", cfg.host, cfg.effective_port)
    return lambda: fwd.stop(FLUSH_SECONDS)
