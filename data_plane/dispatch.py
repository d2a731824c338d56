"""Request -> function -> executor -> response: the data plane's hot path for endpoints.

`EndpointDispatcher` is a plain ASGI app that the data plane puts in front of
Starlette: a request for `/<endpoint-id>[/...]` goes straight to it, skipping the
router and middleware stack (measured: that stack is ~15% of a hello-world
run's CPU).  It builds error responses with `shared.errors` itself, so the one
JSON error shape holds on this path too.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from data_plane.executors.guest_response import GuestResponse
from data_plane.executors.wagi import WagiExecutor
from data_plane.incoming_request import IncomingRequest
from data_plane.registry import Registry
from shared.errors import NotFound, ServiceError, error_response
from shared.request_body import read_capped_body

log = logging.getLogger("ffaas.dispatch")


class EndpointDispatcher:
    def __init__(self, registry: Registry, executor: WagiExecutor, max_request_bytes: int) -> None:
        self._registry = registry
        self._executor = executor
        self._max_request_bytes = max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint_id = scope["path"].split("/", 2)[1]
        try:
            response = await self.handle(endpoint_id, Request(scope, receive))
        except ServiceError as exc:
            response = error_response(exc.status, exc.message, exc.headers)
        except Exception:
            log.exception("unhandled error running endpoint %s", endpoint_id)
            response = error_response(500, "internal error; see the server log")
        await response(scope, receive, send)

    async def handle(self, endpoint_id: str, request: Request) -> Response:
        endpoint = self._registry.endpoint(endpoint_id)
        if endpoint is None:
            raise NotFound(f"endpoint {endpoint_id} not found or has no deploy")
        body = await read_capped_body(request, self._max_request_bytes, setting="FFAAS_MAX_REQUEST_BYTES")
        run = await self._executor.run(endpoint, IncomingRequest.from_starlette(request, body))
        if run.error is not None:
            raise run.error
        assert run.response is not None
        return to_http_response(run.response)


def to_http_response(guest: GuestResponse) -> Response:
    response = Response(content=guest.body, status_code=guest.status)
    response.raw_headers.extend(
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in guest.headers
    )
    return response
