"""What every run's dispatcher shares: a plain ASGI entry point and reading the request (capped body,
its conversation, the 413 when the body is too large).

Dispatchers are plain ASGI apps that the data plane puts in front of Starlette,
skipping its router and middleware stack (~15% of a hello-world run's CPU), so
they turn errors into the one JSON error shape of `shared.errors` themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from data_plane.audit import ConversationRecorder
from data_plane.conversation import Conversation
from data_plane.incoming_request import IncomingRequest
from data_plane.registry import Registry
from data_plane.responses import answer_error
from shared.errors import PayloadTooLarge, ServiceError, error_response
from shared.request_body import read_capped_body

log = logging.getLogger("ffaas.dispatch")


class RunDispatcher:
    def __init__(
        self,
        registry: Registry,
        recorder: ConversationRecorder,
        *,
        max_request_bytes: int,
        max_captured_body_bytes: int,
    ) -> None:
        self.registry = registry
        self.recorder = recorder
        self.body_cap = max_captured_body_bytes
        self._max_request_bytes = max_request_bytes
        self._too_large = (
            f"request body exceeds the limit of {max_request_bytes} bytes (FFAAS_MAX_REQUEST_BYTES)"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = await self.handle(Request(scope, receive))
        except ServiceError as exc:
            response = error_response(exc.status, exc.message, exc.headers)
        except Exception:
            log.exception("unhandled error running %s", scope["path"])
            response = error_response(500, "internal error; see the server log")
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        raise NotImplementedError

    async def read_request(
        self, request: Request, conversation_for: Callable[[IncomingRequest], Conversation]
    ) -> tuple[IncomingRequest, Conversation, Response | None]:
        """The request with its body and its conversation (from `conversation_for`), and None; or, for
        a body over FFAAS_MAX_REQUEST_BYTES, the 413 as the third item, answered and recorded (the
        conversation's request has no body)."""
        try:
            body = await read_capped_body(request, self._max_request_bytes, self._too_large)
        except PayloadTooLarge as exc:
            incoming = IncomingRequest.from_starlette(request, b"")
            conversation = conversation_for(incoming)
            refused = await answer_error(self.recorder, conversation, exc, outcome="request_too_large")
            return incoming, conversation, refused
        incoming = IncomingRequest.from_starlette(request, body)
        return incoming, conversation_for(incoming), None
