"""FastAPI dependencies: the installation, the signed-in user, role checks.

A request is authenticated by an API token (``Authorization: Bearer mst_…``, for machines) or by the signed
session cookie of the web UI. A cookie-authenticated request that changes something must also carry the session's
``X-CSRF-Token`` header (the UI's scripts send it), on top of the cookie's ``SameSite=Strict``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from fastapi import Depends, HTTPException, Path, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from metrosight.api.state import AppState
from metrosight.policy.rules import Actor
from metrosight.policy.totp import enrol_restriction
from metrosight.services.suite import Services
from metrosight.store.accounts import Accounts
from metrosight.store.errors import NotFound
from metrosight.store.repo import Store

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_COOKIE = "metrosight_session"

# Documented in the OpenAPI spec; the checks themselves are in :func:`current_user`.
bearer_scheme = HTTPBearer(auto_error=False, description="API token: `Authorization: Bearer mst_…`")
cookie_scheme = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="web UI session (signed cookie)")


def services(request: Request) -> AppState:
    """What the routes share (:class:`~metrosight.api.state.AppState`)."""
    return request.app.state.services


def get_services(request: Request) -> Services:
    return services(request).services


def get_store(request: Request) -> Store:
    return services(request).services.store


def get_accounts(request: Request) -> Accounts:
    return services(request).accounts


def password_version(password_hash: str | None) -> str:
    """A short fingerprint of the password hash stored in the session: a password change ends old sessions."""
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling and how: ``via`` is ``token`` or ``session``. ``restricted``: why this (password-only)
    session may do nothing but enrol a second factor (:func:`metrosight.policy.totp.enrol_restriction`), else
    None."""

    actor: Actor
    via: Literal["session", "token"]
    restricted: str | None = None


class NotSignedIn(HTTPException):
    def __init__(self, detail: str = "sign in first: a session cookie or an API token is required") -> None:
        super().__init__(401, detail, headers={"WWW-Authenticate": "Bearer"})


def principal_of(
    request: Request, bearer: HTTPAuthorizationCredentials | None, form_csrf: str | None = None
) -> Principal:
    """Who calls: the API token's user when ``bearer`` holds one, else the signed-in session's user.

    ``form_csrf``: the CSRF token a page's form posted (its hidden ``csrf`` field), checked instead of the
    X-CSRF-Token header.

    Raises:
        NotSignedIn: an invalid, revoked or expired token, or no valid session.
        HTTPException: 403 for a change made with the session cookie without its CSRF token.
    """
    svc = services(request)
    if bearer is not None:
        actor = svc.accounts.token_actor(bearer.credentials)
        if actor is None:
            raise NotSignedIn("invalid, revoked or expired API token")
        request.state.user = actor.name  # who a refusal (403) of this request is audited against
        return Principal(actor, "token")
    sess: dict[str, Any] = request.session
    name, sid = sess.get("user"), sess.get("sid")
    if not name or not sid or svc.ended.is_ended(sid):
        raise NotSignedIn()
    actor, pw_hash = svc.accounts.session_user(name)
    request.state.user = name  # who a refusal (403) of this request is audited against
    if actor is None or not hmac.compare_digest(password_version(pw_hash), str(sess.get("pwv", ""))):
        request.session.clear()
        raise NotSignedIn("your session ended (account changed); sign in again")
    # how the session signed in: a password (alone or with a code), or single sign-on (``via``: oidc), which the
    # second factor of local accounts leaves alone; a password session from before the second factor has neither
    amr = str(sess.get("amr") or sess.get("via") or "pwd")
    if amr.startswith("pwd") and not svc.services.settings.auth.password_allowed(actor.name):
        request.session.clear()  # local accounts were disabled (auth.local_accounts: false) since it signed in
        raise NotSignedIn("password sign-in is disabled here (auth.local_accounts: false); use single sign-on")
    if amr == "pwd+totp" and not _same_factor(svc, actor.name, sess.get("tfa")):
        request.session.clear()
        raise NotSignedIn("your session ended (your second factor was reset); sign in again")
    if request.method not in SAFE_METHODS:
        sent = form_csrf if form_csrf is not None else request.headers.get("x-csrf-token", "")
        if not hmac.compare_digest(sent, str(sess.get("csrf", ""))):
            raise HTTPException(403, "missing or wrong X-CSRF-Token header for a cookie-authenticated change")
    return Principal(actor, "session", enrol_restriction(actor, amr, svc.services.settings.totp.required_roles))


def _same_factor(svc: AppState, name: str, mark: object) -> bool:
    """Whether ``name`` still has the second factor a session signed in with (``mark``: its
    :meth:`~metrosight.store.second_factor.SecondFactors.mark`; a session from before marks were kept: any
    confirmed factor)."""
    now = svc.services.store.second_factor.mark(name)
    return now is not None and (mark is None or mark == now)


def signed_in_actor(request: Request, roles: tuple[str, ...]) -> Actor | None:
    """The caller of a long-lived request (the live feed) as they are now — roles and scopes read again — while
    their credentials still hold one of ``roles``; None once the token is revoked or expired, the session ended,
    the password changed or was reset, the user disabled or their role withdrawn. The same checks as at the start
    of a request."""
    auth = request.headers.get("authorization", "")
    scheme, _, cred = auth.partition(" ")
    bearer = (
        HTTPAuthorizationCredentials(scheme=scheme, credentials=cred.strip()) if scheme.lower() == "bearer" else None
    )
    try:
        principal = principal_of(request, bearer)
    except HTTPException:
        return None
    actor = principal.actor
    return actor if principal.restricted is None and actor.has(*roles) else None


def still_signed_in(request: Request, roles: tuple[str, ...]) -> bool:
    """Whether :func:`signed_in_actor` finds the caller still signed in with one of ``roles``."""
    return signed_in_actor(request, roles) is not None


def current_principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    _cookie: Annotated[str | None, Depends(cookie_scheme)],
) -> Principal:
    """The caller; 401 when neither a valid token nor a valid session is given."""
    return principal_of(request, bearer)


def current_user(principal: Annotated[Principal, Depends(current_principal)]) -> Actor:
    """The caller; 403 for a session that must enrol a second factor first (only the enrolment routes, sign-out
    and ``/api/me`` take :func:`current_principal` directly)."""
    if principal.restricted:
        raise HTTPException(403, principal.restricted)
    return principal.actor


def requires(*roles: str) -> Callable[..., Actor]:
    """A dependency that yields the caller when they hold one of ``roles`` (403 otherwise, 401 when not signed
    in). The store applies its own, finer rules on top (e.g. no self-approval)."""

    def check(actor: Annotated[Actor, Depends(current_user)]) -> Actor:
        if actor.must_set_password:
            raise HTTPException(403, actor.must_set_password)
        if not actor.has(*roles):
            raise HTTPException(
                403,
                f"{actor.name} needs the {' or '.join(roles)} role (has: {', '.join(sorted(actor.roles)) or 'none'})",
            )
        return actor

    check.__name__ = f"requires_{'_or_'.join(roles)}"
    return check


ANY_ROLE = ("admin", "approver", "operator", "auditor", "viewer")
ALERT_READERS = ("operator", "admin", "auditor")
WATCHLIST_READERS = ("admin", "approver", "operator", "auditor")

AnyUser = Annotated[Actor, Depends(requires(*ANY_ROLE))]
SignedIn = Annotated[Actor, Depends(current_user)]  # any signed-in account, even one that must set its password
AlertReader = Annotated[Actor, Depends(requires(*ALERT_READERS))]
Operator = Annotated[Actor, Depends(requires("operator"))]
CropReader = Annotated[Actor, Depends(requires("operator", "admin"))]
WatchlistReader = Annotated[Actor, Depends(requires(*WATCHLIST_READERS))]
Approver = Annotated[Actor, Depends(requires("approver"))]
Recorder = Annotated[Actor, Depends(requires("approver", "admin"))]
Admin = Annotated[Actor, Depends(requires("admin"))]
Auditor = Annotated[Actor, Depends(requires("auditor", "admin"))]
StoreDep = Annotated[Store, Depends(get_store)]
ServicesDep = Annotated[Services, Depends(get_services)]
AccountsDep = Annotated[Accounts, Depends(get_accounts)]


RowId = Annotated[int, Path(ge=1, le=2**63 - 1, description="a database id")]


def not_found(exc: NotFound) -> HTTPException:
    return HTTPException(404, str(exc))
