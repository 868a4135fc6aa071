"""Sign-in protection: the login rate limiter, the audit of failed sign-ins, the session signing key, ended
sessions.

The rate limiter is a sliding window kept **in memory** of the serving process (it resets when the service restarts,
and several API processes would each keep their own): at most ``max_failures`` failed sign-ins per (user, client
address) and ``max_per_ip`` attempts per client address in any ``window`` seconds, and at most
``max_code_failures`` wrong second-factor codes per user from all addresses together (the code step comes after a
right password: only someone who has it can lock it, and a six-digit code must not be guessed from many addresses).

Failed and refused sign-ins, and requests refused with 403, are audited as bursts (:class:`SignInAudit`): one audit
row per (user, address) and window with the count, so a password-guessing client (or one probing routes it may not
use) cannot flood the audit log with a row per attempt.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

SESSION_KEY_FILE = "session.key"


@dataclass(slots=True)
class LoginLimiter:
    """Sliding-window limits on sign-in attempts.

    Args:
        max_failures: failed attempts allowed per (user, address) in the window.
        max_per_ip: attempts (failed or not) allowed per address in the window.
        window: the window, seconds.
        max_code_failures: wrong second-factor codes allowed per user, from any address, in the window.
    """

    max_failures: int = 5
    max_per_ip: int = 30
    window: float = 300.0
    max_code_failures: int = 10
    _failures: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    _code_failures: dict[str, deque[float]] = field(default_factory=dict)
    _attempts: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: keys held (all tables together) above which idle keys are forgotten; doubles with what stays in use
    _prune_at: int = 10_000

    def _trim(self, q: deque[float], now: float) -> None:
        while q and now - q[0] >= self.window:
            q.popleft()

    def _prune(self, now: float) -> None:
        """Forget every key whose window has passed, once the tables hold more than ``_prune_at`` keys (callers
        hold the lock). A client cycling through addresses or user names therefore cannot grow memory without bound:
        the tables stay within about twice the keys active in one window, at amortised O(1) a call."""
        tables: tuple[dict[tuple[str, str], deque[float]] | dict[str, deque[float]], ...] = (
            self._failures,
            self._attempts,
            self._code_failures,
        )
        if sum(len(t) for t in tables) <= self._prune_at:
            return
        for table in tables:
            for key in list(table):
                q = table[key]  # type: ignore[index]
                self._trim(q, now)
                if not q:
                    del table[key]  # type: ignore[arg-type]
        self._prune_at = max(10_000, 2 * sum(len(t) for t in tables))

    def retry_after(self, user: str, ip: str, now: float | None = None) -> float:
        """Seconds until an attempt for ``user`` from ``ip`` is allowed (0: now). Counts this attempt when
        allowed."""
        now = time.monotonic() if now is None else now
        with self._lock:
            fails = self._failures.setdefault((user, ip), deque())
            tries = self._attempts.setdefault(ip, deque())
            self._trim(fails, now)
            self._trim(tries, now)
            wait = 0.0
            if len(fails) >= self.max_failures:
                wait = max(wait, fails[0] + self.window - now)
            if len(tries) >= self.max_per_ip:
                wait = max(wait, tries[0] + self.window - now)
            if wait <= 0:
                tries.append(now)
            self._prune(now)
            return wait

    def failed(self, user: str, ip: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._failures.setdefault((user, ip), deque()).append(now)
            self._prune(now)

    def code_retry_after(self, user: str, now: float | None = None) -> float:
        """Seconds until ``user`` may try a second-factor code again, from any address (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            fails = self._code_failures.get(user)
            if not fails:
                return 0.0
            self._trim(fails, now)
            return fails[0] + self.window - now if len(fails) >= self.max_code_failures else 0.0

    def code_failed(self, user: str, now: float | None = None) -> None:
        """Count a wrong (or reused) second-factor code of ``user``; a right one does not clear the count."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._code_failures.setdefault(user, deque()).append(now)
            self._prune(now)

    def succeeded(self, user: str, ip: str) -> None:
        with self._lock:
            self._failures.pop((user, ip), None)


@dataclass(slots=True)
class _Burst:
    first: float
    last: float
    failed: int = 0
    refused: int = 0
    denied: int = 0
    users: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)


class SignInAudit:
    """Counts failed sign-ins per (user, client address), refused (rate-limited) ones per address, and requests
    refused for want of a permission (403) per (user, address), and hands them out as one audit row per key and
    window (``due``), instead of a row per attempt.

    A window starts at a key's first failure and closes ``window`` seconds later; its row is due then (the caller
    writes due rows periodically and at shutdown). At most ``max_keys`` keys are held: beyond that, new failures
    are counted under the address alone (user ``*``), so memory stays bounded.

    Args:
        window: seconds one audit row covers.
        max_keys: keys held at once.
    """

    def __init__(self, window: float = 60.0, max_keys: int = 10_000) -> None:
        self.window, self.max_keys = window, max_keys
        self._bursts: dict[tuple[str, str, str], _Burst] = {}
        self._lock = threading.Lock()

    def _add(self, kind: str, user: str, ip: str, now: float | None, what: str = "") -> None:
        now = time.monotonic() if now is None else now
        key = (kind, user if kind in ("failed", "denied") else "*", ip)
        with self._lock:
            b = self._bursts.get(key)
            if b is None:
                if len(self._bursts) >= self.max_keys:
                    key = (kind, "*", ip)
                    b = self._bursts.get(key)
                if b is None:
                    b = self._bursts[key] = _Burst(now, now)
            b.last = now
            if kind == "failed":
                b.failed += 1
            elif kind == "denied":
                b.denied += 1
                if what and len(b.requests) < 10 and what not in b.requests:
                    b.requests.append(what)
            else:
                b.refused += 1
            if len(b.users) < 20:
                b.users.add(user)

    def failed(self, user: str, ip: str, now: float | None = None) -> None:
        """A wrong user name or password (or a wrong current password when changing it)."""
        self._add("failed", user, ip, now)

    def refused(self, user: str, ip: str, now: float | None = None) -> None:
        """An attempt refused by the rate limiter (counted per address)."""
        self._add("refused", user, ip, now)

    def denied(self, user: str, ip: str, what: str, now: float | None = None) -> None:
        """A request refused for want of a permission (HTTP 403): ``user`` (``anonymous`` when unknown), ``what``
        the request (``METHOD /path``; the first 10 distinct ones of a window are kept)."""
        self._add("denied", user, ip, now, what)

    def due(self, now: float | None = None, *, all: bool = False) -> list[tuple[str, str, dict[str, object]]]:
        """The closed windows (every window with ``all``), removed: ``(action, target, details)`` per row, where
        action is ``auth.login_failed``, ``auth.login_refused`` or ``auth.denied`` (requests refused with 403),
        target the user name (``*`` for several) and details hold ``ip``, ``count``, ``seconds`` (first to last
        attempt), for refusals ``users``, for denials ``requests``."""
        now = time.monotonic() if now is None else now
        out = []
        with self._lock:
            for key in [k for k, b in self._bursts.items() if all or now - b.first >= self.window]:
                kind, user, ip = key
                b = self._bursts.pop(key)
                details: dict[str, object] = {
                    "ip": ip,
                    "count": b.failed or b.refused or b.denied,
                    "seconds": round(b.last - b.first, 1),
                    "window_seconds": self.window,
                }
                if kind == "denied":
                    details["reason"] = "permission denied"
                    details["requests"] = list(b.requests)
                    out.append(("auth.denied", user, details))
                elif kind == "failed":
                    details["reason"] = "wrong user name or password"
                    if user == "*":
                        details["users"] = sorted(b.users)
                    out.append(("auth.login_failed", user, details))
                else:
                    details["reason"] = "rate limited"
                    details["users"] = sorted(b.users)
                    out.append(("auth.login_refused", "*" if len(b.users) != 1 else next(iter(b.users)), details))
        return out


class EndedSessions:
    """Session ids signed out before their cookie expired (kept until it would have expired). In memory."""

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self._ended: dict[str, float] = {}
        self._lock = threading.Lock()

    def end(self, sid: str) -> None:
        now = time.time()
        with self._lock:
            self._ended = {k: t for k, t in self._ended.items() if now - t < self.max_age}
            self._ended[sid] = now

    def is_ended(self, sid: str) -> bool:
        with self._lock:
            return sid in self._ended


def session_secret(home_root: Path, environ: dict[str, str] | None = None) -> str:
    """The key that signs session cookies: ``METROSIGHT_SESSION_SECRET``, else ``<home>/session.key`` (created
    with mode 0600 on first use). Changing it signs everyone out."""
    env = os.environ if environ is None else environ
    if env.get("METROSIGHT_SESSION_SECRET"):
        return env["METROSIGHT_SESSION_SECRET"]
    path = home_root / SESSION_KEY_FILE
    if not path.exists():
        key = secrets.token_hex(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key
    return path.read_text().strip()
