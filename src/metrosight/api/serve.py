"""The uvicorn settings ``metrosight serve`` (:mod:`metrosight.cli.serve`) runs the operator service with."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

    from metrosight.config.access import TlsSettings


def server_config(app: FastAPI, host: str, port: int, tls: TlsSettings | None = None) -> uvicorn.Config:
    """The uvicorn settings ``serve`` runs ``app`` with: HTTPS with the certificate and key of ``tls`` when it has
    them (check them first with :func:`metrosight.config.access.tls_problem`), else plain HTTP.
    ``proxy_headers=False``: uvicorn would otherwise believe ``X-Forwarded-For`` from any client on 127.0.0.1 (its
    ``FORWARDED_ALLOW_IPS`` default); the app believes it only from the addresses of the config's
    ``api.trusted_proxies`` (see :func:`metrosight.api.app.create_app`)."""
    import uvicorn  # heavy: the ASGI server, needed only by `serve`

    cert = str(tls.certificate) if tls is not None and tls.certificate is not None else None
    key = str(tls.key) if tls is not None and tls.key is not None else None
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=5,
        proxy_headers=False,
        forwarded_allow_ips="",
        ssl_certfile=cert,
        ssl_keyfile=key,
    )
