"""The operator service's HTTP layers: security headers on every response, request-body limits (uploads held in
memory only), the signed session cookie, and (behind a reverse proxy) the real client address.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from metrosight.api.deps import SESSION_COOKIE


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuses request bodies over the limit with 413, by ``Content-Length`` or while they stream in."""

    def __init__(self, app: ASGIApp, default: int, uploads: int, upload_paths: Callable[[str], bool]) -> None:
        self.app, self.default, self.uploads, self.upload_paths = app, default, uploads, upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.uploads if self.upload_paths(scope["path"]) else self.default
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _too_large(limit, send)
            return
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(limit, send)


def keep_uploads_in_memory(max_upload_bytes: int) -> None:
    """Uploaded face photos are never written to disk: Starlette spools each uploaded file into a
    ``SpooledTemporaryFile`` that moves to a temporary file on disk past ``MultiPartParser.spool_max_size`` (1 MiB);
    raising that to the largest upload :class:`BodyLimit` lets through keeps every upload in memory, where it is
    decoded (:func:`metrosight.ingest.images.decode_photo`) and dropped with the request. The setting is the
    parser's class attribute, so it holds for the whole process (the service is the only form parser in it)."""
    from starlette.formparsers import MultiPartParser  # starlette: the web stack, only in the API

    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, max_upload_bytes + 1)


async def _too_large(limit: int, send: Send) -> None:
    body = JSONResponse({"detail": f"request body larger than {limit / 2**20:.0f} MiB"}, status_code=413).body
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", NO_STORE.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


# Responses carry personal data (alerts, crops, the audit log, users): no browser or proxy may keep a copy. Only the
# static assets (scripts, styles, the docs' bundle) may be cached.
NO_STORE = "no-store"


CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; "
    "form-action 'self'"
)


CSP_DOCS = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'").replace(
    "script-src 'self'", "script-src 'self' 'unsafe-inline'"
)  # the Swagger UI page starts itself with an inline script


async def security_headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
    """Every response: :data:`SECURITY_HEADERS`, a content security policy (the docs page's allows its inline
    script and styles), and ``Cache-Control: no-store`` except on static assets; over HTTPS (served with TLS, or
    so reported by a trusted proxy) also ``Strict-Transport-Security`` (``api.tls.hsts_seconds``)."""
    response: Response = await call_next(request)
    for k, v in SECURITY_HEADERS.items():
        response.headers.setdefault(k, v)
    hsts = int(getattr(request.app.state, "hsts_seconds", 0))
    if hsts > 0 and request.url.scheme == "https":
        response.headers.setdefault("Strict-Transport-Security", f"max-age={hsts}")
    response.headers.setdefault("Content-Security-Policy", CSP_DOCS if request.url.path == "/docs" else CSP)
    if not request.url.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", NO_STORE)
    return response


class SchemeSessions:
    """The signed session cookie (Starlette's ``SessionMiddleware``), marked ``Secure`` on every response to a
    request that came over HTTPS — served with TLS, or reported as ``https`` in ``X-Forwarded-Proto`` by a trusted
    proxy (whose middleware runs first) — and on every response with ``always_secure``."""

    def __init__(self, app: ASGIApp, /, *, always_secure: bool, **session: Any) -> None:
        self.plain = SessionMiddleware(app, https_only=always_secure, **session)
        self.secure = SessionMiddleware(app, https_only=True, **session)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        layer = self.secure if scope.get("scheme") in ("https", "wss") else self.plain
        await layer(scope, receive, send)


def _is_upload(path: str) -> bool:
    return path == "/api/identify" or path.startswith("/api/watchlists/") and path.endswith("/entries")


async def audit_denials(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Count every request answered 403 (a missing role, a rule of the store, a missing CSRF header) for the
    audit log: one ``auth.denied`` row per user, address and window (:class:`~metrosight.api.security.SignInAudit`,
    written by the service's sign-in audit writer)."""
    response = await call_next(request)
    if response.status_code == 403:
        state = getattr(request.app.state, "services", None)
        counter = getattr(state, "signin_audit", None)
        if counter is not None:
            user = getattr(request.state, "user", None) or "anonymous"
            ip = request.client.host if request.client else "unknown"
            counter.denied(user, ip, f"{request.method} {request.url.path}"[:200])
    return response


def add_middleware(
    app: FastAPI,
    *,
    max_body_bytes: int,
    max_upload_bytes: int,
    session_secret: str,
    session_max_age: int,
    secure_cookies: bool,
    trusted_proxies: Sequence[str],
    hsts_seconds: int = 0,
) -> None:
    """Wrap ``app`` in its layers, innermost first: security headers (with HSTS of ``hsts_seconds`` over HTTPS),
    body limits (``max_upload_bytes`` for photo uploads, kept in memory; ``max_body_bytes`` otherwise), the session
    cookie (SameSite=Strict; ``Secure`` over HTTPS, and always with ``secure_cookies``), and outermost, when
    ``trusted_proxies`` is not empty, the client address and scheme those proxies report (so that every layer, and
    the audit, sees the real client)."""
    app.state.hsts_seconds = hsts_seconds
    app.middleware("http")(security_headers)
    app.middleware("http")(audit_denials)
    keep_uploads_in_memory(max_upload_bytes)
    app.add_middleware(BodyLimit, default=max_body_bytes, uploads=max_upload_bytes, upload_paths=_is_upload)
    app.add_middleware(
        SchemeSessions,
        always_secure=secure_cookies,
        secret_key=session_secret,
        session_cookie=SESSION_COOKIE,
        max_age=session_max_age,
        same_site="strict",
    )
    if trusted_proxies:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware  # only behind a reverse proxy

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(trusted_proxies))
