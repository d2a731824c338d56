"""Request -> function -> executor -> response: the data plane's hot path for endpoints."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from data_plane.executors.guest_response import GuestResponse
from data_plane.executors.wagi import WagiExecutor
from data_plane.incoming_request import IncomingRequest
from data_plane.registry import Registry
from shared.errors import NotFound
from shared.request_body import read_capped_body


class EndpointDispatcher:
    """An ASGI app (so Starlette routes every HTTP method to it) running the endpoint's deploy."""

    def __init__(self, registry: Registry, executor: WagiExecutor, max_request_bytes: int) -> None:
        self._registry = registry
        self._executor = executor
        self._max_request_bytes = max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.handle(Request(scope, receive))
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        endpoint_id = request.path_params["endpoint_id"]
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
