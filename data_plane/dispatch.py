"""Request -> function -> executor -> response -> conversation: the data plane's hot path for endpoints.

`EndpointDispatcher` is a plain ASGI app that the data plane puts in front of
Starlette: a request for `/<endpoint-id>[/...]` goes straight to it, skipping the
router and middleware stack (that stack is ~15% of a hello-world run's CPU).

Invariants:
- Every request for a known endpoint is a run with a conversation, errors
  included; its response carries `FH-Conversation-Id` and is sent only after
  the conversation record is in Redis (see `audit.ConversationRecorder`).
- Errors leave in the one JSON shape of `shared.errors`; guest internals go to
  the conversation (`error_detail`), never into the response.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from data_plane.audit import ConversationRecorder
from data_plane.conversation import Conversation
from data_plane.executors.wagi import WagiExecutor
from data_plane.incoming_request import IncomingRequest
from data_plane.registry import PreparedEndpoint, Registry
from data_plane.responses import answer, answer_error
from shared.errors import NotFound, PayloadTooLarge, ServiceError, error_response
from shared.request_body import read_capped_body

log = logging.getLogger("ffaas.dispatch")


class EndpointDispatcher:
    def __init__(
        self,
        registry: Registry,
        executor: WagiExecutor,
        recorder: ConversationRecorder,
        *,
        max_request_bytes: int,
        max_captured_body_bytes: int,
    ) -> None:
        self._registry = registry
        self._executor = executor
        self._recorder = recorder
        self._max_request_bytes = max_request_bytes
        self._body_cap = max_captured_body_bytes
        self._too_large = (
            f"request body exceeds the limit of {max_request_bytes} bytes (FFAAS_MAX_REQUEST_BYTES)"
        )

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
        try:
            body = await read_capped_body(request, self._max_request_bytes, self._too_large)
        except PayloadTooLarge as exc:
            conversation = self._conversation(endpoint, IncomingRequest.from_starlette(request, b""))
            return await answer_error(self._recorder, conversation, exc, outcome="request_too_large")
        incoming = IncomingRequest.from_starlette(request, body)
        conversation = self._conversation(endpoint, incoming)
        run = await self._executor.run(endpoint, incoming)
        result = run.result
        if result is not None:
            truncated_at = self._executor.limits.max_stderr_bytes if result.stderr_truncated else None
            conversation.log_stderr(result.stderr, truncated_at=truncated_at)
        duration_ms = result.elapsed_ms if result is not None else 0.0
        if run.error is not None:
            outcome = result.outcome.value if result is not None else "unusable_module"
            if result is not None and outcome == "completed":
                outcome = "invalid_response"
            detail = result.detail if result is not None else None
            return await answer_error(
                self._recorder,
                conversation,
                run.error,
                outcome=outcome,
                detail=detail,
                duration_ms=duration_ms,
            )
        assert run.response is not None
        return await answer(self._recorder, conversation, run.response, duration_ms=duration_ms)

    def _conversation(self, endpoint: PreparedEndpoint, incoming: IncomingRequest) -> Conversation:
        return Conversation(
            incoming,
            body_cap=self._body_cap,
            endpoint_id=endpoint.endpoint_id,
            deploy_id=endpoint.deploy_id,
            module_hash=endpoint.module_hash,
        )
