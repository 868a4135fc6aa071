"""How the operator service answers errors: each domain error as its status with the one-line message, a busy or
unreachable database as 503 with Retry-After (nothing was changed), a malformed request as 422 with the fields.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from metrosight.core.names import InvalidInput
from metrosight.policy.crypto import CryptoError
from metrosight.policy.rules import Forbidden, PolicyError
from metrosight.recognize.gallery import ModelMismatch
from metrosight.store.db import StoreError
from metrosight.store.errors import Conflict, NotFound

log = logging.getLogger(__name__)

#: domain errors and the status they answer with (the body: ``{"detail": <the error's message>}``)
STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (PolicyError, 409),
    (CryptoError, 410),
    (StoreError, 503),
    (ModelMismatch, 409),  # the watchlists hold templates of another descriptor model than the configured one
    (InvalidInput, 422),  # a name, camera id, date or duration that breaks its rule (core/names.py, core/when.py)
)


def _error(status: int) -> Callable[[Request, Exception], Response]:
    def handler(_request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return handler


async def _busy(_request: Request, exc: Exception) -> Response:
    # the database did not answer in time (SQLite's write lock held past busy_timeout, the pool exhausted, a
    # PostgreSQL restart): nothing was changed; the client may retry
    log.warning("database unavailable: %s", str(exc).splitlines()[0][:200])
    return JSONResponse(
        {"detail": "the database is busy or unavailable; nothing was changed, try again"},
        status_code=503,
        headers={"Retry-After": "2"},
    )


async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


def add_error_handlers(app: FastAPI) -> None:
    """Register the service's error answers on ``app`` (see the module docstring)."""
    for exc_type, status in STATUS_OF:
        app.add_exception_handler(exc_type, _error(status))
    app.exception_handler(OperationalError)(_busy)
    app.exception_handler(PoolTimeout)(_busy)
    app.exception_handler(RequestValidationError)(_invalid)
