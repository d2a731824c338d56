"""The one JSON error shape of FFAAS and the domain errors that map to it.

Domain code raises a `ServiceError` subclass; only the handlers installed by
`install_error_handlers` turn errors into HTTP responses, always as
``{"code": <http status>, "message": "<what went wrong>"}``.  Messages name the
field, limit or setting involved; guest internals never appear in them.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Match

log = logging.getLogger("ffaas.errors")


class ServiceError(Exception):
    """An error with an HTTP status and a message safe to show to any caller."""

    status: int = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ServiceError):
    status = 400


class InvalidModule(BadRequest):
    """Uploaded bytes are not a module the guest contract can run."""


class Unauthorized(ServiceError):
    status = 401


class Forbidden(ServiceError):
    status = 403


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    """The request is well-formed but the stored state does not allow it (e.g. a cut record)."""

    status = 409


class MethodNotAllowed(ServiceError):
    status = 405


class PayloadTooLarge(ServiceError):
    status = 413


class UnsupportedMediaType(ServiceError):
    status = 415


class GuestError(ServiceError):
    """The guest trapped, exited non-zero or broke a limit other than time."""

    status = 500


class BadGateway(ServiceError):
    """Another service this one relies on (a data plane, for the control plane) answered badly."""

    status = 502


class Unavailable(ServiceError):
    status = 503


class GuestTimeout(ServiceError):
    status = 504


class LoopDetected(ServiceError):
    """A run is part of a chain of requests between processors past the hop limit."""

    status = 508


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"code": status, "message": message}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc.status, exc.message, exc.headers)


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    message = exc.detail
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return error_response(exc.status_code, message, headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers on this path. Starlette's own 405 names only the
    first route whose path matches, and a path served by one route per method has several."""
    allowed: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            allowed.update(getattr(route, "methods", None) or ())
    return sorted(allowed)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error; see the server log")


def install_error_handlers(app: Starlette) -> None:
    """Make every error leaving `app` the JSON error body."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(Exception, _unexpected)
