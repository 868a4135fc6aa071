"""What the single sign-on routes share, one per app (``AppState.extras["sso"]``): the relying party, the key of
the attempt cookie, and the attempts already spent (so a callback cannot be replayed).

:func:`attach` makes it when ``auth.oidc`` is configured (reading the client secret then, so a missing secret
stops ``serve`` at start with one line); :func:`logout_target` is where sign-out sends the browser.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final

from metrosight.api.oidc import OidcClient
from metrosight.api.security import session_secret
from metrosight.api.state import AppState

PENDING_MAX_AGE: Final = 600  # seconds a sign-in attempt may take at the provider
MAX_SPENT: Final = 100_000  # spent attempts remembered at most (each for PENDING_MAX_AGE)


@dataclass(slots=True)
class SsoState:
    """The relying party and its memory of spent attempts (in this process; an attempt's cookie expires with it).

    Attributes:
        client: the relying party.
        cookie_secret: signs the attempt cookie (derived from the session key).
    """

    client: OidcClient
    cookie_secret: str
    _spent: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def spend(self, state: str) -> bool:
        """Mark the attempt ``state`` spent; False when it was spent already (a replayed callback).

        Attempts are forgotten once their cookie has expired, oldest first (they are held in the order spent); past
        :data:`MAX_SPENT` the oldest go early — a flood of attempts cannot lock people out, and a code of a forgotten
        attempt is still refused by the provider, which accepts each code once."""
        now = time.monotonic()
        with self._lock:
            spent = self._spent
            while spent and (now - next(iter(spent.values())) >= PENDING_MAX_AGE or len(spent) >= MAX_SPENT):
                del spent[next(iter(spent))]
            if state in spent:
                return False
            spent[state] = now
            return True


def attach(svc: AppState, client: OidcClient | None = None) -> None:
    """Make the app's :class:`SsoState` when ``auth.oidc`` is configured.

    Args:
        client: the relying party to use (tests); None: one for ``auth.oidc``.

    Raises:
        ValueError: the client secret cannot be had (the message never holds it).
    """
    cfg = svc.services.settings.auth.oidc
    if cfg is None:
        return
    if client is None:
        client = OidcClient(cfg, cfg.secret())
    key = hmac.new(session_secret(svc.services.home.root).encode(), b"metrosight-oidc-login", hashlib.sha256)
    svc.extras["sso"] = SsoState(client, key.hexdigest())


def sso_of(svc: AppState) -> SsoState | None:
    """The app's single sign-on state, None when ``auth.oidc`` is not configured."""
    found: Any = svc.extras.get("sso")
    return found if isinstance(found, SsoState) else None


def logout_target(svc: AppState, session: dict[str, Any]) -> str | None:
    """Where sign-out sends the browser of a session signed in through the provider: its end-session endpoint
    (RP-initiated logout), or None (a password session, or a provider that advertises none)."""
    sso = sso_of(svc)
    if sso is None or session.get("amr", session.get("via")) != "oidc":
        return None
    hint = session.get("idt")
    return sso.client.end_session_url(hint if isinstance(hint, str) else None)
